"""Instant revocation across replicas: two API instances, each with its own
engine and access index, on one PostgreSQL. Every revocation made through one
is checked through the other right after the response: no stale allow."""

from __future__ import annotations

import random
from typing import Any, Iterator

import pytest

from api.app import create_app
from api.auth import admin_tokens
from api.ledger import Ledger
from conftest import ADMIN, MASTER_KEY, TestClient

ROUNDS = 300


@pytest.fixture
def replicas(postgres_url: str) -> Iterator[tuple[Any, Any]]:
    ledgers = [Ledger(postgres_url), Ledger(postgres_url)]
    clients = [
        TestClient(create_app(ledger, admin_tokens(MASTER_KEY)), headers=ADMIN)
        for ledger in ledgers
    ]
    yield clients[0], clients[1]
    for ledger in ledgers:
        ledger.close()


def ok(response: Any) -> dict:
    assert response.status_code < 300, response.text
    return response.json() if response.content else {}


def check(client: Any, key_id: str, name: str) -> dict:
    return ok(
        client.post("/v1/check", json={"key_id": key_id, "kind": "model", "name": name})
    )


@pytest.mark.postgres
def test_no_replica_allows_what_another_has_revoked(replicas: tuple[Any, Any]) -> None:
    one, two = replicas
    models = [f"model-{n}" for n in range(6)]
    for name in models:
        ok(one.put(f"/v1/catalog/model/{name}"))
    group = ok(
        one.post("/v1/access-groups", json={"name": "G", "grants": {"model": models}})
    )
    team = ok(two.post("/v1/teams", json={"name": "T", "access_groups": [group["id"]]}))
    via_key = ok(
        one.post("/v1/keys", json={"alias": "k1", "access_groups": [group["id"]]})
    )
    via_team = ok(two.post("/v1/keys", json={"alias": "k2", "team_id": team["id"]}))

    revocations = {
        "group edit": (
            lambda w, k, m: w.patch(
                f"/v1/access-groups/{group['id']}", json={"remove": {"model": [m]}}
            ),
            lambda w, k, m: w.patch(
                f"/v1/access-groups/{group['id']}", json={"add": {"model": [m]}}
            ),
        ),
        "detach": (
            lambda w, k, m: w.delete(attachment_path(k, group["id"], team["id"])),
            lambda w, k, m: w.put(attachment_path(k, group["id"], team["id"])),
        ),
        "key block": (
            lambda w, k, m: w.post(f"/v1/keys/{k['id']}/block"),
            lambda w, k, m: w.post(f"/v1/keys/{k['id']}/unblock"),
        ),
        "team block": (
            lambda w, k, m: w.post(f"/v1/teams/{team['id']}/block"),
            lambda w, k, m: w.post(f"/v1/teams/{team['id']}/unblock"),
        ),
        "retirement": (
            lambda w, k, m: w.delete(f"/v1/catalog/model/{m}"),
            lambda w, k, m: w.put(f"/v1/catalog/model/{m}"),
        ),
    }

    chance = random.Random(20261204)
    stale: list[str] = []
    for round_number in range(ROUNDS):
        writer, reader = (one, two) if round_number % 2 == 0 else (two, one)
        name = chance.choice(models)
        kind = chance.choice(sorted(revocations))
        # Blocking the team can only revoke for the key that is in it.
        key = via_team if kind == "team block" else chance.choice([via_key, via_team])
        revoke, restore = revocations[kind]

        ok(revoke(writer, key, name))
        if check(reader, key["id"], name)["allowed"]:
            stale.append(f"round {round_number}: {kind} of {name} for {key['alias']}")
        ok(restore(reader, key, name))
        assert check(writer, key["id"], name)["allowed"], (round_number, kind)

    assert stale == []


def attachment_path(key: dict, group_id: str, team_id: str) -> str:
    if key["team_id"] is None:
        return f"/v1/keys/{key['id']}/access-groups/{group_id}"
    return f"/v1/teams/{team_id}/access-groups/{group_id}"
