"""`accessledger import litellm-config`: plan, dry run, import, and again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from api.cli import main
from api.ledger import Ledger
from conftest import event_count

CONFIGS = Path(__file__).resolve().parent / "data" / "litellm"


def run(database_url: str, config: str, *options: str) -> int:
    return main(
        ["import", "litellm-config", str(CONFIGS / config), "--database", database_url]
        + list(options)
    )


def store(database_url: str) -> tuple[dict[str, Any], dict[str, dict], int]:
    """Active catalog names by kind, groups' grants by name, event count."""
    ledger = Ledger(database_url)
    try:
        index = ledger.index
        catalog = {
            kind: sorted(n for n, e in entries.items() if e.active)
            for kind, entries in index.resources.items()
        }
        groups = {
            g.name: {k: v for k, v in g.grants.as_map().items() if v}
            for g in index.iter_holders("group")
        }
        return catalog, groups, event_count(ledger)
    finally:
        ledger.close()


EXPECTED = {
    "wildcards.yaml": (
        {"model": ["openai/gpt-4o"], "mcp_server": [], "agent": []},
        {
            "openai-all": {"model": ["openai/*"]},
            "premium": {"model": ["anthropic/*", "openai/gpt-4o"]},
        },
    ),
    "groups-and-aliases.yaml": (
        {
            "model": [
                "claude",
                "claude-sonnet",
                "embed-small",
                "gpt-4o",
                "gpt4",
                "llama-local",
                "text-embedding-3-small",
            ],
            "mcp_server": [],
            "agent": [],
        },
        {
            "chat": {"model": ["gpt-4o", "gpt4"]},
            "premium": {"model": ["claude", "claude-sonnet", "gpt-4o", "gpt4"]},
            "us-only": {"model": ["gpt-4o", "gpt4"]},
        },
    ),
    "mcp-servers.yaml": (
        {"model": ["gpt-4o-mini"], "mcp_server": ["github", "jira", "wiki_search"]},
        {
            "engineering": {"mcp_server": ["github", "jira"]},
            "tools": {"model": ["gpt-4o-mini"], "mcp_server": ["github"]},
        },
    ),
}


@pytest.mark.parametrize("config", sorted(EXPECTED))
def test_import_registers_the_config_once(
    database_url: str, config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog, groups = EXPECTED[config]

    assert run(database_url, config, "--dry-run") == 0
    planned = capsys.readouterr().out
    assert "nothing changed (dry run)" in planned
    assert store(database_url)[2] == 0

    assert run(database_url, config) == 0
    assert "done; the ledger is at position" in capsys.readouterr().out
    found_catalog, found_groups, events = store(database_url)
    assert {k: v for k, v in found_catalog.items() if k in catalog} == catalog
    assert found_groups == groups

    assert run(database_url, config) == 0
    again = capsys.readouterr().out
    assert "0 to change" in again
    assert "create" not in again
    assert store(database_url)[2] == events


def test_the_plan_names_each_step(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(database_url, "mcp-servers.yaml", "--dry-run") == 0

    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["create", "model", "gpt-4o-mini"]
    assert ["create", "mcp_server", "github"] in [line.split() for line in lines]
    assert any(
        line.startswith("create") and "tools" in line and "mcp_server: github" in line
        for line in lines
    )
    assert lines[-2] == "6 to change, 0 already there"


def test_a_second_config_extends_groups_it_shares(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(database_url, "groups-and-aliases.yaml") == 0
    assert run(database_url, "wildcards.yaml") == 0

    out = capsys.readouterr().out
    assert "add grants" in out and "premium" in out
    groups = store(database_url)[1]
    assert groups["premium"]["model"] == [
        "anthropic/*",
        "claude",
        "claude-sonnet",
        "gpt-4o",
        "gpt4",
        "openai/gpt-4o",
    ]


@pytest.mark.parametrize(
    "text, message",
    [
        ("model_list: [1, 2", "is not YAML"),
        ("- a list", "not a mapping"),
        ("model_list:\n  - litellm_params: {}\n", "model_name must be a string"),
        ("model_list:\n  - model_name: ''\n", "must not be empty"),
        ("mcp_servers: [github]\n", "mcp_servers is not a mapping"),
        (
            "model_list:\n  - model_name: a\n    model_info: {access_groups: g}\n",
            "access_groups is not a list",
        ),
    ],
)
def test_a_bad_config_changes_nothing(
    sqlite_url: str,
    tmp_path: Path,
    text: str,
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(text)

    code = main(["import", "litellm-config", str(config), "--database", sqlite_url])

    assert code == 2
    assert message in capsys.readouterr().err
    assert store(sqlite_url)[2] == 0
