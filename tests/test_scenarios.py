"""Every story in shared/spec/scenarios, played through the public HTTP API on
both stores, comparing every check and model list with the stated answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from api.history import HistoryPlayer, HttpBackend
from conftest import SHARED

SCENARIOS = sorted((SHARED / "spec" / "scenarios").glob("*.yaml"))


def test_the_scenarios_are_there() -> None:
    """Without the shared folder beside the checkout every scenario would be
    skipped in silence; that must fail instead."""
    assert len(SCENARIOS) >= 12, f"no scenarios found in {SHARED / 'spec' / 'scenarios'}"


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario(path: Path, client: Any) -> None:
    story = yaml.safe_load(path.read_text(encoding="utf-8"))
    player = HistoryPlayer(HttpBackend(client))

    for number, step in enumerate(story["steps"], start=1):
        where = f"{path.name} step {number}: {step}"
        if "op" in step:
            player.play(step)
        elif "check" in step:
            assert_check(client, player, step, where)
        elif "models" in step:
            assert_models(client, player, step, where)
        else:
            pytest.fail(f"unknown step in {where}")


def secret_for(player: HistoryPlayer, ref: str, by: str | None) -> str:
    return player.old_secrets[ref] if by == "old_secret" else player.secrets[ref]


def assert_check(client: Any, player: HistoryPlayer, step: dict, where: str) -> None:
    ref, by = step["check"], step.get("by")
    body: dict[str, Any] = {"kind": step["kind"], "name": step["name"]}
    if by is None:
        body["key_id"] = player.refs[ref]
    else:
        body["key"] = secret_for(player, ref, by)

    response = client.post("/v1/check", json=body)
    assert response.status_code == 200, where
    answer = response.json()

    assert answer["allowed"] == step["allowed"], (where, answer)
    if step["allowed"]:
        assert answer["denied_because"] is None, where
    else:
        assert answer["reasons"] == [], where
        assert answer["denied_because"] == step.get("denied_because"), (where, answer)
    if "reasons" in step:
        assert reason_set(player, answer["reasons"]) == expected_reasons(step), where


def reason_set(player: HistoryPlayer, reasons: list[dict]) -> set[tuple[str, str, str]]:
    refs_by_id = {holder_id: ref for ref, holder_id in player.refs.items()}
    return {(r["source"], refs_by_id[r["holder_id"]], r["selector"]) for r in reasons}


def expected_reasons(step: dict) -> set[tuple[str, str, str]]:
    return {(r["source"], r["holder"], r["selector"]) for r in step["reasons"]}


def assert_models(client: Any, player: HistoryPlayer, step: dict, where: str) -> None:
    secret = secret_for(player, step["models"], step.get("by"))
    response = client.get("/v1/models", headers={"Authorization": f"Bearer {secret}"})
    if "status" in step:
        assert response.status_code == step["status"], where
        return
    assert response.status_code == 200, where
    names = [model["id"] for model in response.json()["data"]]
    assert sorted(names) == sorted(step["expect"]), where
