"""Property tests: for random operation sequences, the access index equals
access computed directly from the aggregates, by a deliberately naive
reference; and an index loaded from the factored tables equals the live one.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.ledger import UNSET, Ledger
from domain.aggregates import Change, resource_id
from domain.errors import LedgerError
from domain.resources import KINDS
from projections.audit import AuditLog
from projections.loading import load_index
from projections.replay import replay

BY = Change("property")
NAMES = {
    "model": ["a", "a/b", "a/c", "b*x", "bzx", "c"],
    "mcp_server": ["s1", "s2"],
    "agent": ["g1", "g2"],
}
SELECTORS = {
    "model": NAMES["model"] + ["a/*", "*", "b*", "*c", "b*x"],
    "mcp_server": NAMES["mcp_server"] + ["s*"],
    "agent": NAMES["agent"] + ["*"],
}

kinds = st.sampled_from(KINDS)
picks = st.integers(min_value=0, max_value=50)


@st.composite
def grant_maps(draw: Any) -> dict[str, list[str]]:
    kind = draw(kinds)
    return {kind: draw(st.lists(st.sampled_from(SELECTORS[kind]), max_size=3))}


operations = st.one_of(
    st.tuples(st.just("register"), kinds, picks),
    st.tuples(st.just("retire"), kinds, picks),
    st.tuples(st.just("create_group"), grant_maps()),
    st.tuples(st.just("change_group"), picks, grant_maps(), st.booleans()),
    st.tuples(st.just("delete_group"), picks),
    st.tuples(st.just("create_team"), picks, grant_maps()),
    st.tuples(st.just("delete_team"), picks),
    st.tuples(st.just("create_key"), picks, picks, grant_maps(), st.booleans()),
    st.tuples(st.just("attach"), st.booleans(), picks, picks, st.booleans()),
    st.tuples(st.just("grant"), st.booleans(), picks, grant_maps(), st.booleans()),
    st.tuples(st.just("block"), st.booleans(), picks, st.booleans()),
    st.tuples(st.just("restrict"), picks, st.none() | grant_maps()),
    st.tuples(st.just("expire"), picks, st.booleans()),
    st.tuples(st.just("delete_key"), picks),
)


# Every run starts from a full catalog, two groups, a team and three keys, so
# that short sequences already reach the interesting cases.
SET_UP = [("register", kind, n) for kind in KINDS for n in range(len(NAMES[kind]))] + [
    ("create_group", {"model": ["a/*", "c"]}),
    ("create_group", {"model": ["a/b"], "agent": ["*"]}),
    ("create_team", 0, {"mcp_server": ["s*"]}),
    ("create_key", 0, 1, {}, True),
    ("create_key", 0, 0, {"model": ["bzx"]}, False),
    ("create_key", 0, 0, {}, True),
]


class World:
    """Turns drawn operations into commands; an operation the rules refuse
    changes nothing, which the comparison then checks too."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.groups: list[str] = []
        self.teams: list[str] = []
        self.keys: list[str] = []
        self.counter = 0

    def pick(self, items: list[str], number: int) -> str | None:
        return items[number % len(items)] if items else None

    def run(self, op: tuple) -> None:
        # An operation the rules refuse is part of the test: it must change nothing.
        with contextlib.suppress(LedgerError):
            getattr(self, "op_" + op[0])(*op[1:])

    def op_register(self, kind: str, number: int) -> None:
        self.ledger.register_resource(kind, self.pick(NAMES[kind], number), None, BY)

    def op_retire(self, kind: str, number: int) -> None:
        self.ledger.retire_resource(kind, self.pick(NAMES[kind], number), BY)

    def op_create_group(self, grants: dict) -> None:
        self.counter += 1
        self.groups.append(
            self.ledger.create_group(f"G{self.counter}", None, grants, BY)[0]
        )

    def op_change_group(self, number: int, grants: dict, adding: bool) -> None:
        group = self.pick(self.groups, number) or "none"
        if adding:
            self.ledger.update_group(group, BY, add=grants)
        else:
            self.ledger.update_group(group, BY, remove=grants)

    def op_delete_group(self, number: int) -> None:
        self.ledger.delete_group(self.pick(self.groups, number) or "none", BY)

    def op_create_team(self, number: int, grants: dict) -> None:
        self.counter += 1
        groups = [g for g in [self.pick(self.groups, number)] if g]
        self.teams.append(
            self.ledger.create_team(f"T{self.counter}", groups, grants, BY)[0]
        )

    def op_delete_team(self, number: int) -> None:
        self.ledger.delete_team(self.pick(self.teams, number) or "none", BY)

    def op_create_key(self, team: int, group: int, grants: dict, in_team: bool) -> None:
        team_id = self.pick(self.teams, team) if in_team else None
        groups = [g for g in [self.pick(self.groups, group)] if g]
        (key_id, _), _ = self.ledger.create_key(
            "k", BY, team_id=team_id, access_groups=groups, grants=grants
        )
        self.keys.append(key_id)

    def holder(self, on_key: bool, number: int) -> tuple[str, str]:
        if on_key:
            return "key", self.pick(self.keys, number) or "none"
        return "team", self.pick(self.teams, number) or "none"

    def op_attach(self, on_key: bool, holder: int, group: int, attaching: bool) -> None:
        type_, holder_id = self.holder(on_key, holder)
        group_id = self.pick(self.groups, group) or "none"
        self.ledger.set_attachment(type_, holder_id, group_id, attaching, BY)

    def op_grant(self, on_key: bool, holder: int, grants: dict, adding: bool) -> None:
        type_, holder_id = self.holder(on_key, holder)
        if adding:
            self.ledger.change_grants(type_, holder_id, BY, add=grants)
        else:
            self.ledger.change_grants(type_, holder_id, BY, remove=grants)

    def op_block(self, on_key: bool, holder: int, blocking: bool) -> None:
        self.ledger.set_blocked(*self.holder(on_key, holder), blocking, BY)

    def op_restrict(self, number: int, restrict: dict | None) -> None:
        self.ledger.update_key(
            self.pick(self.keys, number) or "none", BY, restrict=restrict
        )

    def op_expire(self, number: int, expired: bool) -> None:
        expiry = "2001-01-01T00:00:00Z" if expired else None
        self.ledger.update_key(
            self.pick(self.keys, number) or "none", BY, restrict=UNSET, expires_at=expiry
        )

    def op_delete_key(self, number: int) -> None:
        self.ledger.delete_key(self.pick(self.keys, number) or "none", BY)


# -- the reference: the rule written out naively over the aggregates ----------------


def naive_match(selector: str, name: str) -> bool:
    """Backtracking `*` matching, independent of the regular expressions."""
    if not selector:
        return not name
    if selector[0] == "*":
        return any(naive_match(selector[1:], name[i:]) for i in range(len(name) + 1))
    return bool(name) and name[0] == selector[0] and naive_match(selector[1:], name[1:])


def reference_access(ledger: Ledger, key_id: str, now: float) -> dict[str, dict]:
    repository = ledger.app.repository
    key = repository.get(UUID(key_id))
    empty: dict[str, dict] = {kind: {} for kind in KINDS}
    if key.deleted or key.blocked:
        return empty
    if key.expires_at is not None and now >= _timestamp(key.expires_at):
        return empty

    sources = [("key", key)]
    sources += [("key_group", g) for g in _live_groups(repository, key.access_groups)]
    if key.team_id is not None:
        team = repository.get(UUID(key.team_id))
        if team.blocked:
            return empty
        sources.append(("team", team))
        sources += [
            ("team_group", g) for g in _live_groups(repository, team.access_groups)
        ]

    access: dict[str, dict] = {}
    for kind in KINDS:
        access[kind] = {}
        for name in NAMES[kind]:
            if not _active(repository, kind, name):
                continue
            reasons = {
                (source, str(holder.id), selector)
                for source, holder in sources
                for selector in holder.grants[kind]
                if naive_match(selector, name)
            }
            allowed = (
                key.restrict is None
                or kind not in key.restrict
                or any(naive_match(s, name) for s in key.restrict[kind])
            )
            if reasons and allowed:
                access[kind][name] = reasons
    return access


def _live_groups(repository: Any, group_ids: set[str]) -> list[Any]:
    groups = (repository.get(UUID(g)) for g in sorted(group_ids))
    return [g for g in groups if not g.deleted]


def _active(repository: Any, kind: str, name: str) -> bool:
    try:
        return bool(repository.get(resource_id(kind, name)).active)
    except Exception:  # the library's AggregateNotFoundError: never registered
        return False


def _timestamp(moment: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(moment.replace("Z", "+00:00")).timestamp()


def index_access(index: Any, key_id: str, now: float) -> dict[str, dict]:
    key = index.key(key_id)
    return {
        kind: {
            name: {(r.source, r.holder_id, r.selector) for r in reasons}
            for name, reasons in index.access(key, kind, now).items()
        }
        for kind in KINDS
    }


@pytest.mark.slow
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(ops=st.lists(operations, min_size=10, max_size=60))
def test_index_equals_the_rule_applied_to_the_aggregates(
    ops: list[tuple], tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder: Path = tmp_path_factory.mktemp("property")
    ledger = Ledger(f"sqlite:///{folder / 'ledger.db'}")
    try:
        world = World(ledger)
        for op in SET_UP + ops:
            world.run(op)

        now = time.time()
        with ledger.engine.connect() as connection:
            loaded = load_index(connection)
        expected = {
            key_id: reference_access(ledger, key_id, now) for key_id in world.keys
        }
        for key_id in world.keys:
            assert index_access(ledger.index, key_id, now) == expected[key_id]
            assert index_access(loaded, key_id, now) == expected[key_id]
        for kind in KINDS:
            for name in NAMES[kind]:
                users = [k for k in world.keys if name in expected[k][kind]]
                assert _who(ledger.index, kind, name, now) == users
                assert _who(loaded, kind, name, now) == users
        assert replay(AuditLog(ledger.app, ledger.engine), ledger.engine).matches
    finally:
        ledger.close()


def _who(index: Any, kind: str, name: str, now: float) -> list[str]:
    if name not in index.resources[kind]:
        return []
    users = [key.id for key in index.users_of(kind, name, now)]
    decided = index.who_can_use(kind, name, now)
    assert [key.id for key, _ in decided] == users
    # A page of who-can-use finds its reasons the fast way; they are a check's.
    grantors, known = index.grantors_of(kind, name), {}
    for key, decision in decided:
        found = index.reasons_among(key, kind, name, grantors, known)
        assert tuple(found) == decision.reasons
    return users


def past_access(ledger: Ledger, key_id: str, position: int) -> dict[str, dict]:
    from projections.past import PastIndex, committed_at

    with ledger.engine.connect() as connection:
        past = PastIndex(connection, position)
        key = past.key(key_id)
        past.catalog(KINDS)
        if key is None:
            return {kind: {} for kind in KINDS}
        return index_access(past.index, key_id, committed_at(connection, position))


@pytest.mark.slow
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(ops=st.lists(operations, min_size=5, max_size=40))
def test_the_past_answers_as_the_present_did(
    ops: list[tuple], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """After every command, remember each key's live access; afterwards the
    as-of answer at each of those positions must be the same."""
    folder: Path = tmp_path_factory.mktemp("past")
    ledger = Ledger(f"sqlite:///{folder / 'ledger.db'}")
    try:
        world = World(ledger)
        seen: list[tuple[int, str, dict]] = []
        for op in SET_UP + ops:
            world.run(op)
            now = time.time()
            position = ledger.index.position
            seen += [
                (position, k, index_access(ledger.index, k, now)) for k in world.keys
            ]

        for position, key_id, live in seen:
            assert past_access(ledger, key_id, position) == live, (position, key_id)
    finally:
        ledger.close()
