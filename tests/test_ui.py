"""The admin UI's pages and fragments through the test client, on both stores:
sign-in and CSRF, every form's happy path and refusals, and what pages show."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import select

from api.app import create_app
from api.auth import admin_tokens
from api.ledger import Ledger
from api.ui.sessions import digest, ui_sessions
from conftest import MASTER_KEY, TestClient, event_count

MODELS = ("openai/gpt-4o", "openai/gpt-4o-mini", "anthropic/claude-4")
ID = r"([0-9a-f-]{36})"


def register(client: TestClient) -> None:
    for name in MODELS:
        client.put(f"/v1/catalog/model/{name}").raise_for_status()
    client.put("/v1/catalog/mcp_server/github").raise_for_status()
    client.put("/v1/catalog/agent/triage").raise_for_status()


def sign_in(client: TestClient) -> str:
    """Sign in through the form; answer the session's CSRF token."""
    answer = client.post("/ui/sign-in", data={"token": MASTER_KEY})
    assert answer.status_code == 200
    return csrf_of(answer.text)


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


def create_group(client: TestClient, csrf: str, name: str = "Research", **picked) -> str:
    form: dict[str, Any] = {"csrf": csrf, "name": name, **picked}
    answer = client.post("/ui/groups", data=form, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    return answer.headers["location"].rsplit("/", 1)[1]


def create_key(client: TestClient, csrf: str, **fields) -> tuple[str, str]:
    answer = client.post("/ui/keys", data={"csrf": csrf, "alias": "gw", **fields})
    assert answer.status_code == 201, answer.text
    secret = re.search(r'id="secret" value="(sk-[^"]+)"', answer.text)
    key_id = re.search(rf'/ui/keys/{ID}"', answer.text)
    assert secret is not None and key_id is not None
    return key_id.group(1), secret.group(1)


@pytest.fixture
def ui(client: TestClient) -> tuple[TestClient, str]:
    register(client)
    return client, sign_in(client)


def test_pages_need_a_session_not_a_bearer_token(client: TestClient) -> None:
    # The fixture's client sends the master key as a bearer token on every call.
    for path in ("/ui", "/ui/groups", "/ui/keys/new", "/ui/audit"):
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 303
        assert answer.headers["location"] == "/ui/sign-in"
    fragment = client.get("/ui/groups/picker?kind=model", headers={"HX-Request": "1"})
    assert fragment.headers["HX-Redirect"] == "/ui/sign-in"


def test_sign_in_takes_exactly_the_admin_token(client: TestClient) -> None:
    refused = client.post("/ui/sign-in", data={"token": "sk-not-an-admin-token"})
    assert refused.status_code == 401
    assert "not valid" in refused.text
    assert "accessledger_session" not in refused.headers.get("set-cookie", "")

    answer = client.post(
        "/ui/sign-in", data={"token": MASTER_KEY}, follow_redirects=False
    )
    cookie = answer.headers["set-cookie"]
    assert answer.status_code == 303
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
    assert MASTER_KEY not in cookie


def test_sign_out_ends_the_session(ui: tuple[TestClient, str]) -> None:
    client, csrf = ui
    session = client.cookies["accessledger_session"]
    client.post("/ui/sign-out", data={"csrf": csrf})

    client.cookies.set("accessledger_session", session, path="/ui")
    answer = client.get("/ui/groups", follow_redirects=False)
    assert answer.status_code == 303


def test_every_replica_knows_the_session_and_the_store_keeps_only_a_hash(
    ui: tuple[TestClient, str], database_url: str
) -> None:
    client, csrf = ui
    session = client.cookies["accessledger_session"]
    replica = Ledger(database_url)
    try:
        other = TestClient(create_app(replica, admin_tokens(MASTER_KEY)))
        other.cookies.set("accessledger_session", session, path="/ui")
        answer = other.post("/ui/groups", data={"csrf": csrf, "name": "From B"})
        assert answer.status_code == 200 and "From B" in answer.text
        with replica.engine.connect() as connection:
            stored = connection.execute(select(ui_sessions)).all()
    finally:
        replica.close()
    assert digest(session) in {row.id_sha256 for row in stored}
    assert session not in repr(stored)


def test_a_form_without_the_session_csrf_token_changes_nothing(
    ui: tuple[TestClient, str], ledger
) -> None:
    client, csrf = ui
    before = event_count(ledger)
    for form in ({"name": "G"}, {"name": "G", "csrf": "forged"}):
        answer = client.post("/ui/groups", data=form)
        assert answer.status_code == 403
        assert "reload the page" in answer.text
    assert event_count(ledger) == before

    header = {"X-CSRF-Token": csrf}
    answer = client.post("/ui/groups", data={"name": "G"}, headers=header)
    assert answer.status_code == 200 and event_count(ledger) > before


def test_group_created_from_the_tabs_is_recorded_by_the_signed_in_actor(
    ui: tuple[TestClient, str],
) -> None:
    client, csrf = ui
    group_id = create_group(
        client,
        csrf,
        model=["openai/gpt-4o", "anthropic/*"],
        mcp_server="github",
        agent="triage",
        reason="pilot",
    )

    group = client.get(f"/v1/access-groups/{group_id}").json()
    assert group["grants"] == {
        "model": ["anthropic/*", "openai/gpt-4o"],
        "mcp_server": ["github"],
        "agent": ["triage"],
    }
    events = client.get(f"/v1/audit/events?holder={group_id}").json()["items"]
    assert {(e["actor"], e["reason"]) for e in events} == {("master", "pilot")}

    listing = client.get("/ui/groups?q=resea").text
    assert "Research" in listing and "<html" in listing
    rows = client.get("/ui/groups?q=resea", headers={"HX-Target": "group-rows"}).text
    assert "Research" in rows and "<html" not in rows
    assert (
        "<tr><td"
        in client.get("/ui/groups?q=zzz", headers={"HX-Target": "group-rows"}).text
    )
    detail = client.get(f"/ui/groups/{group_id}").text
    assert "pattern, matches 1 now" in detail


def test_editing_a_group_adds_and_removes_at_the_version_shown(
    ui: tuple[TestClient, str], ledger
) -> None:
    client, csrf = ui
    group_id = create_group(client, csrf, model=["openai/gpt-4o"])
    form = {"csrf": csrf, "name": "Research 2", "version": "1"}
    form["model"] = ["openai/gpt-4o-mini"]
    answer = client.post(f"/ui/groups/{group_id}/edit", data=form, follow_redirects=False)
    assert answer.status_code == 303
    group = client.get(f"/v1/access-groups/{group_id}").json()
    assert group["name"] == "Research 2"
    assert group["grants"]["model"] == ["openai/gpt-4o-mini"]

    before = event_count(ledger)
    stale = client.post(f"/ui/groups/{group_id}/edit", data={**form, "name": "Old"})
    assert stale.status_code == 412
    assert 'value="Old"' in stale.text
    assert event_count(ledger) == before


def test_a_refused_group_form_comes_back_with_what_was_typed(
    ui: tuple[TestClient, str], ledger
) -> None:
    client, csrf = ui
    before = event_count(ledger)
    form = {"csrf": csrf, "name": "G", "model": ["openai/gpt-4o", "no/such-model"]}
    answer = client.post("/ui/groups", data=form)
    assert answer.status_code == 422
    assert "no/such-model" in answer.text and 'role="alert"' in answer.text
    assert 'value="openai/gpt-4o"' in answer.text
    assert event_count(ledger) == before


def test_the_picker_searches_the_catalog_and_explains_patterns(
    ui: tuple[TestClient, str],
) -> None:
    client, _ = ui
    found = client.get("/ui/groups/picker?kind=model&q=GPT-4O").text
    assert 'data-name="openai/gpt-4o"' in found
    assert 'data-name="openai/gpt-4o-mini"' in found
    assert "anthropic" not in found

    pattern = client.get("/ui/groups/picker?kind=model&q=openai/*").text
    assert "matches 2 active models now" in pattern
    assert 'data-name="openai/*"' in pattern

    named = client.get("/ui/groups/picker?kind=model&q=x&prefix=grant_").text
    assert "No active models" in named
    assert client.get("/ui/groups/picker?kind=tool&q=x").status_code == 400
    assert client.get("/ui/groups/picker?kind=model&prefix=evil").status_code == 400


def test_the_picker_answers_a_page_of_names_only(ui: tuple[TestClient, str]) -> None:
    client, _ = ui
    names = [f"bulk/model-{n:04d}" for n in range(300)]
    client.post("/v1/catalog/sync", json={"kind": "model", "names": names})
    page = client.get("/ui/groups/picker?kind=model&q=bulk").text
    assert page.count("data-pick") == 25
    assert "type more to narrow" in page


def test_delete_shows_which_keys_lose_which_resources(
    ui: tuple[TestClient, str],
) -> None:
    client, csrf = ui
    group_id = create_group(client, csrf, model=["openai/gpt-4o", "openai/gpt-4o-mini"])
    # One key also has gpt-4o directly: it keeps that one.
    both, _ = create_key(
        client, csrf, alias="both", access_groups=group_id, grant_model="openai/gpt-4o"
    )
    only, _ = create_key(client, csrf, alias="only", access_groups=group_id)

    impact = client.get(f"/ui/groups/{group_id}/delete").text
    rows = dict(re.findall(rf'/ui/keys/{ID}">[^<]+</a></th>(.*?)</tr>', impact, re.S))
    assert "openai/gpt-4o-mini" in rows[both] and "openai/gpt-4o<" not in rows[both]
    assert "openai/gpt-4o<" in rows[only] and "openai/gpt-4o-mini" in rows[only]

    form = {"csrf": csrf, "version": "1", "reason": "retired project"}
    client.post(f"/ui/groups/{group_id}/delete", data=form)
    assert client.get(f"/v1/access-groups/{group_id}").status_code == 404
    access = client.get(f"/v1/keys/{only}/access").json()["resources"]
    assert access == {"model": [], "mcp_server": [], "agent": []}


def test_a_key_from_optional_settings_shows_its_secret_once(
    ui: tuple[TestClient, str],
) -> None:
    client, csrf = ui
    group_id = create_group(client, csrf, model=["openai/*"], agent="triage")
    form = {
        "access_groups": group_id,
        "restrict_model_on": "1",
        "restrict_model": "openai/gpt-4o\n",
        "expires_at": "2099-01-31T12:00",
    }
    key_id, secret = create_key(client, csrf, **form)
    key = client.get(f"/v1/keys/{key_id}").json()
    assert key["restrict"] == {"model": ["openai/gpt-4o"]}
    assert key["expires_at"].startswith("2099-01-31T12:00:00")

    detail = client.get(f"/ui/keys/{key_id}").text
    assert secret not in detail
    assert "group on the key" in detail and "Research" in detail
    assert "openai/gpt-4o-mini" not in detail  # left out by the restriction
    assert secret not in client.get("/ui/audit").text
    assert secret not in client.get(f"/v1/audit/events?holder={key_id}").text


def test_key_actions_block_rotate_and_delete(ui: tuple[TestClient, str]) -> None:
    client, csrf = ui
    key_id, secret = create_key(client, csrf, grant_model="openai/gpt-4o")
    client.post(f"/ui/keys/{key_id}/block", data={"csrf": csrf})
    assert client.get(f"/v1/keys/{key_id}").json()["status"] == "blocked"
    client.post(f"/ui/keys/{key_id}/unblock", data={"csrf": csrf})

    rotated = client.post(f"/ui/keys/{key_id}/rotate", data={"csrf": csrf}).text
    new_secret = re.search(r'value="(sk-[^"]+)"', rotated)
    assert new_secret is not None and new_secret.group(1) != secret
    old = client.get("/v1/models", headers={"Authorization": f"Bearer {secret}"})
    assert old.status_code == 401

    assert client.post(f"/ui/keys/{key_id}/melt", data={"csrf": csrf}).status_code == 404
    client.post(f"/ui/keys/{key_id}/delete", data={"csrf": csrf})
    assert client.get(f"/ui/keys/{key_id}").status_code == 404


def test_a_refused_key_form_records_nothing(ui: tuple[TestClient, str], ledger) -> None:
    client, csrf = ui
    before = event_count(ledger)
    for bad in ({"expires_at": "tomorrow"}, {"team_id": "no-such-team"}):
        answer = client.post("/ui/keys", data={"csrf": csrf, "alias": "gw", **bad})
        assert 400 <= answer.status_code < 500
        assert 'role="alert"' in answer.text and 'value="gw"' in answer.text
    assert event_count(ledger) == before


def test_key_access_as_of_a_past_time(ui: tuple[TestClient, str]) -> None:
    client, csrf = ui
    group_id = create_group(client, csrf, model=["openai/gpt-4o"])
    key_id, _ = create_key(client, csrf, access_groups=group_id)
    # An event's `at` is its commit time, the clock as-of questions use.
    events = client.get(f"/v1/audit/events?holder={key_id}").json()["items"]
    created = events[0]["at"]
    client.post(f"/ui/groups/{group_id}/delete", data={"csrf": csrf, "version": "1"})

    then = client.get(f"/ui/keys/{key_id}", params={"at": created}).text
    assert "openai/gpt-4o" in then and "with the names of then" in then
    now = client.get(f"/ui/keys/{key_id}").text
    assert '<code class="resource">' not in now
    assert "Deleted" not in now  # the timeline lists the key's own events
    assert "Created" in now
    future = client.get(f"/ui/keys/{key_id}", params={"at": "2999-01-01T00:00"})
    assert future.status_code == 400


def test_teams_attach_groups_block_and_list_members(ui: tuple[TestClient, str]) -> None:
    client, csrf = ui
    group_id = create_group(client, csrf, model=["openai/gpt-4o"])
    answer = client.post(
        "/ui/teams", data={"csrf": csrf, "name": "Platform"}, follow_redirects=False
    )
    team_id = answer.headers["location"].rsplit("/", 1)[1]
    client.post(f"/ui/teams/{team_id}/attach", data={"csrf": csrf, "group_id": group_id})
    key_id, _ = create_key(client, csrf, team_id=team_id)

    detail = client.get(f"/ui/teams/{team_id}").text
    assert f"/ui/keys/{key_id}" in detail and f"/ui/groups/{group_id}" in detail
    assert "keys through those teams" in client.get(f"/ui/groups/{group_id}").text.lower()
    key_page = client.get(f"/ui/keys/{key_id}").text
    assert "group on its team" in key_page
    # The timeline has the changes of the key's team and of its team's group.
    timeline = key_page[key_page.index("<h2>Timeline</h2>") :]
    assert "team Platform:" in timeline and "GroupAttached" in timeline
    assert "group Research:" in timeline and "openai/gpt-4o" in timeline

    version = str(client.get(f"/v1/teams/{team_id}").json()["version"])
    grants = {"csrf": csrf, "version": version, "model": "anthropic/claude-4"}
    client.post(f"/ui/teams/{team_id}/grants", data=grants)
    team = client.get(f"/v1/teams/{team_id}").json()
    assert team["grants"]["model"] == ["anthropic/claude-4"]
    stale = client.post(f"/ui/teams/{team_id}/grants", data={**grants, "model": []})
    assert stale.status_code == 412

    client.post(f"/ui/teams/{team_id}/block", data={"csrf": csrf})
    assert "team blocked" in client.get(f"/ui/keys/{key_id}").text
    taken = client.post("/ui/teams", data={"csrf": csrf, "name": "platform"})
    assert taken.status_code == 409 and 'role="alert"' in taken.text


def test_catalog_register_and_retire(ui: tuple[TestClient, str]) -> None:
    client, csrf = ui
    form = {
        "csrf": csrf,
        "kind": "mcp_server",
        "name": "jira",
        "description": "Work items",
    }
    client.post("/ui/catalog", data=form)
    page = client.get("/ui/catalog?kind=mcp_server&q=JI").text
    assert "jira" in page and "Retire jira" in page

    client.post("/ui/catalog/retire", data={**form, "description": ""})
    retired = client.get("/ui/catalog?kind=mcp_server&status=retired").text
    assert "Register again jira" in retired
    assert client.get("/ui/catalog?kind=tool").status_code == 400
    bad = client.post("/ui/catalog", data={**form, "name": "a\x01b"})
    assert bad.status_code == 422


def test_audit_page_filters_by_holder_and_time(ui: tuple[TestClient, str]) -> None:
    client, csrf = ui
    group_id = create_group(client, csrf, model=["openai/gpt-4o"], reason="why not")
    page = client.get("/ui/audit", params={"holder": group_id}).text
    assert "AccessGroup.Created" in page and "why not" in page
    assert "<code>openai/gpt-4o</code>" in page  # what the event granted
    assert "CatalogResource" not in page
    # Since a time: the events committed after it.
    since = client.get("/ui/audit", params={"since": "2000-01-01T00:00"}).text
    assert "CatalogResource.Registered" in since and "AccessGroup.Created" in since
    later = client.get("/ui/audit", params={"since": "2999-01-01T00:00:00Z"})
    assert "No events." in later.text
    assert client.get("/ui/audit?holder=not-an-id").status_code == 400
    # By actor: everything here was done by the master key.
    assert "AccessGroup.Created" in client.get("/ui/audit?actor=master").text
    assert "No events." in client.get("/ui/audit?actor=nobody").text
    assert client.get("/ui/audit", params={"actor": "a\x07"}).status_code == 400


PAGES = (
    "/ui/sign-in",
    "/ui/groups",
    "/ui/groups/new",
    "/ui/keys",
    "/ui/keys/new",
    "/ui/teams",
    "/ui/catalog",
    "/ui/catalog?kind=agent",
    "/ui/audit",
    "/docs",
)


def test_no_page_links_to_another_host(ui: tuple[TestClient, str]) -> None:
    client, csrf = ui
    group_id = create_group(client, csrf, model=["openai/*"])
    key_id, _ = create_key(client, csrf, access_groups=group_id)
    pages = [*PAGES, f"/ui/groups/{group_id}", f"/ui/groups/{group_id}/edit"]
    pages += [f"/ui/groups/{group_id}/delete", f"/ui/keys/{key_id}"]
    team = client.post("/v1/teams", json={"name": "T", "access_groups": [group_id]})
    pages += [f"/ui/teams/{team.json()['id']}", f"/ui/audit?holder={group_id}"]
    for path in pages:
        answer = client.get(path)
        assert answer.status_code == 200, path
        assert re.search(r"https?://", answer.text) is None, path


def test_docs_load_every_asset_from_this_service(client: TestClient) -> None:
    page = client.get("/docs").text
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert assets and all(a.startswith(("/docs/assets/", "data:")) for a in assets)
    for asset in assets:
        assert asset.startswith("data:") or client.get(asset).status_code == 200
    assert client.get("/openapi.json").status_code == 200


def test_unknown_holders_and_bad_forms_are_pages_not_500s(
    ui: tuple[TestClient, str],
) -> None:
    client, csrf = ui
    for path in ("/ui/groups/nope", "/ui/keys/nope", "/ui/teams/nope"):
        answer = client.get(path)
        assert answer.status_code == 404 and "text/html" in answer.headers["content-type"]
    upload = client.post(
        "/ui/groups", data={"csrf": csrf}, files={"name": ("n.txt", b"x")}
    )
    assert upload.status_code == 400
    assert client.get("/ui/groups?after=-1").status_code == 400
    assert client.post("/ui/teams/nope/block", data={"csrf": csrf}).status_code == 404
