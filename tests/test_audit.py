"""Audit you can replay: the event log, grant intervals, questions about the
past, compliance replay, rebuild in place and export."""

from __future__ import annotations

import csv
import io
import json
import random
import time
from datetime import datetime, timezone
from typing import Any

import pytest
from sqlalchemy import text

from api.history import HistoryPlayer, LocalBackend
from api.ledger import Ledger
from conftest import SHARED
from domain.aggregates import Change
from domain.resources import KINDS
from domain.rules import seconds_of, text_of
from projections.audit import AuditLog
from projections.replay import replay, switch_over


def ok(response: Any) -> Any:
    assert response.status_code < 300, response.text
    return response.json() if response.content else None


@pytest.fixture
def story(client: Any) -> dict[str, Any]:
    """A key that gains a model through a group, then directly, loses the
    group, then the direct grant: one interval, then none."""
    ok(client.put("/v1/catalog/model/gpt-4o"))
    ok(client.put("/v1/catalog/model/o1"))
    group = ok(
        client.post(
            "/v1/access-groups", json={"name": "Prod", "grants": {"model": ["gpt-4o"]}}
        )
    )
    key = ok(client.post("/v1/keys", json={"alias": "svc"}))
    moments: dict[str, int] = {}
    moments["attached"] = ok(
        client.put(f"/v1/keys/{key['id']}/access-groups/{group['id']}")
    )["position"]
    moments["granted"] = ok(
        client.patch(f"/v1/keys/{key['id']}", json={"add": {"model": ["gpt-4o"]}})
    )["position"]
    ok(client.patch(f"/v1/access-groups/{group['id']}", json={"name": "Production"}))
    moments["detached"] = ok(
        client.delete(f"/v1/keys/{key['id']}/access-groups/{group['id']}")
    )["position"]
    moments["revoked"] = ok(
        client.patch(f"/v1/keys/{key['id']}", json={"remove": {"model": ["gpt-4o"]}})
    )["position"]
    return {"group": group, "key": key, "moments": moments}


def test_grant_intervals_survive_a_second_reason(client: Any, story: dict) -> None:
    key, moments = story["key"], story["moments"]
    items = ok(client.get("/v1/audit/grants", params={"key_id": key["id"]}))["items"]

    assert len(items) == 1
    interval = items[0]
    assert (interval["kind"], interval["name"]) == ("model", "gpt-4o")
    assert interval["granted_position"] == moments["attached"]
    assert interval["revoked_position"] == moments["revoked"]
    assert interval["ended_by"] == "change"
    assert [(r["source"], r["holder_name"]) for r in interval["reasons"]] == [
        ("key_group", "Prod")
    ]


def test_who_ever_could_use_a_resource(client: Any, story: dict) -> None:
    other = ok(
        client.post("/v1/keys", json={"alias": "late", "grants": {"model": ["gpt-*"]}})
    )
    items = ok(
        client.get("/v1/audit/grants", params={"kind": "model", "name": "gpt-4o"})
    )["items"]
    assert [(i["key_id"], i["ended_by"]) for i in items] == [
        (story["key"]["id"], "change"),
        (other["id"], None),
    ]
    assert items[1]["reasons"][0]["selector"] == "gpt-*"
    assert client.get("/v1/audit/grants").status_code == 400


def test_an_interval_ended_by_expiry_ends_at_expires_at(client: Any) -> None:
    ok(client.put("/v1/catalog/model/m"))
    key = ok(client.post("/v1/keys", json={"alias": "short", "grants": {"model": ["m"]}}))
    expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 2))
    position = ok(client.patch(f"/v1/keys/{key['id']}", json={"expires_at": expires}))[
        "position"
    ]
    time.sleep(2.5)

    items = ok(client.get("/v1/audit/grants", params={"key_id": key["id"]}))["items"]
    assert len(items) == 1
    assert items[0]["ended_by"] == "expiry"
    assert items[0]["revoked_at"] == expires
    assert items[0]["revoked_position"] == position


def test_the_past_answers_with_the_names_of_then(client: Any, story: dict) -> None:
    key, moments = story["key"], story["moments"]
    then = ok(
        client.post(
            "/v1/check",
            json={
                "key_id": key["id"],
                "kind": "model",
                "name": "gpt-4o",
                "position": moments["granted"],
            },
        )
    )
    assert then["allowed"]
    assert {(r["source"], r["holder_name"]) for r in then["reasons"]} == {
        ("key", "svc"),
        ("key_group", "Prod"),
    }

    later = ok(
        client.get(
            f"/v1/keys/{key['id']}/access",
            params={"position": moments["detached"], "kind": "model"},
        )
    )
    assert later["as_of"] == moments["detached"]
    assert [r["name"] for r in later["resources"]["model"]] == ["gpt-4o"]

    moment = datetime.now(timezone.utc).isoformat()
    now = ok(
        client.post(
            "/v1/check",
            json={"key_id": key["id"], "kind": "model", "name": "gpt-4o", "at": moment},
        )
    )
    assert now["denied_because"] == "no_grant"
    assert now["position"] == ok(client.get("/readyz"))["position"]


def test_the_event_log_pages_and_filters(client: Any, story: dict) -> None:
    every = ok(client.get("/v1/audit/events", params={"limit": 1000}))["items"]
    positions = [e["position"] for e in every]
    assert positions == sorted(positions) and len(positions) == len(set(positions))

    first = ok(client.get("/v1/audit/events", params={"limit": 3}))
    assert [e["position"] for e in first["items"]] == positions[:3]
    rest = ok(
        client.get(
            "/v1/audit/events", params={"after": first["next_after"], "limit": 1000}
        )
    )
    assert [e["position"] for e in rest["items"]] == positions[3:]
    assert rest["next_after"] is None

    mine = ok(client.get("/v1/audit/events", params={"holder": story["key"]["id"]}))[
        "items"
    ]
    assert [e["type"] for e in mine][:2] == ["Key.Created", "Key.GroupAttached"]
    assert {e["actor"] for e in mine} == {"master"}
    assert set(mine[0]) == {"position", "type", "holder", "at", "actor", "reason", "data"}
    assert "secret" not in json.dumps(every)


def test_export_round_trips(client: Any, story: dict) -> None:
    log = ok(client.get("/v1/audit/events", params={"limit": 1000}))["items"]
    expected = [(e["position"], e["type"]) for e in log]

    lines = client.get("/v1/audit/export", params={"format": "jsonl"}).text.splitlines()
    assert [(r["position"], r["type"]) for r in map(json.loads, lines)] == expected

    table = list(csv.reader(io.StringIO(client.get("/v1/audit/export?format=csv").text)))
    assert table[0] == ["position", "type", "holder", "at", "actor", "reason", "data"]
    assert [(int(row[0]), row[1]) for row in table[1:]] == expected

    middle = expected[2][0]
    window = client.get(
        "/v1/audit/export", params={"from": middle, "to": middle + 2}
    ).text
    assert [json.loads(line)["position"] for line in window.splitlines()] == [
        p for p, _ in expected if middle < p <= middle + 2
    ]


def test_replay_matches_and_catches_a_tampered_row(
    client: Any, ledger: Ledger, story: dict
) -> None:
    report = ok(client.post("/v1/audit/replay", json={}))
    assert report["matches"] and report["digest"] == report["live_digest"]
    assert report["events"] == report["position"] > 0

    early = ok(
        client.post(
            "/v1/audit/replay", json={"until_position": story["moments"]["granted"]}
        )
    )
    assert early["matches"]

    key_id = story["key"]["id"]
    with ledger.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO ledger_grants (holder_id, kind, selector) "
                "VALUES (:k, 'model', 'o1')"
            ),
            {"k": key_id},
        )
    tampered = ok(client.post("/v1/audit/replay", json={}))
    assert not tampered["matches"]
    assert {
        "table": "ledger_grants",
        "only_in": "live",
        "row": [key_id, "model", "o1"],
    } in tampered["differences"]


def test_a_verifier_process_finds_what_a_replay_in_process_finds(
    ledger: Ledger, story: dict
) -> None:
    """Long logs are verified by a second process; it must agree with the
    replay done in one, on a log that matches and on a tampered one."""
    audit = ledger.audit
    for in_process in (True, False):
        report = replay(audit, ledger.engine, in_process=in_process)
        assert report.matches and report.events == ledger.current()
    early = story["moments"]["granted"]
    assert replay(audit, ledger.engine, until=early, in_process=False).matches

    with ledger.engine.begin() as connection:
        connection.execute(
            text("UPDATE ledger_holders SET name = 'forged' WHERE id = :k"),
            {"k": story["key"]["id"]},
        )
    reports = [replay(audit, ledger.engine, in_process=p) for p in (True, False)]
    assert not reports[0].matches and not reports[1].matches
    assert reports[0].differences == reports[1].differences
    assert reports[0].live_digest == reports[1].live_digest


def test_rebuild_in_place_keeps_every_answer(
    client: Any, ledger: Ledger, story: dict
) -> None:
    key_id = story["key"]["id"]
    before = ok(client.get(f"/v1/keys/{key_id}/access"))
    done = switch_over(ledger)
    assert done["position"] == ledger.index.position

    fresh = Ledger(ledger.database_url)
    try:
        assert replay(AuditLog(fresh.app, fresh.engine), fresh.engine).matches
        assert fresh.index.key(key_id).version == ledger.index.key(key_id).version
    finally:
        fresh.close()
    after = ok(client.get(f"/v1/keys/{key_id}/access"))
    assert after["resources"] == before["resources"]
    ok(client.patch(f"/v1/keys/{key_id}", json={"alias": "renamed"}))


@pytest.mark.slow
def test_the_org_history_answers_about_its_own_past(sqlite_url: str) -> None:
    """Play the real history; at each checkpoint remember the live answers for
    a sample of keys; afterwards the as-of answers equal them, and a replay
    of the whole log matches the live tables."""
    from projections.past import PastIndex, committed_at

    ledger = Ledger(sqlite_url)
    player = HistoryPlayer(LocalBackend(ledger, Change("test")))
    chance = random.Random(3)
    remembered: list[tuple[int, str, dict]] = []
    lines = (SHARED / "data" / "org" / "history.jsonl").read_text().splitlines()
    try:
        for start in range(0, len(lines), 500):
            with ledger.batch():
                for line in lines[start : start + 500]:
                    op = json.loads(line)
                    player.play(op)
                    if op["op"] == "checkpoint":
                        remembered += sample_answers(ledger, player, chance)

        assert len({position for position, _, _ in remembered}) == 11
        with ledger.engine.connect() as connection:
            for position, key_id, live in remembered:
                past = PastIndex(connection, position)
                key = past.key(key_id)
                past.catalog(KINDS)
                moment = committed_at(connection, position)
                then = {
                    kind: sorted(past.index.access(key, kind, moment)) for kind in KINDS
                }
                assert then == live, (position, key_id)
        assert replay(AuditLog(ledger.app, ledger.engine), ledger.engine).matches
    finally:
        ledger.close()


def sample_answers(ledger: Ledger, player: HistoryPlayer, chance: random.Random) -> list:
    keys = [ledger.index.key(i) for r, i in player.refs.items() if r.startswith("key-")]
    live = [k for k in keys if k is not None and not k.deleted]
    now = time.time()
    return [
        (
            ledger.index.position,
            key.id,
            {kind: sorted(ledger.index.access(key, kind, now)) for kind in KINDS},
        )
        for key in chance.sample(live, min(25, len(live)))
    ]


def test_an_events_time_asks_about_that_event(client: Any, story: dict) -> None:
    """`at` in the event log is the commit time by the store's clock, so
    asking at that time sees the event."""
    key_id, moments = story["key"]["id"], story["moments"]
    events = ok(client.get("/v1/audit/events", params={"holder": key_id}))["items"]
    granted = next(e for e in events if e["position"] == moments["granted"])
    then = ok(
        client.post(
            "/v1/check",
            json={
                "key_id": key_id,
                "kind": "model",
                "name": "gpt-4o",
                "at": granted["at"],
            },
        )
    )
    assert then["position"] == moments["granted"]
    assert len(then["reasons"]) == 2

    just_before = text_of(seconds_of(granted["at"]) - 1e-6)
    earlier = ok(client.get(f"/v1/keys/{key_id}/access", params={"at": just_before}))
    assert earlier["as_of"] < moments["granted"]


def test_grant_ranges_take_positions_too(client: Any, story: dict) -> None:
    key_id, moments = story["key"]["id"], story["moments"]
    query = {"key_id": key_id, "from": moments["revoked"]}
    assert ok(client.get("/v1/audit/grants", params=query))["items"] == []
    query = {"key_id": key_id, "to": moments["attached"] - 1}
    assert ok(client.get("/v1/audit/grants", params=query))["items"] == []
    query = {"key_id": key_id, "from": moments["granted"], "to": moments["granted"]}
    assert len(ok(client.get("/v1/audit/grants", params=query))["items"]) == 1
    assert client.get("/v1/audit/export", params={"from": 5, "to": 2}).status_code == 400


def test_fast_decoding_equals_the_mappers(
    ledger: Ledger, client: Any, story: dict
) -> None:
    """Every kind of event reads the same through orjson as through the
    library's mapper: same class, same fields, same values and types."""
    key, group = story["key"], story["group"]
    team = ok(client.post("/v1/teams", json={"name": "Ops", "access_groups": []}))
    ok(
        client.patch(
            f"/v1/keys/{key['id']}",
            json={
                "alias": "svc-2",
                "restrict": {"model": ["gpt-*"]},
                "expires_at": "2031-01-02T03:04:05.123456Z",
            },
        )
    )
    ok(client.post(f"/v1/keys/{key['id']}/block"))
    ok(client.post(f"/v1/keys/{key['id']}/rotate"))
    ok(client.post(f"/v1/teams/{team['id']}/block"))
    ok(client.put("/v1/catalog/model/o1", json={"description": "reasoning"}))
    ok(client.delete("/v1/catalog/model/o1"))
    ok(client.delete(f"/v1/access-groups/{group['id']}"))

    rows = ledger.audit.rows(0, 10_000)
    assert len({row.topic for row in rows}) >= 14
    for row in rows:
        fast = ledger.audit.decode(row)
        slow = ledger.audit.decode_by_mapper(row, bytes(row.state))
        assert type(fast) is type(slow)
        assert vars(fast) == vars(slow)
        for name, value in vars(slow).items():
            assert type(vars(fast)[name]) is type(value), name


def test_events_by_actor_page_through_a_bounded_scan(
    client: Any, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page by actor reads at most ACTOR_SCAN events: it may come back
    short, even empty, and going on from `next_after` finds the rest."""
    from projections import audit

    issued = ok(client.post("/v1/admin-tokens", json={"name": "alice", "role": "admin"}))
    alice = {"Authorization": f"Bearer {issued['token']}"}
    for number in range(12):
        headers = alice if number in (1, 10) else {}
        ok(client.put(f"/v1/catalog/model/m{number}", headers=headers))

    monkeypatch.setattr(audit, "ACTOR_SCAN", 4)
    monkeypatch.setattr(audit, "PAGE", 4)
    found, after, pages = [], 0, 0
    while after is not None:
        page = ok(
            client.get("/v1/audit/events", params={"actor": "alice", "after": after})
        )
        found += page["items"]
        after, pages = page["next_after"], pages + 1
    assert [e["data"]["name"] for e in found] == ["m1", "m10"]
    assert pages >= 3
    assert client.get("/v1/audit/events", params={"actor": ""}).status_code == 400


def test_a_resource_never_in_the_catalog_was_never_used(client: Any, story: dict) -> None:
    """Even a pattern that would match it grants nothing that never existed."""
    ok(client.post("/v1/keys", json={"alias": "wide", "grants": {"model": ["*"]}}))
    items = ok(
        client.get("/v1/audit/grants", params={"kind": "model", "name": "zz/none"})
    )
    assert items["items"] == []
