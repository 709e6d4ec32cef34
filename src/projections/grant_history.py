"""Key-level grant intervals, derived when asked from the factor histories.

Nothing at key level is stored: for one key, the histories of its own state,
its team, the groups attached to either, their grants and the resources
they match are loaded once, and the key's access is evaluated at every
position where one of them changed. A resource that stays granted through a
change (another reason still holds) keeps its interval; losing the last
reason ends it. Expiry records no event, so the moment a key expires is a
point of its own: the interval ends at `expires_at`, at the last position
committed by then, with `ended_by: expiry`.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any, Iterable

from sqlalchemy import or_, select
from sqlalchemy.engine import Connection

from domain.resources import is_pattern, matches
from domain.rules import restriction_allows, seconds_of, text_of
from projections.tables import LIVE, LedgerSchema, decode_restriction

# Keys whose histories one query reads, when a question covers many keys.
READ_AHEAD = 500


@dataclass
class Interval:
    start: int
    end: int | None
    row: Any


@dataclass
class Timeline:
    """Rows with [from_position, to_position) intervals, found by position."""

    intervals: list[Interval] = field(default_factory=list)

    def add(self, row: Any) -> None:
        self.intervals.append(Interval(row.from_position, row.to_position, row))

    def at(self, position: int) -> Iterable[Any]:
        for interval in self.intervals:
            if interval.start <= position and (
                interval.end is None or interval.end > position
            ):
                yield interval.row

    def one_at(self, position: int) -> Any:
        return next(iter(self.at(position)), None)

    def points(self) -> set[int]:
        found = {i.start for i in self.intervals}
        return found | {i.end for i in self.intervals if i.end is not None}


class GrantHistory:
    def __init__(self, connection: Connection, schema: LedgerSchema = LIVE) -> None:
        self.connection = connection
        self.s = schema
        self.commits: tuple[list[int], list[float]] | None = None
        # One question about a resource sweeps every key that ever reached
        # it, and those keys share their teams and groups: each holder's
        # history is read once per question, not once per key.
        self.known_states: dict[str, Timeline] = {}
        self.known_attachments: dict[str, Timeline] = {}
        self.known_grants: dict[tuple, Timeline] = {}
        self.known_resources: dict[tuple, list[Any]] = {}

    def intervals(
        self, key_id: str, kinds: tuple[str, ...], name: str | None, head: int, now: float
    ) -> list[dict[str, Any]]:
        key = self.holder_timeline(key_id)
        if not key.intervals:
            return []
        team_id = key.intervals[0].row.team_id
        principals = [key_id] + ([team_id] if team_id else [])

        attachments = self.attachment_timelines(principals)
        group_ids = sorted(
            {i.row.group_id for t in attachments.values() for i in t.intervals}
        )
        states = {
            key_id: key,
            **{h: self.holder_timeline(h) for h in principals[1:] + group_ids},
        }
        grants = self.grant_timelines(principals + group_ids, kinds, name)
        resources = self.resource_timelines(kinds, name, grants)
        commits = self.commit_times()

        sweep = Sweep(key_id, team_id, states, attachments, grants, resources, commits)
        return sweep.run(head, now)

    def keys_that_could_use(self, kind: str, name: str) -> list[str]:
        """Every key that some grant matching the resource ever reached, in
        creation order: the grantors, the keys of grantor teams, and the keys
        and teams a grantor group was ever attached to."""
        grants, attachments = self.s.grant_history, self.s.attachment_history
        if not self.ever_in_catalog(kind, name):
            return []  # nothing can be used that was never in the catalog
        rows = self.connection.execute(
            select(grants.c.holder_id, grants.c.selector)
            .where(grants.c.kind == kind)
            .distinct()
        )
        grantors = {row.holder_id for row in rows if matches(row.selector, name)}

        holders = self.s.holders
        kinds = dict(self.connection.execute(select(holders.c.id, holders.c.type)).all())
        groups = [h for h in grantors if kinds.get(h) == "group"]
        if groups:
            attached = self.connection.execute(
                select(attachments.c.holder_id).where(attachments.c.group_id.in_(groups))
            )
            grantors |= {row.holder_id for row in attached}

        teams = [h for h in grantors if kinds.get(h) == "team"]
        found = self.connection.execute(
            select(holders.c.id)
            .where(
                holders.c.type == "key",
                or_(
                    holders.c.id.in_([h for h in grantors if kinds.get(h) == "key"]),
                    holders.c.team_id.in_(teams),
                ),
            )
            .order_by(holders.c.seq)
        )
        return [row.id for row in found]

    def ever_in_catalog(self, kind: str, name: str) -> bool:
        history = self.s.resource_history
        query = select(history.c.name).where(
            history.c.kind == kind, history.c.name == name
        )
        return self.connection.execute(query.limit(1)).first() is not None

    def holder_timeline(self, holder_id: str) -> Timeline:
        return self.state_timelines([holder_id])[holder_id]

    def state_timelines(self, holder_ids: list[str]) -> dict[str, Timeline]:
        missing = [h for h in holder_ids if h not in self.known_states]
        if missing:
            history = self.s.holder_history
            rows = self.connection.execute(
                select(history)
                .where(history.c.holder_id.in_(missing))
                .order_by(history.c.holder_id, history.c.from_position)
            )
            self.known_states.update({h: Timeline() for h in missing})
            for row in rows:
                self.known_states[row.holder_id].add(row)
        return {h: self.known_states[h] for h in holder_ids}

    def attachment_timelines(self, holder_ids: list[str]) -> dict[str, Timeline]:
        missing = [h for h in holder_ids if h not in self.known_attachments]
        if missing:
            history = self.s.attachment_history
            rows = self.connection.execute(
                select(history).where(history.c.holder_id.in_(missing))
            )
            self.known_attachments.update({h: Timeline() for h in missing})
            for row in rows:
                self.known_attachments[row.holder_id].add(row)
        return {h: self.known_attachments[h] for h in holder_ids}

    def grant_timelines(
        self, holder_ids: list[str], kinds: tuple[str, ...], name: str | None
    ) -> dict[str, Timeline]:
        """Grant intervals of these holders; for one resource, only the grants
        that match it (the others cannot change its intervals)."""
        missing = [h for h in holder_ids if (h, kinds, name) not in self.known_grants]
        if missing:
            history = self.s.grant_history
            rows = self.connection.execute(
                select(history).where(
                    history.c.holder_id.in_(missing), history.c.kind.in_(kinds)
                )
            )
            self.known_grants.update({(h, kinds, name): Timeline() for h in missing})
            for row in rows:
                if name is None or matches(row.selector, name):
                    self.known_grants[row.holder_id, kinds, name].add(row)
        return {h: self.known_grants[h, kinds, name] for h in holder_ids}

    def resource_timelines(
        self, kinds: tuple[str, ...], name: str | None, grants: dict[str, Timeline]
    ) -> dict[tuple[str, str], Timeline]:
        """Intervals in which each resource some grant ever matched was active."""
        selectors = {
            (i.row.kind, i.row.selector) for t in grants.values() for i in t.intervals
        }
        timelines: dict[tuple[str, str], Timeline] = {}
        for row in self.resource_rows(kinds, name):
            if any(kind == row.kind and matches(s, row.name) for kind, s in selectors):
                timelines.setdefault((row.kind, row.name), Timeline()).add(row)
        return timelines

    def resource_rows(self, kinds: tuple[str, ...], name: str | None) -> list[Any]:
        known = self.known_resources.get((kinds, name))
        if known is None:
            history = self.s.resource_history
            query = select(history).where(history.c.kind.in_(kinds))
            if name is not None:
                query = query.where(history.c.name == name)
            known = self.known_resources[kinds, name] = list(
                self.connection.execute(query)
            )
        return known

    def read_ahead(self, key_ids: list[str], kinds: tuple[str, ...], name: str) -> None:
        """Read the histories of many keys in a few queries rather than a few
        queries per key."""
        for start in range(0, len(key_ids), READ_AHEAD):
            chunk = key_ids[start : start + READ_AHEAD]
            self.state_timelines(chunk)
            self.attachment_timelines(chunk)
            self.grant_timelines(chunk, kinds, name)

    def commit_times(self) -> tuple[list[int], list[float]]:
        """Every command's position and time, read once per question."""
        if self.commits is not None:
            return self.commits
        commits = self.s.commits
        rows = self.connection.execute(
            select(commits.c.position, commits.c.committed_at).order_by(
                commits.c.position
            )
        )
        positions, times = [], []
        for row in rows:
            positions.append(row.position)
            times.append(row.committed_at)
        self.commits = (positions, times)
        return self.commits


class Sweep:
    """Evaluates one key's access at each change point, in order."""

    def __init__(
        self,
        key_id: str,
        team_id: str | None,
        states: dict[str, Timeline],
        attachments: dict[str, Timeline],
        grants: dict[str, Timeline],
        resources: dict[tuple[str, str], Timeline],
        commits: tuple[list[int], list[float]],
    ) -> None:
        self.key_id, self.team_id = key_id, team_id
        self.states, self.attachments = states, attachments
        self.grants, self.resources = grants, resources
        self.commit_positions, self.commit_times = commits

    def run(self, head: int, now: float) -> list[dict[str, Any]]:
        points = set()
        for timelines in (self.states, self.attachments, self.grants, self.resources):
            for timeline in timelines.values():
                points |= timeline.points()
        moments = sorted((p, self.time_of(p), None) for p in points if p <= head)
        moments += self.expiry_moments(now)
        moments.sort(key=lambda m: (m[0], m[1]))

        open_: dict[tuple[str, str], dict[str, Any]] = {}
        closed: list[dict[str, Any]] = []
        for position, moment, expiry in moments:
            access = self.access(position, moment)
            for resource in sorted(set(open_) - set(access)):
                interval = open_.pop(resource)
                interval.update(
                    revoked_position=position,
                    ended_by="expiry" if expiry else "change",
                    revoked_at=expiry if expiry else text_of(moment),
                )
                closed.append(interval)
            for resource in sorted(set(access) - set(open_)):
                open_[resource] = self.interval(
                    resource, position, moment, access[resource]
                )
        return sorted(
            closed + list(open_.values()),
            key=lambda i: (i["kind"], i["name"], i["granted_position"]),
        )

    def interval(
        self,
        resource: tuple[str, str],
        position: int,
        moment: float,
        reasons: list[dict[str, Any]],
    ) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "kind": resource[0],
            "name": resource[1],
            "granted_at": text_of(moment),
            "granted_position": position,
            "revoked_at": None,
            "revoked_position": None,
            "ended_by": None,
            "reasons": reasons,
        }

    def time_of(self, position: int) -> float:
        at = bisect_right(self.commit_positions, position) - 1
        return self.commit_times[at] if at >= 0 else 0.0

    def position_by(self, moment: float) -> int:
        """The last position committed at or before a moment (commit times
        follow positions, since writers take turns)."""
        at = bisect_right(self.commit_times, moment) - 1
        return self.commit_positions[at] if at >= 0 else 0

    def expiry_moments(self, now: float) -> list[tuple[int, float, str]]:
        """For each expiry the key had, the point where it took effect."""
        moments = []
        for interval in self.states[self.key_id].intervals:
            expires_at = interval.row.expires_at
            if expires_at is None:
                continue
            moment = seconds_of(expires_at)
            position = self.position_by(moment)
            ends_before = interval.end is not None and position >= interval.end
            if moment <= now and position >= interval.start and not ends_before:
                moments.append((position, moment, expires_at))
        return moments

    def access(self, position: int, moment: float) -> dict[tuple[str, str], list[dict]]:
        key = self.states[self.key_id].one_at(position)
        if key is None or key.deleted or key.blocked:
            return {}
        if key.expires_at is not None and moment >= seconds_of(key.expires_at):
            return {}
        team = self.states[self.team_id].one_at(position) if self.team_id else None
        if team is not None and team.blocked:
            return {}

        found: dict[tuple[str, str], list[dict]] = {}
        for source, holder, team_id in self.sources(position, key, team):
            for grant in self.grants[holder.holder_id].at(position):
                for resource in self.matched(grant.kind, grant.selector, position):
                    reason = {
                        "source": source,
                        "holder_id": holder.holder_id,
                        "holder_name": holder.name,
                        "selector": grant.selector,
                    }
                    if team_id is not None:
                        reason["team_id"] = team_id
                    found.setdefault(resource, []).append(reason)

        restrict = decode_restriction(key.restrict)
        return {
            r: sorted_reasons(v)
            for r, v in found.items()
            if restriction_allows(restrict, r[0], r[1])
        }

    def sources(
        self, position: int, key: Any, team: Any
    ) -> list[tuple[str, Any, str | None]]:
        sources: list[tuple[str, Any, str | None]] = [("key", key, None)]
        sources += [("key_group", g, None) for g in self.groups(self.key_id, position)]
        if team is not None:
            sources.append(("team", team, None))
            sources += [
                ("team_group", g, team.holder_id)
                for g in self.groups(team.holder_id, position)
            ]
        return sources

    def groups(self, holder_id: str, position: int) -> list[Any]:
        attached = sorted(
            row.group_id for row in self.attachments[holder_id].at(position)
        )
        states = (self.states[g].one_at(position) for g in attached)
        return [g for g in states if g is not None and not g.deleted]

    def matched(self, kind: str, selector: str, position: int) -> list[tuple[str, str]]:
        if not is_pattern(selector):
            timeline = self.resources.get((kind, selector))
            active = timeline is not None and timeline.one_at(position) is not None
            return [(kind, selector)] if active else []
        return [
            resource
            for resource, timeline in self.resources.items()
            if resource[0] == kind
            and matches(selector, resource[1])
            and timeline.one_at(position) is not None
        ]


ORDER = {"key": 0, "key_group": 1, "team": 2, "team_group": 3}


def sorted_reasons(reasons: list[dict]) -> list[dict]:
    return sorted(
        reasons, key=lambda r: (ORDER[r["source"]], r["holder_id"], r["selector"])
    )
