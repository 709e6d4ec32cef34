"""Secrets are shown once: after playing part of the org history through the
API, no key secret or admin token is anywhere but in the answer that issued
it: not in any table of the store, any log line, the audit export or any
other answer."""

from __future__ import annotations

import json
import logging
import re
from typing import Any, Iterator

import pytest
from sqlalchemy import inspect

from api.app import create_app
from api.auth import admin_tokens
from api.cli import play_all
from api.history import HistoryPlayer, HttpBackend
from api.ledger import Ledger
from conftest import ADMIN, MASTER_KEY, SHARED, TestClient

# Far enough into the history to create thousands of keys and rotate some.
HISTORY_LINES = 10_500
# Both kinds of secret end in 43 URL-safe characters (256 bits).
RUN = re.compile(r"[A-Za-z0-9_-]{43,}")


def bodies_of_secrets(text: str, wanted: set[str]) -> set[str]:
    """The secrets whose 43 random characters appear anywhere in `text`."""
    found = set()
    for run in RUN.findall(text):
        for start in range(len(run) - 42):
            if run[start : start + 43] in wanted:
                found.add(run[start : start + 43])
    return found


def store_text(ledger: Any) -> str:
    """Every row of every table of the store, as text (bytes as Latin-1)."""
    parts = []
    with ledger.engine.connect() as connection:
        for name in inspect(connection).get_table_names():
            # Raw rows, with no type conversion that could hide a value.
            for row in connection.exec_driver_sql(f'SELECT * FROM "{name}"'):
                for value in row:
                    if isinstance(value, (bytes, memoryview)):
                        value = bytes(value).decode("latin-1")
                    parts.append(str(value))
    return "\n".join(parts)


@pytest.fixture
def client(sqlite_url: str) -> Iterator[Any]:
    """SQLite only: the sweep reads every table, which is the same on both."""
    ledger = Ledger(sqlite_url)
    with TestClient(create_app(ledger, admin_tokens(MASTER_KEY)), headers=ADMIN) as test:
        yield test
    ledger.close()


@pytest.mark.slow
def test_no_secret_is_kept_or_shown_twice(
    client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    answers: list[tuple[str, str]] = []

    def keep(response: Any) -> None:
        response.read()
        answers.append(
            (f"{response.request.method} {response.request.url.path}", response.text)
        )

    client.event_hooks["response"] = [keep]
    lines = (SHARED / "data/org/history.jsonl").read_text().splitlines()[:HISTORY_LINES]
    changes = register_catalog(client, lines)
    player = HistoryPlayer(HttpBackend(client))
    assert play_all(player, changes, show_progress=False) is None
    client.post("/v1/admin-tokens", json={"name": "ops", "role": "auditor"})
    key = client.post("/v1/keys", json={"alias": "rotated twice"}).json()
    for _ in range(2):
        client.post(f"/v1/keys/{key['id']}/rotate", headers={"Idempotency-Key": "r1"})
    read_everything(client)

    issuing = [text for route, text in answers if is_issuing(route)]
    other = [text for route, text in answers if not is_issuing(route)]
    wanted = {secret_in(text) for text in issuing} - {None}
    assert len(wanted) > 2000
    print(f"swept for {len(wanted)} secrets over {len(answers)} answers")
    assert any("/rotate" in route for route, _ in answers)

    shown = [bodies_of_secrets(text, wanted) for text in issuing]
    assert sum(len(found) for found in shown) == len(wanted)
    assert bodies_of_secrets("\n".join(other), wanted) == set()
    assert bodies_of_secrets(store_text(client.app.state.ledger), wanted) == set()
    assert bodies_of_secrets("\n".join(caplog.messages), wanted) == set()


def register_catalog(client: Any, lines: list[str]) -> list[str]:
    """Register the catalog the history starts with in one sync per kind
    (no secret is there); answer the operations after it, played one by one."""
    names: dict[str, list[str]] = {}
    first = 0
    while json.loads(lines[first])["op"] == "register":
        op = json.loads(lines[first])
        names.setdefault(op["kind"], []).append(op["name"])
        first += 1
    changes = lines[first:]
    for kind, kind_names in names.items():
        client.post("/v1/catalog/sync", json={"kind": kind, "names": kind_names})
    return changes


def secret_in(text: str) -> str | None:
    """The random part of the secret or token an issuing answer carries."""
    answer = json.loads(text)
    issued = answer.get("secret") or answer.get("token")
    return issued.split("-", 1)[1] if issued else None


def is_issuing(route: str) -> bool:
    method, path = route.split(" ", 1)
    return method == "POST" and (
        path in ("/v1/keys", "/v1/admin-tokens") or path.endswith("/rotate")
    )


def read_everything(client: Any) -> None:
    """Every kind of read answer: lists, each key, audits, exports, replays."""
    keys, cursor = [], None
    while True:
        params = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/keys", params=params).json()
        keys += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    for key in keys[::25]:
        client.get(f"/v1/keys/{key['id']}")
        client.get(f"/v1/keys/{key['id']}/access")
    after = 0
    while after is not None:
        page = client.get("/v1/audit/events", params={"after": after, "limit": 1000})
        after = page.json()["next_after"]
    for export in ("jsonl", "csv"):
        client.get("/v1/audit/export", params={"format": export})
    client.get("/v1/admin-tokens")
    client.get("/v1/teams")
    client.get("/v1/access-groups")
    client.post("/v1/audit/replay", json={})
