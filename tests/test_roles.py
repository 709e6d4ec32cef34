"""Roles against the app's own route table: every route is in the table below,
so a new route cannot escape it; each answers 401 without a token and 403 to
every role that must not reach it. Also revocation across replicas, and the
slow-down of a client that keeps failing to sign in."""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any, Iterator

import fastapi.routing
import pytest

from api.auth import FREE_FAILURES
from api.roles import Allowed
from conftest import MASTER_KEY, replica_clients

EVERYONE = {"admin", "auditor", "gateway"}
READ = {"admin", "auditor"}
ADMIN_ONLY = {"admin"}

# Every route of the app: (method, path) -> the roles that reach it.
ROUTE_ROLES: dict[tuple[str, str], set[str]] = {
    ("POST", "/v1/check"): EVERYONE,
    ("POST", "/v1/check/bulk"): EVERYONE,
    ("GET", "/v1/keys/{key_id}/access"): EVERYONE,
    ("GET", "/v1/who-can-use"): READ,
    ("GET", "/v1/catalog"): READ,
    ("POST", "/v1/catalog/sync"): ADMIN_ONLY,
    ("GET", "/v1/catalog/{kind}/{name}"): READ,
    ("PUT", "/v1/catalog/{kind}/{name}"): ADMIN_ONLY,
    ("DELETE", "/v1/catalog/{kind}/{name}"): ADMIN_ONLY,
    ("POST", "/v1/access-groups"): ADMIN_ONLY,
    ("GET", "/v1/access-groups"): READ,
    ("GET", "/v1/access-groups/{group_id}"): READ,
    ("PATCH", "/v1/access-groups/{group_id}"): ADMIN_ONLY,
    ("DELETE", "/v1/access-groups/{group_id}"): ADMIN_ONLY,
    ("GET", "/v1/access-groups/{group_id}/usage"): READ,
    ("POST", "/v1/teams"): ADMIN_ONLY,
    ("GET", "/v1/teams"): READ,
    ("GET", "/v1/teams/{team_id}"): READ,
    ("PATCH", "/v1/teams/{team_id}"): ADMIN_ONLY,
    ("DELETE", "/v1/teams/{team_id}"): ADMIN_ONLY,
    ("PUT", "/v1/teams/{team_id}/access-groups/{group_id}"): ADMIN_ONLY,
    ("DELETE", "/v1/teams/{team_id}/access-groups/{group_id}"): ADMIN_ONLY,
    ("POST", "/v1/teams/{team_id}/block"): ADMIN_ONLY,
    ("POST", "/v1/teams/{team_id}/unblock"): ADMIN_ONLY,
    ("POST", "/v1/keys"): ADMIN_ONLY,
    ("GET", "/v1/keys"): READ,
    ("GET", "/v1/keys/{key_id}"): READ,
    ("PATCH", "/v1/keys/{key_id}"): ADMIN_ONLY,
    ("DELETE", "/v1/keys/{key_id}"): ADMIN_ONLY,
    ("PUT", "/v1/keys/{key_id}/access-groups/{group_id}"): ADMIN_ONLY,
    ("DELETE", "/v1/keys/{key_id}/access-groups/{group_id}"): ADMIN_ONLY,
    ("POST", "/v1/keys/{key_id}/block"): ADMIN_ONLY,
    ("POST", "/v1/keys/{key_id}/unblock"): ADMIN_ONLY,
    ("POST", "/v1/keys/{key_id}/rotate"): ADMIN_ONLY,
    ("GET", "/v1/audit/events"): READ,
    ("GET", "/v1/audit/grants"): READ,
    ("POST", "/v1/audit/replay"): READ,
    ("GET", "/v1/audit/export"): READ,
    ("POST", "/v1/admin-tokens"): ADMIN_ONLY,
    ("GET", "/v1/admin-tokens"): ADMIN_ONLY,
    ("GET", "/v1/admin-tokens/{token_id}"): ADMIN_ONLY,
    ("DELETE", "/v1/admin-tokens/{token_id}"): ADMIN_ONLY,
}
# Routes that take no admin token: a key's own secret, or nothing at all.
KEY_SECRET_ONLY = {("GET", "/v1/models"), ("GET", "/v1/models/{model_id}")}
OPEN = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/ui/sign-in"),
    ("POST", "/ui/sign-in"),
}
# The web UI's pages take a session cookie, given only to the admin role.
UI = "/ui"
PLACEHOLDER = "00000000-0000-4000-8000-000000000000"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def tokens(client: Any) -> dict[str, str]:
    """One token per role, issued by the master key."""
    issued = {}
    for role in ("admin", "auditor", "gateway"):
        answer = client.post("/v1/admin-tokens", json={"name": f"{role}-1", "role": role})
        assert answer.status_code == 201, answer.text
        issued[role] = answer.json()["token"]
    return issued


def every_route(app: Any) -> Iterator[tuple[str, str, Any]]:
    """Every (method, path) the app serves. Newer FastAPI keeps an included
    router as one entry of `app.routes` and offers a walk that opens it."""
    walk = getattr(fastapi.routing, "iter_route_contexts", list)
    for route in walk(app.routes):
        for method in sorted(getattr(route, "methods", None) or ()):
            if method != "HEAD":
                yield method, route.path.replace(":path}", "}"), route


def declared_roles(route: Any) -> set[str] | None:
    """The roles the route's own dependencies admit, or None without any."""
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return None
    found = [d.call for d in dependant.dependencies if isinstance(d.call, Allowed)]
    return set(found[0].roles) if found else None


def concrete(path: str) -> str:
    return (
        path.replace("{kind}", "model")
        .replace("{name}", "gpt-4o")
        .replace("{key_id}", PLACEHOLDER)
        .replace("{team_id}", PLACEHOLDER)
        .replace("{group_id}", PLACEHOLDER)
        .replace("{token_id}", PLACEHOLDER)
    )


def test_every_route_declares_its_roles(client: Any) -> None:
    seen = set()
    for method, path, route in every_route(client.app):
        seen.add((method, path))
        if (method, path) in OPEN | KEY_SECRET_ONLY or path.startswith(UI):
            assert declared_roles(route) is None, (method, path)
            continue
        assert (method, path) in ROUTE_ROLES, f"{method} {path} is not in ROUTE_ROLES"
        assert declared_roles(route) == ROUTE_ROLES[method, path], (method, path)
    assert set(ROUTE_ROLES) <= seen, set(ROUTE_ROLES) - seen


def test_each_route_refuses_no_token_and_every_role_left_out(
    client: Any, tokens: dict[str, str]
) -> None:
    refused = 0
    for method, path, _ in every_route(client.app):
        if (method, path) not in ROUTE_ROLES:
            continue
        url = concrete(path)
        anonymous = client.request(method, url, headers={"Authorization": ""})
        # Refusals slow a client down; this sweep is one client making many.
        client.app.state.sign_ins.failures.clear()
        assert anonymous.status_code == 401, (method, path)
        assert anonymous.json()["error"]["code"] == "unauthorized"
        for role, token in tokens.items():
            answer = client.request(method, url, headers=bearer(token), json={})
            if role in ROUTE_ROLES[method, path]:
                assert answer.status_code not in (401, 403), (role, method, path)
            else:
                assert answer.status_code == 403, (role, method, path)
                assert answer.json()["error"]["code"] == "forbidden"
                refused += 1
    assert refused > 50


def test_every_page_of_the_ui_wants_a_session(client: Any) -> None:
    """Without a session, pages send the browser to sign in and forms
    change nothing, whatever token the request carries."""
    before = len(client.get("/v1/audit/events").json()["items"])
    pages = 0
    for method, path, _ in every_route(client.app):
        if not path.startswith(UI) or (method, path) in OPEN:
            continue
        answer = client.request(method, concrete(path), follow_redirects=False)
        if method == "GET":
            assert answer.status_code == 303, (method, path)
            assert answer.headers["location"] == "/ui/sign-in", (method, path)
        else:
            assert answer.status_code in (303, 403), (method, path)
        pages += 1
    assert pages > 20
    assert len(client.get("/v1/audit/events").json()["items"]) == before


def test_only_the_admin_role_signs_in_to_the_ui(
    client: Any, tokens: dict[str, str]
) -> None:
    for role, token in tokens.items():
        answer = client.post("/ui/sign-in", data={"token": token}, follow_redirects=False)
        assert answer.status_code == (303 if role == "admin" else 403), role


def test_models_take_only_a_key_secret(client: Any, tokens: dict[str, str]) -> None:
    key = client.post("/v1/keys", json={"alias": "k"}).json()
    assert client.get("/v1/models", headers=bearer(key["secret"])).status_code == 200
    for token in [MASTER_KEY, *tokens.values()]:
        assert client.get("/v1/models", headers=bearer(token)).status_code == 401
    on_admin_route = client.get("/v1/keys", headers=bearer(key["secret"]))
    assert on_admin_route.status_code == 401


def test_a_token_is_shown_once_and_acts_under_its_name(
    client: Any, tokens: dict[str, str]
) -> None:
    listed = client.get("/v1/admin-tokens").json()["items"]
    assert {t["name"]: t["role"] for t in listed} == {
        "admin-1": "admin",
        "auditor-1": "auditor",
        "gateway-1": "gateway",
    }
    assert all("token" not in t for t in listed)
    first = client.get("/v1/admin-tokens", params={"limit": 2}).json()
    rest = client.get(
        "/v1/admin-tokens", params={"limit": 2, "cursor": first["next_cursor"]}
    ).json()
    assert [t["name"] for t in first["items"] + rest["items"]] == [
        t["name"] for t in listed
    ]
    assert rest["next_cursor"] is None

    group = client.post(
        "/v1/access-groups", json={"name": "G"}, headers=bearer(tokens["admin"])
    )
    events = client.get("/v1/audit/events", headers=bearer(tokens["auditor"])).json()
    created = [e for e in events["items"] if e["holder"] == group.json()["id"]]
    assert created[0]["actor"] == "admin-1"
    assert all(t not in str(events) for t in tokens.values())


@pytest.mark.parametrize(
    "body",
    [
        {"name": "master", "role": "admin"},
        {"name": "Admin-1", "role": "admin"},
        {"name": "x", "role": "root"},
        {"name": "", "role": "admin"},
        {"name": "x"},
    ],
)
def test_bad_token_requests_are_refused(
    client: Any, tokens: dict[str, str], body: dict
) -> None:
    answer = client.post("/v1/admin-tokens", json=body)
    assert answer.status_code in (400, 409, 422), answer.text
    assert len(client.get("/v1/admin-tokens").json()["items"]) == 3


@pytest.fixture
def replicas(database_url: str) -> Iterator[tuple[Any, Any]]:
    with replica_clients(database_url) as clients:
        yield clients


def test_tokens_replay_and_keep_their_hash_out_of_the_audit(client: Any) -> None:
    issued = client.post("/v1/admin-tokens", json={"name": "a", "role": "gateway"})
    client.post("/v1/admin-tokens", json={"name": "b", "role": "auditor"})
    client.delete(f"/v1/admin-tokens/{issued.json()['id']}")

    replay = client.post("/v1/audit/replay", json={}).json()
    events = client.get("/v1/audit/events").json()["items"]

    assert replay["matches"], replay["differences"]
    token_hash = hashlib.sha256(issued.json()["token"].encode()).hexdigest()
    assert token_hash not in str(events)
    assert [e["type"] for e in events if e["type"].startswith("AdminToken")] == [
        "AdminToken.Issued",
        "AdminToken.Issued",
        "AdminToken.Revoked",
    ]


def test_revocation_holds_at_once_on_every_replica(replicas: tuple[Any, Any]) -> None:
    one, two = replicas
    issued = one.post("/v1/admin-tokens", json={"name": "ops", "role": "auditor"}).json()
    assert two.get("/v1/keys", headers=bearer(issued["token"])).status_code == 200

    assert one.delete(f"/v1/admin-tokens/{issued['id']}").status_code == 204

    for replica in (one, two):
        answer = replica.get("/v1/keys", headers=bearer(issued["token"]))
        assert answer.status_code == 401
    assert one.delete(f"/v1/admin-tokens/{issued['id']}").status_code == 404
    assert two.get(f"/v1/admin-tokens/{issued['id']}").status_code == 404


def test_refused_sign_ins_are_logged_without_the_token_and_slowed(
    client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "adm-not-a-real-token-but-long-enough"
    caplog.set_level(logging.WARNING, logger="accessledger")
    for _ in range(FREE_FAILURES):
        assert client.get("/v1/keys", headers=bearer(wrong)).status_code == 401

    started = time.monotonic()
    assert client.get("/v1/keys", headers=bearer(wrong)).status_code == 401
    assert time.monotonic() - started >= 0.25

    lines = [r.getMessage() for r in caplog.records if "sign-in refused" in r.message]
    assert len(lines) == FREE_FAILURES + 1
    assert all(wrong not in line for line in caplog.messages)


@pytest.mark.parametrize("trusted", ["", "127.0.0.1"])
def test_a_forwarded_address_counts_only_from_a_trusted_proxy(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, trusted: str
) -> None:
    """`serve` itself: a local client naming itself anew in X-Forwarded-For on
    every refused sign-in is still slowed down, unless it is a proxy the
    operator trusts (which then names the clients)."""
    import http.client

    from bench.core import Server

    monkeypatch.setenv("ACCESSLEDGER_TRUSTED_PROXIES", trusted)
    server = Server(sqlite_url, MASTER_KEY)
    try:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        for attempt in range(FREE_FAILURES + 1):
            started = time.monotonic()
            headers = {
                "Authorization": "Bearer wrong",
                "X-Forwarded-For": f"10.0.0.{attempt}",
            }
            connection.request("GET", "/v1/keys", headers=headers)
            connection.getresponse().read()
        waited = time.monotonic() - started
        connection.close()
    finally:
        server.stop()

    assert (waited >= 0.25) == (not trusted)
