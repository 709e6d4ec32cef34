"""Instant revocation across replicas: two API instances, each with its own
engine and access index, on one PostgreSQL. Every revocation made through one
is checked through the other right after the response: no stale allow. Then
the same under load, with two real server processes."""

from __future__ import annotations

import http.client
import json
import os
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

import pytest
from bench.core import Server

from conftest import ADMIN, MASTER_KEY, replica_clients

ROUNDS = 300


@pytest.fixture
def replicas(postgres_url: str) -> Iterator[tuple[Any, Any]]:
    with replica_clients(postgres_url) as clients:
        yield clients


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


# The load test: two `accessledger serve` processes on one PostgreSQL, checks
# from several threads through both while revocations and restorations go
# through both. Bounded in time and in count.
LOAD_SECONDS = float(os.environ.get("ACCESSLEDGER_REPLICA_LOAD_SECONDS", "8"))
MAX_CHECKS = 200_000
READERS = 4


@dataclass
class Revoked:
    """When a (key, model) pair was revoked: from the revoking write's return
    to the start of the write that restores it."""

    pair: tuple[str, str]
    returned: float
    restoring: float = float("inf")


@dataclass
class Load:
    revoked: list[Revoked] = field(default_factory=list)
    # (started, finished, key, model, allowed)
    checks: list[tuple[float, float, str, str, bool]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def http_ask(connection: Any, method: str, path: str, body: Any = None) -> Any:
    payload = None if body is None else json.dumps(body).encode()
    connection.request(method, path, body=payload, headers=ADMIN)
    response = connection.getresponse()
    data = response.read()
    if response.status >= 300:
        raise AssertionError(f"{method} {path}: {response.status} {data[:200]!r}")
    return json.loads(data) if data else None


def set_up_org(port: int, models: list[str]) -> tuple[str, list[str]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for name in models:
        http_ask(connection, "PUT", f"/v1/catalog/model/{name}")
    grants = {"model": models}
    group = http_ask(
        connection, "POST", "/v1/access-groups", {"name": "G", "grants": grants}
    )
    team = http_ask(
        connection, "POST", "/v1/teams", {"name": "T", "access_groups": [group["id"]]}
    )
    keys = [
        http_ask(
            connection,
            "POST",
            "/v1/keys",
            {"alias": "direct", "access_groups": [group["id"]]},
        ),
        http_ask(
            connection, "POST", "/v1/keys", {"alias": "team", "team_id": team["id"]}
        ),
    ]
    connection.close()
    return group["id"], [key["id"] for key in keys]


def revoke_and_restore(
    port: int, group: str, keys: list[str], models: list[str], load: Load, stop: float
) -> None:
    """Take each model away from the group and give it back, in turn."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    path = f"/v1/access-groups/{group}"
    turn = 0
    try:
        while time.monotonic() < stop:
            name = models[turn % len(models)]
            turn += 1
            http_ask(connection, "PATCH", path, {"remove": {"model": [name]}})
            cut = [Revoked((key, name), time.perf_counter()) for key in keys]
            with load.lock:
                load.revoked += cut
            time.sleep(0.02)
            restoring = time.perf_counter()
            for revoked in cut:
                revoked.restoring = restoring
            http_ask(connection, "PATCH", path, {"add": {"model": [name]}})
    except (OSError, AssertionError) as error:
        load.errors.append(f"writer on {port}: {error!r}")
    finally:
        connection.close()


def check_continuously(
    ports: list[int],
    keys: list[str],
    models: list[str],
    load: Load,
    stop: float,
    seed: int,
) -> None:
    chance = random.Random(seed)
    connections = [http.client.HTTPConnection("127.0.0.1", p, timeout=30) for p in ports]
    try:
        while time.monotonic() < stop and len(load.checks) < MAX_CHECKS:
            key, name = chance.choice(keys), chance.choice(models)
            item = {"key_id": key, "kind": "model", "name": name}
            started = time.perf_counter()
            answer = http_ask(chance.choice(connections), "POST", "/v1/check", item)
            load.checks.append(
                (started, time.perf_counter(), key, name, answer["allowed"])
            )
    except (OSError, AssertionError) as error:
        load.errors.append(f"reader: {error!r}")
    finally:
        for connection in connections:
            connection.close()


def stale_allows(load: Load) -> list[str]:
    """Checks that started after a revocation returned and ended before its
    restoration began, yet were allowed."""
    by_pair: dict[tuple[str, str], list[Revoked]] = {}
    for revoked in load.revoked:
        by_pair.setdefault(revoked.pair, []).append(revoked)
    stale = []
    for started, finished, key, name, allowed in load.checks:
        if not allowed:
            continue
        for revoked in by_pair.get((key, name), ()):
            if revoked.returned < started and finished < revoked.restoring:
                stale.append(f"{key} {name} at {started:.4f}")
    return stale


@pytest.mark.postgres
@pytest.mark.slow
def test_replicas_under_load_never_allow_what_was_revoked(postgres_url: str) -> None:
    replicas = [Server(postgres_url, MASTER_KEY), Server(postgres_url, MASTER_KEY)]
    try:
        ports = [replica.port for replica in replicas]
        models = [f"model-{n}" for n in range(6)]
        group, keys = set_up_org(ports[0], models)
        load = Load()
        stop = time.monotonic() + LOAD_SECONDS
        threads = [
            threading.Thread(
                target=revoke_and_restore,
                args=(port, group, keys, models[n::2], load, stop),
            )
            for n, port in enumerate(ports)
        ]
        threads += [
            threading.Thread(
                target=check_continuously, args=(ports, keys, models, load, stop, n)
            )
            for n in range(READERS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert load.errors == []
        assert len(load.revoked) > 10 and len(load.checks) > 100
        assert stale_allows(load) == []
    finally:
        for replica in replicas:
            replica.stop()
