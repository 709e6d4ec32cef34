"""The read-side questions the pages ask of the access index.

Callers hold the index lock. Each answer is bounded (a page, a limit) so a
page over the full catalog or thousands of keys stays quick.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Any

from domain.resources import KINDS, is_pattern, literal_prefix, matches
from domain.rules import restriction_allows
from projections.access_index import AccessIndex, HolderEntry

# Names the picker shows for one query; the admin narrows the search for more.
PICKER_LIMIT = 25
# Sample of the names a pattern matches, shown beside its count.
SAMPLE = 8


@dataclass
class GroupRow:
    group: HolderEntry
    counts: dict[str, int]
    keys: int
    teams: int


def group_row(index: AccessIndex, group: HolderEntry) -> GroupRow:
    attached = [index.holders[h] for h in group.attached]
    return GroupRow(
        group,
        {kind: len(group.grants.selectors(kind)) for kind in KINDS},
        sum(1 for h in attached if h.type == "key"),
        sum(1 for h in attached if h.type == "team"),
    )


def live(index: AccessIndex, type_: str) -> list[HolderEntry]:
    """Every live holder of a type, by name: for the choices on a form."""
    found = [h for h in index.iter_holders(type_) if not h.deleted]
    return sorted(found, key=lambda h: h.name.casefold())


def catalog_search(index: AccessIndex, kind: str, query: str) -> list[str]:
    """Active names of one kind containing the query, any case; a few only."""
    needle = query.casefold()
    found = []
    for name in index.active_names[kind]:
        if needle in name.casefold():
            found.append(name)
            if len(found) == PICKER_LIMIT:
                break
    return found


def pattern_matches(index: AccessIndex, kind: str, pattern: str) -> tuple[int, list[str]]:
    """How many active names a pattern matches now, and the first few."""
    names = index.active_names[kind]
    prefix = literal_prefix(pattern)
    count, sample = 0, []
    for position in range(bisect_left(names, prefix), len(names)):
        name = names[position]
        if not name.startswith(prefix):
            break
        if matches(pattern, name):
            count += 1
            if len(sample) < SAMPLE:
                sample.append(name)
    return count, sample


def selector_notes(index: AccessIndex, grants: dict[str, list[str]]) -> dict[str, Any]:
    """For each selector on a holder: what it grants now, in words."""
    notes: dict[str, Any] = {}
    for kind in KINDS:
        for selector in grants.get(kind, ()):
            notes[f"{kind}:{selector}"] = selector_note(index, kind, selector)
    return notes


def selector_note(index: AccessIndex, kind: str, selector: str) -> str:
    if is_pattern(selector):
        count, _ = pattern_matches(index, kind, selector)
        return f"pattern, matches {count} now"
    status = index.resource_status(kind, selector)
    return "" if status == "active" else (status or "not in the catalog")


@dataclass
class Loss:
    key: HolderEntry
    lost: dict[str, list[str]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(len(names) for names in self.lost.values())


def losses_without(index: AccessIndex, group: HolderEntry, now: float) -> list[Loss]:
    """What each key reaching a group would lose if the group were deleted:
    the resources it grants the key that no other source of the key grants.

    What each holder grants is worked out once per holder, not once per key:
    a group used by a thousand keys through a few teams costs a few sets.
    """
    keys, _, via_teams = index.usage(group)
    reached = {k.id: k for k in [*keys, *via_teams]}
    granted = GrantedNames(index)
    found = []
    for key in sorted(reached.values(), key=lambda k: k.seq):
        loss = Loss(key)
        if index.key_state_denial(key, now) is None:
            others = [s.holder for s in index.sources_of(key) if s.holder.id != group.id]
            for kind in KINDS:
                names = [
                    name
                    for name in sorted(granted.of(group, kind))
                    if restriction_allows(key.restrict, kind, name)
                    and not any(name in granted.of(h, kind) for h in others)
                ]
                if names:
                    loss.lost[kind] = names
        found.append(loss)
    return found


class GrantedNames:
    """The active names each holder's own grants match, per kind, remembered."""

    def __init__(self, index: AccessIndex) -> None:
        self.index = index
        self.known: dict[tuple[str, str], set[str]] = {}

    def of(self, holder: HolderEntry, kind: str) -> set[str]:
        found = self.known.get((holder.id, kind))
        if found is None:
            found = set()
            for selector in holder.grants.selectors(kind):
                found.update(self.index.active_matches(kind, selector))
            self.known[(holder.id, kind)] = found
        return found


def reason_words(index: AccessIndex, reason: Any) -> dict[str, Any]:
    """One reason as the page shows it: where it comes from, and through what."""
    holder = index.holders.get(reason.holder_id)
    source = {
        "key": "granted to the key",
        "key_group": "group on the key",
        "team": "granted to its team",
        "team_group": "group on its team",
    }[reason.source]
    return {
        "source": source,
        "holder_id": reason.holder_id,
        "holder_name": holder.name if holder is not None else reason.holder_id,
        "holder_type": holder.type if holder is not None else "",
        "selector": reason.selector,
    }
