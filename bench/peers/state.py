"""The final state of a store, resolved into what every engine can load.

Peers know neither patterns, nor retirement, nor blocks, nor expiry, nor
restrictions, so the state is written the way they can hold it and still
give exactly our answers: only active resources exist; patterns are
expanded against the active catalog; a key that is deleted, blocked,
expired or in a blocked team has no relationships at all; a blocked team
links no keys. A restriction becomes, per restricted kind, the set of
active resources it still lets through.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from domain.resources import KINDS

# Our answers to the workload's checks, which the suite writes beside the
# workload after measuring us: a batch runner takes them as expected values.
OUR_ANSWERS = "our-answers.json"


@dataclass
class OrgState:
    """Holders and grants with resources as small integers per kind."""

    names: dict[str, list[str]] = field(default_factory=dict)
    # holder id -> {kind: [resource number]}
    group_grants: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    team_grants: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    key_grants: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    team_groups: dict[str, list[str]] = field(default_factory=dict)
    key_groups: dict[str, list[str]] = field(default_factory=dict)
    key_team: dict[str, str] = field(default_factory=dict)
    # key id -> {kind: [resource number the restriction lets through]}
    key_limits: dict[str, dict[str, list[int]]] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)))

    @classmethod
    def load(cls, path: Path) -> OrgState:
        return cls(**json.loads(path.read_text()))

    def numbers(self) -> dict[str, dict[str, int]]:
        """Each kind's name -> number."""
        return {
            kind: {n: i for i, n in enumerate(names)}
            for kind, names in self.names.items()
        }

    def relationship_count(self) -> int:
        grants = [self.group_grants, self.team_grants, self.key_grants]
        count = sum(len(n) for g in grants for m in g.values() for n in m.values())
        count += sum(len(g) for g in self.team_groups.values())
        count += sum(len(g) for g in self.key_groups.values()) + len(self.key_team)
        return count + sum(len(n) for m in self.key_limits.values() for n in m.values())


def resolve(index: Any, now: float) -> OrgState:
    """The state of an AccessIndex, as peers can hold it."""
    state = OrgState()
    numbers: dict[str, dict[str, int]] = {}
    for kind in KINDS:
        state.names[kind] = list(index.active_names[kind])
        numbers[kind] = {name: n for n, name in enumerate(state.names[kind])}

    def expanded(selectors_of: Any) -> dict[str, list[int]]:
        grants = {}
        for kind in KINDS:
            found = {
                numbers[kind][name]
                for selector in selectors_of(kind)
                for name in index.active_matches(kind, selector)
            }
            if found:
                grants[kind] = sorted(found)
        return grants

    for holder in index.iter_holders("group"):
        if not holder.deleted:
            state.group_grants[holder.id] = expanded(holder.grants.selectors)
    for holder in index.iter_holders("team"):
        if not holder.deleted and not holder.blocked:
            state.team_grants[holder.id] = expanded(holder.grants.selectors)
            state.team_groups[holder.id] = sorted(holder.groups)
    for key in index.iter_holders("key"):
        if index.key_state_denial(key, now) is not None:
            continue
        state.key_grants[key.id] = expanded(key.grants.selectors)
        state.key_groups[key.id] = sorted(key.groups)
        if key.team_id is not None:
            state.key_team[key.id] = key.team_id
        if key.restrict:
            # What a limited key can use of a kind is all its restriction lets
            # through that matters: the rest of the catalog is not granted.
            state.key_limits[key.id] = {
                kind: sorted(numbers[kind][n] for n in index.access(key, kind, now))
                for kind in key.restrict
            }
    return state


@dataclass
class Workload:
    """Checks to time and compare, and the subjects of the listing questions."""

    checks: list[tuple[str, str, str]]
    busy_key: str
    busy_key_models: int
    popular_model: str
    popular_model_keys: int
    fan_group: str
    fan_key: str
    fresh_models: list[str]


def make_workload(index: Any, count: int, seed: int = 7) -> Workload:
    """Half the checks ask for something the key can use, half at random."""
    now = time.time()
    chance = random.Random(seed)
    keys = [k for k in index.iter_holders("key") if not k.deleted]
    models = index.active_names["model"]
    checks = []
    while len(checks) < count:
        key = chance.choice(keys)
        kind = chance.choice(("model", "model", "mcp_server", "agent"))
        usable = sorted(index.access(key, kind, now)) if len(checks) % 2 else []
        names = usable or index.active_names[kind]
        checks.append((key.id, kind, chance.choice(names)))

    busy, busy_count = nearest(
        ((k.id, len(index.access(k, "model", now))) for k in keys), 600
    )
    sample = chance.sample(models, min(len(models), 400))
    popular, popular_count = nearest(
        ((m, len(index.who_can_use("model", m, now))) for m in sample), 500
    )
    group, key = fan_pair(index, now)
    usable = index.access(index.key(key), "model", now)
    fresh = chance.sample([m for m in models if m not in usable], 40)
    return Workload(checks, busy, busy_count, popular, popular_count, group, key, fresh)


def nearest(counted: Any, wanted: int) -> tuple[str, int]:
    return min(counted, key=lambda pair: (abs(pair[1] - wanted), pair[0]))


def fan_pair(index: Any, now: float) -> tuple[str, str]:
    """A live group attached to a usable, unrestricted key: writes go there."""
    for key in index.iter_holders("key"):
        if key.groups and not key.restrict and index.key_state_denial(key, now) is None:
            return sorted(key.groups)[0], key.id
    raise SystemExit("the store has no usable key with a group")


def save_workload(workload: Workload, path: Path) -> None:
    path.write_text(json.dumps(asdict(workload)))


def load_workload(path: Path) -> Workload:
    return Workload(**json.loads(path.read_text()))
