"""The plain check answered before the framework gives the route's answer.

`?min_position=0` asks the same question with a query string, which the
plain-ASGI layer leaves to the FastAPI route: comparing the two, status,
body and headers, holds the layer to the route for every kind of answer.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from conftest import MASTER_KEY
from test_observability import samples, value

FULL_ROUTE = "/v1/check?min_position=0"
# Set per response by the server, not by either path.
VARYING = {"date", "server"}


@pytest.fixture
def world(client: Any) -> dict[str, Any]:
    """Keys that between them get every answer a check can give."""
    for name in ("openai/gpt-4o", "openai/o1", "anthropic/claude", "vertex/gemini"):
        client.put(f"/v1/catalog/model/{name}")
    client.put("/v1/catalog/mcp_server/github")
    client.put("/v1/catalog/agent/planner")
    client.put("/v1/catalog/model/old")
    group = post(client, "/v1/access-groups", name="g", grants={"model": ["openai/*"]})
    team = post(client, "/v1/teams", name="t", grants={"mcp_server": ["github"]})
    client.put(f"/v1/teams/{team['id']}/access-groups/{group['id']}")
    keys = {
        "direct": post(client, "/v1/keys", alias="d", grants={"agent": ["planner"]}),
        "grouped": post(client, "/v1/keys", alias="g", access_groups=[group["id"]]),
        "teamed": post(client, "/v1/keys", alias="t", team_id=team["id"]),
        "limited": post(
            client,
            "/v1/keys",
            alias="l",
            access_groups=[group["id"]],
            grants={"model": ["old"]},
            restrict={"model": ["openai/o1"]},
        ),
        "blocked": post(client, "/v1/keys", alias="b", access_groups=[group["id"]]),
        "expired": post(
            client,
            "/v1/keys",
            alias="e",
            grants={"agent": ["planner"]},
            expires_at="2020-01-01T00:00:00Z",
        ),
        "deleted": post(client, "/v1/keys", alias="x", grants={"agent": ["planner"]}),
    }
    client.post(f"/v1/keys/{keys['blocked']['id']}/block")
    client.delete(f"/v1/keys/{keys['deleted']['id']}")
    client.delete("/v1/catalog/model/old")
    return {"keys": keys, "team": team}


def post(client: Any, path: str, **body: Any) -> dict[str, Any]:
    response = client.post(path, json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def questions(world: dict[str, Any]) -> list[Any]:
    keys = world["keys"]
    names = [
        ("model", "openai/gpt-4o"),
        ("model", "openai/o1"),
        ("model", "anthropic/claude"),
        ("model", "old"),
        ("model", "never-registered"),
        ("mcp_server", "github"),
        ("agent", "planner"),
    ]
    asked: list[Any] = []
    for key in keys.values():
        for kind, name in names:
            asked.append({"key_id": key["id"], "kind": kind, "name": name})
        asked.append({"key": key["secret"], "kind": "model", "name": "openai/o1"})
    asked.append({"key_id": "no-such-key", "kind": "model", "name": "openai/o1"})
    asked.append({"key": "sk-unknown", "kind": "model", "name": "openai/o1"})
    return asked


def same_answer(client: Any, body: Any, **options: Any) -> Any:
    """Ask both ways; assert the answers match; give the plain one."""
    plain = client.post("/v1/check", json=body, **options)
    full = client.post(FULL_ROUTE, json=body, **options)
    assert plain.status_code == full.status_code, body
    assert plain.content == full.content, body
    assert headers(plain) == headers(full), body
    return plain


def headers(response: Any) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k not in VARYING}


def test_every_kind_of_answer_matches_the_route(client: Any, world: dict) -> None:
    reasons = set()
    for body in questions(world):
        answer = same_answer(client, body).json()
        reasons.add(answer["denied_because"])

    assert reasons == {
        None,
        "unknown_key",
        "key_deleted",
        "key_blocked",
        "key_expired",
        "unknown_resource",
        "retired_resource",
        "no_grant",
        "restricted",
    }


def test_a_blocked_team_answers_the_same(client: Any, world: dict) -> None:
    client.post(f"/v1/teams/{world['team']['id']}/block")
    teamed = world["keys"]["teamed"]["id"]

    answer = same_answer(
        client, {"key_id": teamed, "kind": "mcp_server", "name": "github"}
    )

    assert answer.json()["denied_because"] == "team_blocked"


BAD_BODIES = [
    b"",
    b"not json",
    b"[]",
    b'{"kind": "model", "name": "x"}',
    b'{"key_id": "k", "key": "s", "kind": "model", "name": "x"}',
    b'{"key_id": 7, "kind": "model", "name": "x"}',
    b'{"key_id": "k", "kind": "tool", "name": "x"}',
    b'{"key_id": "k", "kind": "model", "name": ""}',
    b'{"key_id": "k", "kind": "model", "name": " x"}',
    b'{"key_id": "k", "kind": "model", "name": "a\\u0000b"}',
    b'{"key_id": "k", "kind": "model", "name": "a\\u202eb"}',
    b'{"key_id": "k", "kind": "model", "name": "x", "extra": 1}',
    b'{"key_id": "k", "kind": "model", "name": "x", "at": "yesterday"}',
    b'{"key_id": "k", "kind": "model", "name": "' + b"n" * 20_000 + b'"}',
]


@pytest.mark.parametrize("body", BAD_BODIES, ids=range(len(BAD_BODIES)))
def test_bad_bodies_get_the_routes_errors(client: Any, body: bytes) -> None:
    answer = same_answer(client, None, content=body)

    assert answer.status_code in (400, 422)
    assert answer.json()["error"]["code"] in ("invalid_request", "invalid_selector")


def test_tokens_and_roles_are_the_routes(client: Any, world: dict) -> None:
    body = {
        "key_id": world["keys"]["grouped"]["id"],
        "kind": "model",
        "name": "openai/o1",
    }
    made = {
        role: client.post("/v1/admin-tokens", json={"name": role, "role": role}).json()
        for role in ("gateway", "auditor")
    }

    for role, token in made.items():
        bearer = {"Authorization": f"Bearer {token['token']}"}
        assert same_answer(client, body, headers=bearer).json()["allowed"], role
    for refused in ({"Authorization": "Bearer wrong"}, {"Authorization": ""}):
        assert same_answer(client, body, headers=refused).status_code == 401

    client.delete(f"/v1/admin-tokens/{made['gateway']['id']}")
    revoked = {"Authorization": f"Bearer {made['gateway']['token']}"}
    assert client.post("/v1/check", json=body, headers=revoked).status_code == 401


def test_plain_checks_are_counted_and_logged(
    client: Any, world: dict, caplog: pytest.LogCaptureFixture
) -> None:
    body = {
        "key_id": world["keys"]["grouped"]["id"],
        "kind": "model",
        "name": "openai/o1",
    }
    before = samples(client)

    with caplog.at_level(logging.INFO, logger="accessledger.requests"):
        answer = client.post("/v1/check", json=body)

    found = samples(client)
    route = {"method": "POST", "route": "/v1/check"}
    for name, labels in (
        ("accessledger_requests_total", {**route, "status": "200"}),
        ("accessledger_request_duration_seconds_count", route),
        ("accessledger_checks_total", {"outcome": "allowed", "reason": ""}),
    ):
        assert value(found, name, **labels) == value(before, name, **labels) + 1
    lines = [json.loads(r.getMessage()) for r in caplog.records]
    assert [line["route"] for line in lines] == ["/v1/check"]
    assert lines[0]["actor"] == "master" and lines[0]["status"] == 200
    assert lines[0]["position"] == answer.json()["position"]
    assert MASTER_KEY not in caplog.text


def test_a_body_sent_in_pieces_is_answered(
    live_url: str, client: Any, world: dict
) -> None:
    import http.client
    from urllib.parse import urlparse

    body = {
        "key_id": world["keys"]["grouped"]["id"],
        "kind": "model",
        "name": "openai/o1",
    }
    encoded = json.dumps(body).encode()
    address = urlparse(live_url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)

    connection.putrequest("POST", "/v1/check")
    connection.putheader("Authorization", f"Bearer {MASTER_KEY}")
    connection.putheader("Transfer-Encoding", "chunked")
    connection.endheaders()
    for piece in (encoded[:10], encoded[10:]):
        connection.send(b"%x\r\n%s\r\n" % (len(piece), piece))
    connection.send(b"0\r\n\r\n")
    answer = connection.getresponse()

    assert answer.status == 200
    assert json.loads(answer.read())["allowed"] is True
    connection.close()


def test_a_body_announced_too_long_is_refused_before_it_is_sent(live_url: str) -> None:
    import socket
    from urllib.parse import urlparse

    address = urlparse(live_url)
    request = (
        b"POST /v1/check HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + MASTER_KEY.encode()
        + b"\r\nContent-Length: 5000000\r\n\r\n"
        + b'{"key_id": "k", "kind": "model", "name": "x"}'
    )
    with socket.create_connection((address.hostname, address.port), timeout=5) as sent:
        sent.sendall(request)
        answer = sent.recv(65536)

    assert answer.startswith(b"HTTP/1.1 413 ")


def test_a_bulk_check_may_mix_now_and_the_past(client: Any, world: dict) -> None:
    key = world["keys"]["grouped"]["id"]
    now = {"key_id": key, "kind": "model", "name": "openai/o1"}
    then_position = client.post("/v1/check", json=now).json()["position"]
    client.delete("/v1/catalog/model/openai/o1")
    then = {**now, "position": then_position}

    answers = client.post("/v1/check/bulk", json={"checks": [now, then, now]})

    assert answers.status_code == 200, answers.text
    results = answers.json()["results"]
    assert results[0] == results[2] == client.post("/v1/check", json=now).json()
    assert results[1] == client.post("/v1/check", json=then).json()
    assert results[0]["denied_because"] == "retired_resource"
    assert results[1]["allowed"] is True
