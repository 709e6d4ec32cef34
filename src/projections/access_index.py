"""The in-memory access index every API process answers questions from.

It holds the factored read model (holders, their direct grants, attachments,
the catalog) plus what each pattern in use matches in the active catalog,
and reverse maps for "who uses this group" and "who can use this resource".
It is loaded from the tables of projections.tables and then kept exact by
applying events in position order; callers hold `lock` while applying a
transaction's events and while answering, so no answer sees half a change.
"""

from __future__ import annotations

import threading
from bisect import bisect_left, bisect_right, insort
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Callable, Iterable, Iterator

from domain.aggregates import (
    AccessGroup,
    AdminToken,
    CatalogResource,
    Holder,
    Key,
    Principal,
    Team,
)
from domain.resources import KINDS, is_pattern, literal_prefix, matches
from domain.rules import (
    Decision,
    GrantSet,
    Reason,
    restriction_allows,
    seconds_of,
)
from projections.tables import timestamp_of

HOLDER_TYPES = ("group", "team", "key")
NOTHING: frozenset[str] = frozenset()
BY_SEQ = attrgetter("seq")


def added(items: set[str] | frozenset[str], item: str) -> set[str]:
    """`items` with `item` added, turning the shared empty frozenset into a set."""
    grown = items if isinstance(items, set) else set(items)
    grown.add(item)
    return grown


def removed(items: set[str] | frozenset[str], item: str) -> None:
    if item in items:
        items.discard(item)  # type: ignore[union-attr]


@dataclass(slots=True, eq=False)
class ResourceEntry:
    id: str
    kind: str
    name: str
    description: str
    active: bool
    created_at: str
    updated_at: str
    seq: int
    version: int = 1


@dataclass(slots=True, eq=False)
class HolderEntry:
    """A group, team or key as the read side sees it."""

    id: str
    type: str
    name: str
    version: int
    created_at: str
    updated_at: str
    seq: int
    grants: GrantSet = field(default_factory=GrantSet)
    description: str = ""
    # These three start as one shared empty frozenset and become sets when
    # something is added (see `added`): most holders never need all three.
    groups: set[str] | frozenset[str] = NOTHING
    blocked: bool = False
    deleted: bool = False
    team_id: str | None = None
    restrict: dict[str, list[str]] | None = None
    expires_at: str | None = None
    expires_ts: float | None = None
    secret_hash: str | None = None
    # Reverse links: the keys and teams a group is attached to, a team's keys.
    attached: set[str] | frozenset[str] = NOTHING
    members: set[str] | frozenset[str] = NOTHING


@dataclass(slots=True, eq=False)
class AdminTokenEntry:
    """An admin token as the read side sees it: never the token itself."""

    id: str
    name: str
    role: str
    token_hash: str
    created_by: str
    version: int
    created_at: str
    updated_at: str
    seq: int
    revoked: bool = False


@dataclass(slots=True)
class Source:
    source: str
    holder: HolderEntry
    team_id: str | None = None


class AccessIndex:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.position = 0
        self.resources: dict[str, dict[str, ResourceEntry]] = {k: {} for k in KINDS}
        self.resources_by_id: dict[str, ResourceEntry] = {}
        self.active_names: dict[str, list[str]] = {k: [] for k in KINDS}
        self.holders: dict[str, HolderEntry] = {}
        self.keys_by_secret: dict[str, str] = {}
        self.admin_tokens: dict[str, AdminTokenEntry] = {}
        self.admin_tokens_by_hash: dict[str, AdminTokenEntry] = {}
        # For each pattern some holder grants: the active names it matches.
        self.expansions: dict[str, dict[str, set[str]]] = {k: {} for k in KINDS}
        self.patterns_of_name: dict[str, dict[str, set[str]]] = {k: {} for k in KINDS}
        # For each (kind, selector): the holders that grant it directly.
        self.grantors: dict[tuple[str, str], set[str]] = {}
        # Creation order, for cursors: parallel lists of seq and id per type.
        self.order: dict[str, tuple[list[int], list[str]]] = {
            t: ([], []) for t in (*HOLDER_TYPES, "resource")
        }
        self.handlers: dict[type, Callable[[Any, int], None]] = {
            CatalogResource.Registered: self.resource_registered,
            CatalogResource.Returned: self.resource_returned,
            CatalogResource.Retired: self.resource_retired,
            CatalogResource.Described: self.resource_described,
            AccessGroup.Created: self.group_created,
            AccessGroup.Renamed: self.holder_renamed,
            AccessGroup.Described: self.group_described,
            Team.Created: self.team_created,
            Team.Renamed: self.holder_renamed,
            Key.Created: self.key_created,
            Key.Renamed: self.key_renamed,
            Key.Restricted: self.key_restricted,
            Key.ExpirySet: self.key_expiry_set,
            Key.Rotated: self.key_rotated,
            Holder.GrantsAdded: self.grants_added,
            Holder.GrantsRemoved: self.grants_removed,
            Holder.Deleted: self.holder_deleted,
            Principal.GroupAttached: self.group_attached,
            Principal.GroupDetached: self.group_detached,
            Principal.Blocked: self.principal_blocked,
            Principal.Unblocked: self.principal_unblocked,
            AdminToken.Issued: self.admin_token_issued,
            AdminToken.Revoked: self.admin_token_revoked,
        }

    # -- applying events -------------------------------------------------

    def apply(self, events: Iterable[tuple[Any, int]]) -> None:
        """Apply (event, position) pairs; the caller holds `lock`."""
        for domain_event, position in events:
            handler = self.handlers.get(type(domain_event))
            if handler is not None:
                handler(domain_event, position)
            self.position = position

    def resource_registered(self, e: Any, position: int) -> None:
        at = timestamp_of(e)
        entry = ResourceEntry(
            str(e.originator_id), e.kind, e.name, e.description, False, at, at, position
        )
        self.add_resource(entry)
        self.activate(entry)

    def resource_returned(self, e: Any, position: int) -> None:
        self.activate(self.touch_resource(e))

    def resource_retired(self, e: Any, position: int) -> None:
        self.deactivate(self.touch_resource(e))

    def resource_described(self, e: Any, position: int) -> None:
        self.touch_resource(e).description = e.description

    def touch_resource(self, e: Any) -> ResourceEntry:
        entry = self.resources_by_id[str(e.originator_id)]
        entry.version = e.originator_version
        entry.updated_at = timestamp_of(e)
        return entry

    def group_created(self, e: Any, position: int) -> None:
        entry = self.new_holder(e, position, "group", e.name)
        entry.description = e.description
        self.add_holder(entry, e.grants, [])

    def team_created(self, e: Any, position: int) -> None:
        entry = self.new_holder(e, position, "team", e.name)
        self.add_holder(entry, e.grants, e.access_groups)

    def key_created(self, e: Any, position: int) -> None:
        entry = self.new_holder(e, position, "key", e.alias)
        entry.team_id = e.team_id
        entry.restrict = e.restrict
        entry.secret_hash = e.secret_hash
        set_expiry(entry, e.expires_at)
        self.add_holder(entry, e.grants, e.access_groups)

    def new_holder(self, e: Any, position: int, type_: str, name: str) -> HolderEntry:
        at = timestamp_of(e)
        return HolderEntry(
            str(e.originator_id), type_, name, e.originator_version, at, at, position
        )

    def touch(self, e: Any) -> HolderEntry:
        entry = self.holders[str(e.originator_id)]
        entry.version = e.originator_version
        entry.updated_at = timestamp_of(e)
        return entry

    def holder_renamed(self, e: Any, position: int) -> None:
        self.touch(e).name = e.name

    def key_renamed(self, e: Any, position: int) -> None:
        self.touch(e).name = e.alias

    def group_described(self, e: Any, position: int) -> None:
        self.touch(e).description = e.description

    def key_restricted(self, e: Any, position: int) -> None:
        self.touch(e).restrict = e.restrict

    def key_expiry_set(self, e: Any, position: int) -> None:
        set_expiry(self.touch(e), e.expires_at)

    def key_rotated(self, e: Any, position: int) -> None:
        entry = self.touch(e)
        self.keys_by_secret.pop(entry.secret_hash or "", None)
        entry.secret_hash = e.secret_hash
        self.keys_by_secret[e.secret_hash] = entry.id

    def principal_blocked(self, e: Any, position: int) -> None:
        self.touch(e).blocked = True

    def principal_unblocked(self, e: Any, position: int) -> None:
        self.touch(e).blocked = False

    def grants_added(self, e: Any, position: int) -> None:
        entry = self.touch(e)
        for kind in KINDS:
            for selector in e.grants.get(kind, ()):
                self.add_grant(entry, kind, selector)

    def grants_removed(self, e: Any, position: int) -> None:
        entry = self.touch(e)
        for kind in KINDS:
            for selector in e.grants.get(kind, ()):
                self.remove_grant(entry, kind, selector)

    def group_attached(self, e: Any, position: int) -> None:
        self.attach(self.touch(e), e.group_id)

    def group_detached(self, e: Any, position: int) -> None:
        entry = self.touch(e)
        removed(entry.groups, e.group_id)
        group = self.holders.get(e.group_id)
        if group is not None:
            removed(group.attached, entry.id)

    def holder_deleted(self, e: Any, position: int) -> None:
        entry = self.touch(e)
        entry.deleted = True
        for kind, selector in list(entry.grants.pairs()):
            self.remove_grant(entry, kind, selector)
        for group_id in entry.groups:
            removed(self.holders[group_id].attached, entry.id)
        entry.groups = NOTHING
        for holder_id in entry.attached:
            removed(self.holders[holder_id].groups, entry.id)
        entry.attached = NOTHING
        if entry.team_id is not None:
            removed(self.holders[entry.team_id].members, entry.id)

    # -- keeping the derived maps exact ----------------------------------

    def add_resource(self, entry: ResourceEntry) -> None:
        self.resources[entry.kind][entry.name] = entry
        self.resources_by_id[entry.id] = entry
        seqs, ids = self.order["resource"]
        seqs.append(entry.seq)
        ids.append(entry.id)

    def activate(self, entry: ResourceEntry) -> None:
        if entry.active:
            return
        entry.active = True
        insort(self.active_names[entry.kind], entry.name)
        matched = self.patterns_of_name[entry.kind].setdefault(entry.name, set())
        for pattern, names in self.expansions[entry.kind].items():
            if entry.name.startswith(literal_prefix(pattern)) and matches(
                pattern, entry.name
            ):
                names.add(entry.name)
                matched.add(pattern)

    def deactivate(self, entry: ResourceEntry) -> None:
        if not entry.active:
            return
        entry.active = False
        names = self.active_names[entry.kind]
        del names[bisect_left(names, entry.name)]
        for pattern in self.patterns_of_name[entry.kind].pop(entry.name, ()):
            self.expansions[entry.kind][pattern].discard(entry.name)

    def add_holder(self, entry: HolderEntry, grant_map: dict, group_ids: list) -> None:
        self.holders[entry.id] = entry
        seqs, ids = self.order[entry.type]
        seqs.append(entry.seq)
        ids.append(entry.id)
        for kind in KINDS:
            for selector in grant_map.get(kind, ()):
                self.add_grant(entry, kind, selector)
        for group_id in group_ids:
            self.attach(entry, group_id)
        if entry.type == "key":
            if entry.secret_hash:
                self.keys_by_secret[entry.secret_hash] = entry.id
            if entry.team_id is not None and not entry.deleted:
                team = self.holders[entry.team_id]
                team.members = added(team.members, entry.id)

    def attach(self, entry: HolderEntry, group_id: str) -> None:
        group = self.holders.get(group_id)
        # A group deleted earlier counts for nothing: deletion detaches it.
        if group is None or group.deleted:
            return
        entry.groups = added(entry.groups, group_id)
        group.attached = added(group.attached, entry.id)

    def add_grant(self, entry: HolderEntry, kind: str, selector: str) -> None:
        entry.grants.add(kind, selector)
        grantors = self.grantors.setdefault((kind, selector), set())
        grantors.add(entry.id)
        if is_pattern(selector) and selector not in self.expansions[kind]:
            self.expand(kind, selector)

    def remove_grant(self, entry: HolderEntry, kind: str, selector: str) -> None:
        entry.grants.discard(kind, selector)
        grantors = self.grantors.get((kind, selector))
        if grantors is None:
            return
        grantors.discard(entry.id)
        if grantors:
            return
        del self.grantors[(kind, selector)]
        if is_pattern(selector):
            for name in self.expansions[kind].pop(selector, ()):
                self.patterns_of_name[kind][name].discard(selector)

    def expand(self, kind: str, pattern: str) -> None:
        """Match a pattern against the active names sharing its prefix."""
        names = self.active_names[kind]
        prefix = literal_prefix(pattern)
        matched = set()
        for index in range(bisect_left(names, prefix), len(names)):
            name = names[index]
            if not name.startswith(prefix):
                break
            if matches(pattern, name):
                matched.add(name)
        self.expansions[kind][pattern] = matched
        for name in matched:
            self.patterns_of_name[kind].setdefault(name, set()).add(pattern)

    # -- questions -------------------------------------------------------

    def version_of(self, aggregate_id: str) -> int | None:
        """The version of a holder, resource or admin token as of `position`."""
        entry = (
            self.holders.get(aggregate_id)
            or self.resources_by_id.get(aggregate_id)
            or self.admin_tokens.get(aggregate_id)
        )
        return None if entry is None else entry.version

    # -- admin tokens ----------------------------------------------------

    def admin_token_issued(self, e: Any, position: int) -> None:
        at = timestamp_of(e)
        self.add_admin_token(
            AdminTokenEntry(
                str(e.originator_id),
                e.name,
                e.role,
                e.token_hash,
                e.actor,
                e.originator_version,
                at,
                at,
                position,
            )
        )

    def admin_token_revoked(self, e: Any, position: int) -> None:
        entry = self.admin_tokens[str(e.originator_id)]
        entry.revoked = True
        entry.version = e.originator_version
        entry.updated_at = timestamp_of(e)

    def add_admin_token(self, entry: AdminTokenEntry) -> None:
        self.admin_tokens[entry.id] = entry
        self.admin_tokens_by_hash[entry.token_hash] = entry

    def admin_token_for(self, token_hash: str) -> AdminTokenEntry | None:
        """The live admin token with this hash, if any."""
        entry = self.admin_tokens_by_hash.get(token_hash)
        return None if entry is None or entry.revoked else entry

    def resource_status(self, kind: str, name: str) -> str | None:
        entry = self.resources[kind].get(name)
        if entry is None:
            return None
        return "active" if entry.active else "retired"

    def key_for_secret(self, secret_hash: str) -> HolderEntry | None:
        key_id = self.keys_by_secret.get(secret_hash)
        return None if key_id is None else self.holders[key_id]

    def key(self, key_id: str) -> HolderEntry | None:
        entry = self.holders.get(key_id)
        return entry if entry is not None and entry.type == "key" else None

    def key_state_denial(self, key: HolderEntry | None, now: float) -> str | None:
        """The first denial that the key's own state causes, if any."""
        if key is None:
            return "unknown_key"
        if key.deleted:
            return "key_deleted"
        if key.blocked:
            return "key_blocked"
        if key.expires_ts is not None and now >= key.expires_ts:
            return "key_expired"
        if key.team_id is not None and self.holders[key.team_id].blocked:
            return "team_blocked"
        return None

    def check(
        self, key: HolderEntry | None, kind: str, name: str, now: float
    ) -> Decision:
        denial = self.key_state_denial(key, now)
        if denial is not None:
            return Decision(False, denied_because=denial)
        resource = self.resources[kind].get(name)
        if resource is None:
            return Decision(False, denied_because="unknown_resource")
        if not resource.active:
            return Decision(False, denied_because="retired_resource")

        reasons = self.reasons_for(key, kind, name)  # type: ignore[arg-type]
        if not reasons:
            return Decision(False, denied_because="no_grant")
        if not restriction_allows(key.restrict, kind, name):  # type: ignore[union-attr]
            return Decision(False, denied_because="restricted")
        return Decision(True, tuple(reasons))

    def reasons_for(self, key: HolderEntry, kind: str, name: str) -> list[Reason]:
        """The reasons of an active resource, as rules.decide_grants lists them.

        The patterns that match the name are already known (every granted
        pattern is expanded against the active catalog), so a holder's
        patterns are intersected with them instead of matched one by one.
        """
        matched = self.patterns_of_name[kind].get(name, NOTHING)
        reasons: list[Reason] = []
        for source, holder, team_id in self.grant_holders(key):
            found = granting_selectors(holder, kind, name, matched)
            if found:
                reasons += [Reason(source, holder.id, s, team_id) for s in found]
        return reasons

    def grant_holders(
        self, key: HolderEntry
    ) -> Iterator[tuple[str, HolderEntry, str | None]]:
        """`sources_of` without building a Source for each."""
        holders = self.holders
        yield "key", key, None
        for group_id in sorted(key.groups):
            yield "key_group", holders[group_id], None
        if key.team_id is not None:
            team = holders[key.team_id]
            yield "team", team, None
            for group_id in sorted(team.groups):
                yield "team_group", holders[group_id], team.id

    def sources_of(self, key: HolderEntry) -> list[Source]:
        """Where a key's grants come from, in the order reasons are listed."""
        sources = [Source("key", key)]
        sources += [Source("key_group", self.holders[g]) for g in sorted(key.groups)]
        if key.team_id is not None:
            team = self.holders[key.team_id]
            sources.append(Source("team", team))
            sources += [
                Source("team_group", self.holders[g], team.id)
                for g in sorted(team.groups)
            ]
        return sources

    def access(self, key: HolderEntry, kind: str, now: float) -> dict[str, list[Reason]]:
        """Every resource of one kind the key can use, with its reasons."""
        if self.key_state_denial(key, now) is not None:
            return {}

        found: dict[str, list[Reason]] = {}
        for source in self.sources_of(key):
            grants = source.holder.grants
            selectors = sorted(grants.selectors(kind))
            for selector in selectors:
                # One reason for every name the selector matches: it is
                # immutable, and presenters can turn it into JSON once.
                reason = Reason(source.source, source.holder.id, selector, source.team_id)
                for name in self.active_matches(kind, selector):
                    found.setdefault(name, []).append(reason)

        if key.restrict is not None and kind in key.restrict:
            found = {
                name: reasons
                for name, reasons in found.items()
                if restriction_allows(key.restrict, kind, name)
            }
        return found

    def active_matches(self, kind: str, selector: str) -> Iterable[str]:
        if is_pattern(selector):
            return self.expansions[kind].get(selector, ())
        resource = self.resources[kind].get(selector)
        return (selector,) if resource is not None and resource.active else ()

    def who_can_use(
        self, kind: str, name: str, now: float
    ) -> list[tuple[HolderEntry, Decision]]:
        """Keys that can use a resource, in creation order, with reasons."""
        answers = (
            (key, self.check(key, kind, name, now))
            for key in self.users_of(kind, name, now)
        )
        return [(key, decision) for key, decision in answers if decision.allowed]

    def users_of(self, kind: str, name: str, now: float) -> list[HolderEntry]:
        """Keys that can use a resource, in creation order, without reasons.

        A key reached from a holder that grants the resource has a grant
        that matches it, so only its state and restriction are left to ask:
        no reasons are built, which is most of the cost of a check.
        """
        resource = self.resources[kind].get(name)
        if resource is None or not resource.active:
            return []
        key_ids: set[str] = set()
        for holder_id in self.grantors_of(kind, name):
            key_ids |= self.keys_reached_by(self.holders[holder_id])

        holders, denial = self.holders, self.key_state_denial
        usable = [
            key
            for key in map(holders.__getitem__, key_ids)
            if denial(key, now) is None
            and (key.restrict is None or restriction_allows(key.restrict, kind, name))
        ]
        return sorted(usable, key=BY_SEQ)

    def grantors_of(self, kind: str, name: str) -> set[str]:
        """The holders whose own grants match the name, by name or pattern."""
        grantor_ids = set(self.grantors.get((kind, name), ()))
        for pattern in self.patterns_of_name[kind].get(name, ()):
            grantor_ids |= self.grantors.get((kind, pattern), set())
        return grantor_ids

    def reasons_among(
        self,
        key: HolderEntry,
        kind: str,
        name: str,
        grantors: set[str],
        known: dict[tuple[str, str, str | None], list[Reason]],
    ) -> list[Reason]:
        """`reasons_for` when the name's grantors are known (`grantors_of`):
        only the key's holders among them are visited, through set
        intersections, which is what makes a page of many keys cheap. Keys
        share groups and teams: pass one `known` for the whole page, and each
        holder's reasons are made once and shared."""
        matched = self.patterns_of_name[kind].get(name, NOTHING)
        reasons: list[Reason] = []

        def add(source: str, holder_id: str, team_id: str | None) -> None:
            made = known.get((source, holder_id, team_id))
            if made is None:
                holder = self.holders[holder_id]
                selectors = granting_selectors(holder, kind, name, matched)
                made = [Reason(source, holder_id, s, team_id) for s in selectors]
                known[(source, holder_id, team_id)] = made
            reasons.extend(made)

        if key.id in grantors:
            add("key", key.id, None)
        for group_id in sorted(key.groups & grantors):
            add("key_group", group_id, None)
        if key.team_id is not None:
            team = self.holders[key.team_id]
            if team.id in grantors:
                add("team", team.id, None)
            for group_id in sorted(team.groups & grantors):
                add("team_group", group_id, team.id)
        return reasons

    def keys_reached_by(self, holder: HolderEntry) -> set[str]:
        if holder.type == "key":
            return {holder.id}
        if holder.type == "team":
            return set(holder.members)
        # A group is attached to keys and teams only.
        reached: set[str] = set()
        for attached_id in holder.attached:
            attached = self.holders[attached_id]
            if attached.type == "key":
                reached.add(attached_id)
            else:
                reached |= attached.members
        return reached

    def usage(self, group: HolderEntry) -> tuple[list[HolderEntry], ...]:
        """Keys and teams a group is attached to, and the keys of those teams."""
        attached = sorted((self.holders[h] for h in group.attached), key=lambda h: h.seq)
        keys = [h for h in attached if h.type == "key"]
        teams = [h for h in attached if h.type == "team"]
        via_teams = sorted(
            (self.holders[k] for team in teams for k in team.members),
            key=lambda k: k.seq,
        )
        return keys, teams, via_teams

    def listing(
        self, type_: str, after: int, keep: Callable[[Any], bool], limit: int
    ) -> tuple[list[Any], int | None]:
        """One page in creation order after the cursor, and the next cursor."""
        seqs, ids = self.order[type_]
        table: Any = self.resources_by_id if type_ == "resource" else self.holders
        page: list[Any] = []
        for index in range(bisect_right(seqs, after), len(seqs)):
            entry = table[ids[index]]
            if not keep(entry):
                continue
            if len(page) == limit:
                return page, page[-1].seq
            page.append(entry)
        return page, None

    def iter_holders(self, type_: str) -> Iterator[HolderEntry]:
        for holder_id in self.order[type_][1]:
            yield self.holders[holder_id]


def set_expiry(entry: HolderEntry, expires_at: str | None) -> None:
    entry.expires_at = expires_at
    entry.expires_ts = None
    if expires_at is not None:
        entry.expires_ts = seconds_of(expires_at)


def granting_selectors(
    holder: HolderEntry, kind: str, name: str, matched: frozenset[str] | set[str]
) -> list[str]:
    """The holder's selectors that grant the name, sorted; `matched` is every
    granted pattern that matches it."""
    exact = holder.grants.exact.get(kind)
    patterns = holder.grants.patterns.get(kind)
    found = [name] if exact is not None and name in exact else []
    if patterns is not None and matched:
        found += patterns & matched
    found.sort()
    return found
