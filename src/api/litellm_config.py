"""A LiteLLM proxy config read as catalog resources and access groups.

What is taken from the config:

- every `model_name` of `model_list` is a model; a name with `*` (LiteLLM's
  wildcard routing, such as `openai/*`) is not a model but a pattern, so it
  is never registered and becomes a pattern grant in its groups;
- each name in a model's `model_info.access_groups` is an access group that
  grants that model;
- the aliases of `router_settings.model_group_alias` and
  `litellm_settings.model_alias_map` are models too, in the groups of the
  model they stand for: a client asks for the alias, so the alias is checked;
- every server of `mcp_servers` is an MCP server, in the groups of its own
  `access_groups`.

Import only adds: what the store has beyond the config stays as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from api.ledger import Ledger
from domain.aggregates import Change
from domain.errors import LedgerError
from domain.resources import check_name, is_pattern, normalise_name
from projections.access_index import AccessIndex, HolderEntry


class ConfigError(Exception):
    """The file is not a LiteLLM config this import understands."""


@dataclass
class Wanted:
    """What the config asks for: resources by kind, and each group's grants."""

    resources: dict[str, set[str]] = field(
        default_factory=lambda: {"model": set(), "mcp_server": set()}
    )
    groups: dict[str, dict[str, set[str]]] = field(default_factory=dict)

    def add(self, kind: str, name: str, groups: list[str]) -> None:
        if not is_pattern(name):
            self.resources[kind].add(name)
        for group in groups:
            self.groups.setdefault(group, {}).setdefault(kind, set()).add(name)


@dataclass(frozen=True)
class Step:
    """One line of the plan: what happens to one resource or group."""

    action: str  # "create", "register again", "add grants" or "exists"
    what: str  # "model", "mcp_server" or "access group"
    name: str
    grants: dict[str, list[str]] | None = None
    group_id: str | None = None

    @property
    def changes(self) -> bool:
        return self.action != "exists"

    def line(self) -> str:
        text = f"{self.action:<14} {self.what:<12} {self.name}"
        if self.grants and self.changes:
            listed = "; ".join(f"{k}: {', '.join(v)}" for k, v in self.grants.items())
            text += f"  ({listed})"
        return text


def read_config(path: Path) -> Wanted:
    """The resources and groups a LiteLLM config file names."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read {path}: {error}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not YAML: {error}") from None
    if not isinstance(document, dict):
        raise ConfigError(f"{path} is not a LiteLLM config (not a mapping)")

    wanted = Wanted()
    groups_of = read_models(document, wanted)
    read_aliases(document, wanted, groups_of)
    read_mcp_servers(document, wanted)
    return wanted


def read_models(document: dict[str, Any], wanted: Wanted) -> dict[str, list[str]]:
    """Register `model_list`; answer each model's group names."""
    groups_of: dict[str, list[str]] = {}
    for number, entry in enumerate(section(document, "model_list", list), start=1):
        where = f"model_list entry {number}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} is not a mapping")
        name = text(entry.get("model_name"), f"{where}: model_name")
        info = entry.get("model_info") or {}
        if not isinstance(info, dict):
            raise ConfigError(f"{where}: model_info is not a mapping")
        groups = names(info.get("access_groups"), f"{where}: access_groups")
        # One model name may have several deployments, each with its groups.
        groups_of.setdefault(name, [])
        groups_of[name] += [g for g in groups if g not in groups_of[name]]
        wanted.add("model", name, groups)
    return groups_of


def read_aliases(
    document: dict[str, Any], wanted: Wanted, groups_of: dict[str, list[str]]
) -> None:
    router = section(document, "router_settings", dict)
    settings = section(document, "litellm_settings", dict)
    for where, aliases in (
        ("router_settings.model_group_alias", router.get("model_group_alias")),
        ("litellm_settings.model_alias_map", settings.get("model_alias_map")),
    ):
        if aliases is None:
            continue
        if not isinstance(aliases, dict):
            raise ConfigError(f"{where} is not a mapping")
        for alias, target in aliases.items():
            # LiteLLM also takes {"model": target, "hidden": true}.
            if isinstance(target, dict):
                target = target.get("model")
            alias = text(alias, f"{where}: alias")
            target = text(target, f"{where}: target of {alias!r}")
            wanted.add("model", alias, groups_of.get(target, []))


def read_mcp_servers(document: dict[str, Any], wanted: Wanted) -> None:
    for name, server in section(document, "mcp_servers", dict).items():
        name = text(name, "mcp_servers: server name")
        server = server or {}
        if not isinstance(server, dict):
            raise ConfigError(f"mcp_servers: {name!r} is not a mapping")
        groups = names(server.get("access_groups"), f"mcp_servers: {name}")
        wanted.add("mcp_server", name, groups)


def section(document: dict[str, Any], key: str, kind: type) -> Any:
    value = document.get(key)
    if value is None:
        return kind()
    if not isinstance(value, kind):
        raise ConfigError(f"{key} is not a {'list' if kind is list else 'mapping'}")
    return value


def text(value: Any, where: str) -> str:
    try:
        return check_name(value, where)
    except LedgerError as error:
        raise ConfigError(error.message) from None


def names(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"{where} is not a list")
    return [text(item, where) for item in value]


def plan(index: AccessIndex, wanted: Wanted) -> list[Step]:
    """What importing would do, resources first (groups may grant them)."""
    steps = []
    for kind, resource_names in wanted.resources.items():
        for name in sorted(resource_names):
            status = index.resource_status(kind, name)
            action = {None: "create", "retired": "register again"}.get(status, "exists")
            steps.append(Step(action, kind, name))
    groups = groups_by_name(index)
    for name in sorted(wanted.groups):
        grants = {k: sorted(v) for k, v in sorted(wanted.groups[name].items())}
        steps.append(group_step(groups.get(normalise_name(name)), name, grants))
    return steps


def group_step(
    group: HolderEntry | None, name: str, grants: dict[str, list[str]]
) -> Step:
    if group is None:
        return Step("create", "access group", name, grants)
    has = group.grants.as_map()
    missing = {k: [s for s in v if s not in has.get(k, [])] for k, v in grants.items()}
    missing = {k: v for k, v in missing.items() if v}
    if not missing:
        return Step("exists", "access group", group.name)
    return Step("add grants", "access group", group.name, missing, group.id)


def groups_by_name(index: AccessIndex) -> dict[str, HolderEntry]:
    return {
        normalise_name(group.name): group
        for group in index.iter_holders("group")
        if not group.deleted
    }


def carry_out(ledger: Ledger, steps: list[Step], change: Change) -> int:
    """Make the changes of the plan, all in one transaction; the position."""
    with ledger.batch():
        for step in steps:
            if (
                step.action in ("create", "register again")
                and step.what != "access group"
            ):
                ledger.register_resource(step.what, step.name, None, change)
            elif step.action == "create":
                ledger.create_group(step.name, None, step.grants, change)
            elif step.action == "add grants":
                ledger.update_group(step.group_id or "", change, add=step.grants)
    return ledger.current()
