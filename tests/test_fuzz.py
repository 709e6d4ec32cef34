"""Schemathesis against the app's own OpenAPI, in-process on a SQLite store:
no answer is a 5xx, every status is documented, every error has its shape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

import api.http
from api.app import create_app
from api.auth import admin_tokens
from api.ledger import Ledger
from conftest import ADMIN, MASTER_KEY, TestClient

EXAMPLES_PER_OPERATION = 40
# How long a read waits for a min_position ahead of the store: the contract's
# 5 s would make each such example cost 5 s.
WAIT_SECONDS = 0.05


@schemathesis.check
def no_server_error(ctx: Any, response: Any, case: Any) -> bool | None:
    """A 503 for a min_position the store has not reached is the contract's
    answer; any other 5xx is a failure."""
    waited = (case.query or {}).get("min_position") is not None
    if response.status_code == 503 and waited:
        return None
    return not_a_server_error(ctx, response, case)


CHECKS = [no_server_error, status_code_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def fuzzed_app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One store for the whole run, seeded with one of everything."""
    waiting = pytest.MonkeyPatch()
    waiting.setattr(api.http, "MIN_POSITION_WAIT_SECONDS", WAIT_SECONDS)
    folder: Path = tmp_path_factory.mktemp("fuzz")
    ledger = Ledger(f"sqlite:///{folder / 'ledger.db'}")
    app = create_app(ledger, admin_tokens(MASTER_KEY))
    with TestClient(app, headers=ADMIN) as client:
        client.post("/v1/catalog/sync", json={"kind": "model", "names": ["gpt-4o"]})
        group = client.post(
            "/v1/access-groups", json={"name": "Prod", "grants": {"model": ["gpt-4o"]}}
        ).json()
        team = client.post("/v1/teams", json={"name": "Web"}).json()
        client.post(
            "/v1/keys",
            json={"alias": "svc", "team_id": team["id"], "access_groups": [group["id"]]},
        )
    yield app
    ledger.close()
    waiting.undo()


@pytest.mark.slow
def test_no_server_error_and_every_answer_documented(fuzzed_app: Any) -> None:
    """Each operation in turn, with its own bounded run of examples. (The
    schemathesis pytest loader that takes a fixture does not run on this
    pytest, so the operations are driven here.)"""
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzzed_app)
    calls = []

    for found in schema.get_all_operations():
        operation = found.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def run(case: Any) -> None:
            response = case.call_and_validate(headers=ADMIN, checks=CHECKS)
            calls.append((case.operation.label, response.status_code))

        run()

    operations = {label for label, _ in calls}
    print(f"fuzzed {len(operations)} operations with {len(calls)} requests")
    assert len(operations) >= 40
