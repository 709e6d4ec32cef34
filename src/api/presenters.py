"""Read-model entries as the JSON the API contract promises."""

from __future__ import annotations

from typing import Any, Iterable

from domain.rules import Decision, Reason, seconds_of
from projections.access_index import AccessIndex, HolderEntry, ResourceEntry


def resource_public(entry: ResourceEntry) -> dict[str, Any]:
    return {
        "kind": entry.kind,
        "name": entry.name,
        "status": "active" if entry.active else "retired",
        "description": entry.description,
        "created_at": entry.created_at,
        "updated_at": entry.updated_at,
    }


def group_public(group: HolderEntry) -> dict[str, Any]:
    return {
        "id": group.id,
        "name": group.name,
        "description": group.description,
        "grants": group.grants.as_map(),
        "version": group.version,
        "created_at": group.created_at,
        "updated_at": group.updated_at,
    }


def team_public(team: HolderEntry) -> dict[str, Any]:
    return {
        "id": team.id,
        "name": team.name,
        "access_groups": sorted(team.groups),
        "grants": team.grants.as_map(),
        "status": "blocked" if team.blocked else "active",
        "version": team.version,
        "created_at": team.created_at,
        "updated_at": team.updated_at,
    }


def key_public(key: HolderEntry, now: float) -> dict[str, Any]:
    return {
        "id": key.id,
        "alias": key.name,
        "team_id": key.team_id,
        "access_groups": sorted(key.groups),
        "grants": key.grants.as_map(),
        "restrict": key.restrict,
        "expires_at": key.expires_at,
        "status": key_status(key, now),
        "version": key.version,
        "created_at": key.created_at,
        "updated_at": key.updated_at,
    }


def key_status(key: HolderEntry, now: float) -> str:
    if key.blocked:
        return "blocked"
    if key.expires_ts is not None and now >= key.expires_ts:
        return "expired"
    return "active"


def reason_public(index: AccessIndex, reason: Reason) -> dict[str, Any]:
    answer = {
        "source": reason.source,
        "holder_id": reason.holder_id,
        "holder_name": index.holders[reason.holder_id].name,
        "selector": reason.selector,
    }
    if reason.team_id is not None:
        answer["team_id"] = reason.team_id
    return answer


def decision_public(
    index: AccessIndex, decision: Decision, position: int
) -> dict[str, Any]:
    return {
        "allowed": decision.allowed,
        "reasons": [reason_public(index, r) for r in decision.reasons],
        "denied_because": decision.denied_because,
        "position": position,
    }


class SharedReasons:
    """Public forms of reasons, made once per reason object: the index shares
    one reason among every name a selector matches (and every key of a page
    that gets it from the same holder), so a list of hundreds of names needs
    only a few dozen."""

    def __init__(self, index: AccessIndex) -> None:
        self.index = index
        # By identity, which is cheap; each entry holds its reason, so that
        # no id is reused by a later reason while this lives.
        self.made: dict[int, tuple[Reason, dict[str, Any]]] = {}

    def __call__(self, reasons: Iterable[Reason]) -> list[dict[str, Any]]:
        shown = []
        for reason in reasons:
            found = self.made.get(id(reason))
            if found is None:
                found = self.made[id(reason)] = (
                    reason,
                    reason_public(self.index, reason),
                )
            shown.append(found[1])
        return shown


def access_public(
    index: AccessIndex,
    key: HolderEntry,
    kinds: tuple[str, ...],
    now: float,
    reasons: bool = True,
) -> dict[str, list[dict[str, Any]]]:
    public = SharedReasons(index)
    resources: dict[str, list[dict[str, Any]]] = {}
    for kind in kinds:
        found = index.access(key, kind, now)
        if not reasons:
            resources[kind] = [{"name": name} for name in sorted(found)]
            continue
        resources[kind] = [
            {"name": name, "reasons": public(found[name])} for name in sorted(found)
        ]
    return resources


def model_list_public(index: AccessIndex, key: HolderEntry, now: float) -> dict[str, Any]:
    """The OpenAI list format: the models `check` allows, sorted by id."""
    found = index.access(key, "model", now)
    data = [model_public(index, name) for name in sorted(found)]
    return {"object": "list", "data": data}


def model_public(index: AccessIndex, name: str) -> dict[str, Any]:
    """One OpenAI model object; `created` is when the catalog first had it."""
    entry = index.resources["model"][name]
    return {
        "id": name,
        "object": "model",
        "created": int(seconds_of(entry.created_at)),
        "owned_by": owner_of(name),
    }


def owner_of(model_name: str) -> str:
    """The provider prefix of names like `openai/gpt-4o`; ours otherwise."""
    provider, slash, _ = model_name.partition("/")
    return provider if slash and provider else "accessledger"
