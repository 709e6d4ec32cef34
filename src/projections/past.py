"""Questions about the past, answered from the history tables.

"What could key K use at position P" loads the factors that held at P for
that key alone (its state, its team, the groups attached to either, their
grants, the catalog) into a small access index, and asks it exactly what the
live index would have been asked then: the same rule, the same reasons, the
holder names of that moment. Nothing is replayed.
"""

from __future__ import annotations

import time
from typing import Any, Iterable

from sqlalchemy import Table, and_, func, or_, select, true
from sqlalchemy.engine import Connection, Engine

from domain.errors import InvalidRequest
from domain.resources import is_pattern, literal_prefix
from domain.rules import parse_time
from projections.access_index import (
    AccessIndex,
    HolderEntry,
    ResourceEntry,
    added,
    set_expiry,
)
from projections.tables import LIVE, LedgerSchema, decode_restriction

TIME_RESOLUTION = 1e-6


def held_at(table: Table, position: int) -> Any:
    """Rows whose interval contains the state after `position`."""
    return and_(
        table.c.from_position <= position,
        or_(table.c.to_position.is_(None), table.c.to_position > position),
    )


def command_boundary(
    connection: Connection, position: int, schema: LedgerSchema = LIVE
) -> int:
    """The end of the last command committed at or before `position`: an
    answer about the past never sees half of a command."""
    return last_commit(connection, schema.commits.c.position <= position, schema)


def position_at_time(
    connection: Connection, moment: float, schema: LedgerSchema = LIVE
) -> int:
    """The last position committed at or before `moment`, by the store's clock."""
    # Times travel as text to the microsecond, and commit times are whole
    # microseconds: half of one absorbs the rounding of floats, so asking at
    # a commit's time sees it and asking a microsecond earlier does not.
    within = moment + TIME_RESOLUTION / 2
    return last_commit(connection, schema.commits.c.committed_at <= within, schema)


def last_commit(
    connection: Connection, condition: Any, schema: LedgerSchema = LIVE
) -> int:
    found = connection.execute(
        select(func.max(schema.commits.c.position)).where(condition)
    ).scalar()
    return int(found or 0)


def committed_at(
    connection: Connection, position: int, schema: LedgerSchema = LIVE
) -> float:
    commits = schema.commits
    found = connection.execute(
        select(commits.c.committed_at).where(commits.c.position == position)
    ).scalar()
    return float(found or 0.0)


class PastIndex:
    """Builds an access index of one key's world as of one position."""

    def __init__(
        self, connection: Connection, position: int, schema: LedgerSchema = LIVE
    ) -> None:
        self.connection = connection
        self.position = position
        self.s = schema
        self.index = AccessIndex()
        self.index.position = position

    def key(self, key_id: str) -> HolderEntry | None:
        """Load the key, its team and their groups with their grants."""
        key = self.holder(key_id)
        if key is None or key.type != "key":
            return None
        team = self.holder(key.team_id) if key.team_id else None

        principals = [h for h in (key, team) if h is not None]
        group_ids = self.attached_groups([h.id for h in principals])
        every_group = sorted({g for ids in group_ids.values() for g in ids})
        groups = [g for g in map(self.holder, every_group) if g is not None]
        self.load_grants([h.id for h in (*principals, *groups)])
        for principal in principals:
            for group_id in group_ids.get(principal.id, ()):
                self.index.attach(principal, group_id)
        if team is not None and not key.deleted:
            team.members = added(team.members, key.id)
        return key

    def holder(self, holder_id: str | None) -> HolderEntry | None:
        if holder_id is None:
            return None
        history = self.s.holder_history
        row = self.connection.execute(
            select(history).where(
                history.c.holder_id == holder_id, held_at(history, self.position)
            )
        ).first()
        if row is None:
            return None
        entry = HolderEntry(row.holder_id, row.type, row.name, 0, "", "", 0)
        entry.team_id = row.team_id
        entry.restrict = decode_restriction(row.restrict)
        entry.blocked = bool(row.blocked)
        entry.deleted = bool(row.deleted)
        set_expiry(entry, row.expires_at)
        self.index.holders[entry.id] = entry
        return entry

    def attached_groups(self, holder_ids: list[str]) -> dict[str, list[str]]:
        history = self.s.attachment_history
        rows = self.connection.execute(
            select(history.c.holder_id, history.c.group_id).where(
                history.c.holder_id.in_(holder_ids), held_at(history, self.position)
            )
        )
        attached: dict[str, list[str]] = {}
        for row in rows:
            attached.setdefault(row.holder_id, []).append(row.group_id)
        return attached

    def load_grants(self, holder_ids: list[str]) -> None:
        history = self.s.grant_history
        rows = self.connection.execute(
            select(history.c.holder_id, history.c.kind, history.c.selector).where(
                history.c.holder_id.in_(holder_ids), held_at(history, self.position)
            )
        )
        for row in rows:
            self.index.add_grant(
                self.index.holders[row.holder_id], row.kind, row.selector
            )

    def catalog(self, kinds: Iterable[str]) -> None:
        """The resources of these kinds, active at the position, that the
        loaded grants can match: exact names, and each pattern's prefix range
        (the whole kind only for a pattern that starts with `*`)."""
        history = self.s.resource_history
        for kind in kinds:
            selectors = {
                s for h in self.index.holders.values() for s in h.grants.selectors(kind)
            }
            if not selectors:
                continue
            wanted = self.wanted_names(history, selectors)
            rows = self.connection.execute(
                select(history.c.name)
                .where(history.c.kind == kind, held_at(history, self.position), wanted)
                .order_by(history.c.name)
            )
            self.add_active(kind, [row.name for row in rows])

    def wanted_names(self, history: Table, selectors: set[str]) -> Any:
        prefixes = {literal_prefix(s) for s in selectors if is_pattern(s)}
        if "" in prefixes:
            return true()
        exact = [s for s in selectors if not is_pattern(s)]
        # LIKE may return more (SQLite ignores ASCII case); matching in
        # memory decides, so a superset is harmless and a subset impossible.
        starting = [history.c.name.startswith(p, autoescape=True) for p in prefixes]
        return or_(history.c.name.in_(exact), *starting)

    def resource(self, kind: str, name: str) -> None:
        """One resource as it stood: active, retired, or not yet registered."""
        history = self.s.resource_history
        rows = self.connection.execute(
            select(history.c.from_position, history.c.to_position).where(
                history.c.kind == kind,
                history.c.name == name,
                history.c.from_position <= self.position,
            )
        ).all()
        if not rows:
            return
        active = any(r.to_position is None or r.to_position > self.position for r in rows)
        entry = ResourceEntry("", kind, name, "", False, "", "", 0)
        self.index.add_resource(entry)
        if active:
            self.index.activate(entry)

    def add_active(self, kind: str, names: list[str]) -> None:
        """Bulk form of activation: the names arrive sorted, with no pattern yet
        expanded, so the sorted list is simply taken as it is."""
        for name in names:
            entry = ResourceEntry("", kind, name, "", True, "", "", 0)
            self.index.resources[kind][name] = entry
        self.index.active_names[kind] = list(names)
        for pattern in list(self.index.expansions[kind]):
            self.index.expand(kind, pattern)


def until_position(
    engine: Engine, position: int | None, moment: str | None, head: int
) -> int:
    """Where a replay stops: a position, the last commit by a time, or the head."""
    if position is not None and moment is not None:
        raise InvalidRequest("give until_position or until_time, not both")
    if position is not None:
        if not 0 <= position <= head:
            raise InvalidRequest(f"until_position must be between 0 and the head, {head}")
        return position
    if moment is not None:
        seconds = parse_time(moment, "until_time").timestamp()
        if seconds > time.time():
            raise InvalidRequest("until_time is in the future")
        with engine.connect() as connection:
            return position_at_time(connection, seconds)
    return head


def export_bound(engine: Engine, text: str | None, head: int, default: int) -> int:
    """A position as given, or the last position committed by a time: the
    range a `from` and a `to` name is the events after `from` up to `to`."""
    if text is None:
        return default
    if text.isdigit() and text.isascii():
        return min(int(text), head)
    seconds = parse_time(text, "from/to").timestamp()
    with engine.connect() as connection:
        return position_at_time(connection, seconds)
