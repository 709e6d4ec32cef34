"""Concurrent writers lose nothing: optimistic versions, If-Match, name races,
and idempotent retries, on both stores, through two replicas at once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any, Iterator

import pytest

from api.app import create_app
from api.auth import admin_tokens
from api.ledger import Ledger
from conftest import ADMIN, MASTER_KEY, TestClient, event_count

WRITERS = 50
UNKNOWN = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
def replicas(database_url: str) -> Iterator[list[Any]]:
    """Two API processes' worth of state (engine, index, locks) on one store."""
    with ExitStack() as stack:
        clients = []
        for _ in range(2):
            ledger = Ledger(database_url)
            stack.callback(ledger.close)
            app = create_app(ledger, admin_tokens(MASTER_KEY))
            clients.append(stack.enter_context(TestClient(app, headers=ADMIN)))
        for client in clients:
            warm_up(client)
        yield clients


def warm_up(client: Any) -> None:
    """Send each route one request first. This FastAPI builds a route's
    parameter models on its first request, and two apps in one process share
    the route modules: two first requests racing in two event-loop threads
    trip pydantic. One app per process, as in production, never races."""
    for path in ("/v1/access-groups", "/v1/teams", "/v1/keys"):
        client.post(path, json={})
    client.patch(f"/v1/access-groups/{UNKNOWN}", json={})
    client.post("/v1/catalog/sync", json={})


def all_at_once(calls: list[Any]) -> list[Any]:
    with ThreadPoolExecutor(max_workers=25) as pool:
        return list(pool.map(lambda call: call(), calls))


def test_fifty_writers_adding_to_one_group_all_land(replicas: list[Any]) -> None:
    one, two = replicas
    names = [f"model-{n:02}" for n in range(WRITERS)]
    one.post("/v1/catalog/sync", json={"kind": "model", "names": names})
    group = one.post("/v1/access-groups", json={"name": "Shared"}).json()

    def add(n: int) -> Any:
        via = (one, two)[n % 2]
        body = {"add": {"model": [names[n]]}}
        return lambda: via.patch(f"/v1/access-groups/{group['id']}", json=body)

    answers = all_at_once([add(n) for n in range(WRITERS)])

    assert [a.status_code for a in answers] == [200] * WRITERS
    for replica in replicas:
        final = replica.get(f"/v1/access-groups/{group['id']}").json()
        assert final["grants"]["model"] == names
        assert final["version"] == 1 + WRITERS


def test_a_stale_if_match_is_refused_and_changes_nothing(client: Any) -> None:
    group = client.post("/v1/access-groups", json={"name": "G"}).json()
    read = client.get(f"/v1/access-groups/{group['id']}")
    assert read.headers["ETag"] == '"1"'
    client.patch(f"/v1/access-groups/{group['id']}", json={"description": "first"})
    before = event_count(client.app.state.ledger)

    stale = client.patch(
        f"/v1/access-groups/{group['id']}",
        json={"description": "second"},
        headers={"If-Match": read.headers["ETag"]},
    )

    assert stale.status_code == 412
    assert stale.json()["error"]["code"] == "version_mismatch"
    assert event_count(client.app.state.ledger) == before
    after = client.get(f"/v1/access-groups/{group['id']}")
    assert after.json()["description"] == "first"
    assert after.headers["ETag"] == '"2"'
    fresh = client.patch(
        f"/v1/access-groups/{group['id']}",
        json={"description": "second"},
        headers={"If-Match": after.headers["ETag"]},
    )
    assert fresh.status_code == 200


@pytest.mark.parametrize("kind", ["access-groups", "teams"])
def test_twenty_creations_of_one_name_leave_exactly_one(
    replicas: list[Any], kind: str
) -> None:
    spellings = ["Team Alpha", "team alpha", "TEAM ALPHA", "Team ALPHA"]

    def create(n: int) -> Any:
        via, name = replicas[n % 2], spellings[n % len(spellings)]
        return lambda: via.post(f"/v1/{kind}", json={"name": name})

    answers = all_at_once([create(n) for n in range(20)])

    codes = sorted(a.status_code for a in answers)
    assert codes == [201] + [409] * 19
    assert {a.json()["error"]["code"] for a in answers if a.status_code == 409} == {
        "name_taken"
    }
    for replica in replicas:
        assert len(replica.get(f"/v1/{kind}").json()["items"]) == 1


def test_a_retry_returns_the_first_answer_and_records_nothing(client: Any) -> None:
    ledger = client.app.state.ledger
    retry = {"Idempotency-Key": "create-svc-1"}
    first = client.post("/v1/keys", json={"alias": "svc"}, headers=retry)
    recorded = event_count(ledger)

    again = client.post("/v1/keys", json={"alias": "svc"}, headers=retry)

    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "secret" in first.json() and "secret" not in again.json()
    assert again.json() == {k: v for k, v in first.json().items() if k != "secret"}
    assert event_count(ledger) == recorded
    assert len(client.get("/v1/keys").json()["items"]) == 1

    other = client.post("/v1/keys", json={"alias": "other"}, headers=retry)
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_mismatch"
    assert event_count(ledger) == recorded


def test_a_rotation_retried_rotates_once_and_hides_the_secret(client: Any) -> None:
    key = client.post("/v1/keys", json={"alias": "svc"}).json()
    retry = {"Idempotency-Key": "rotate-1"}
    first = client.post(f"/v1/keys/{key['id']}/rotate", headers=retry)
    again = client.post(f"/v1/keys/{key['id']}/rotate", headers=retry)

    assert first.json()["version"] == again.json()["version"] == 2
    assert "secret" not in again.json()
    models = client.get(
        "/v1/models", headers={"Authorization": f"Bearer {first.json()['secret']}"}
    )
    assert models.status_code == 200


def test_concurrent_retries_of_one_write_record_it_once(replicas: list[Any]) -> None:
    ledger = replicas[0].app.state.ledger
    retry = {"Idempotency-Key": "group-g"}
    body = {"name": "G", "grants": {"model": ["a/*"]}}
    before = event_count(ledger)

    answers = all_at_once(
        [
            (
                lambda via=replicas[n % 2]: via.post(
                    "/v1/access-groups", json=body, headers=retry
                )
            )
            for n in range(10)
        ]
    )

    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["id"] for a in answers}) == 1
    # The group and its name claim: two aggregates, recorded once.
    assert event_count(ledger) - before == 3
    assert sum("Idempotent-Replayed" in a.headers for a in answers) == 9


@pytest.mark.parametrize(
    ("key", "status"), [("", 400), ("x" * 256, 400), ("caf\u00e9", 400), ("ok-1", 201)]
)
def test_idempotency_keys_are_checked(client: Any, key: str, status: int) -> None:
    answer = client.post(
        "/v1/access-groups",
        json={"name": "G"},
        headers={"Idempotency-Key": key.encode()},
    )
    assert answer.status_code == status, answer.text


def test_a_refused_write_is_not_kept_and_can_be_sent_again(client: Any) -> None:
    retry = {"Idempotency-Key": "late-group"}
    body = {"name": "G", "grants": {"model": ["gpt-4o"]}}
    refused = client.post("/v1/access-groups", json=body, headers=retry)
    assert refused.status_code == 422
    client.put("/v1/catalog/model/gpt-4o")

    accepted = client.post("/v1/access-groups", json=body, headers=retry)

    assert accepted.status_code == 201
    assert "Idempotent-Replayed" not in accepted.headers
