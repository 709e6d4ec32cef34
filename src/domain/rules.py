"""The access rule, as pure functions over holder states.

One rule for every kind: a key's effective access is every active resource
that some grant of its sources matches (the key, its groups, its team and
the team's groups), minus what its restriction leaves out; empty while the
key or its team is blocked or the key is expired. A denial names the first
cause that applies, in the order of DENIAL_ORDER.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Iterator

from domain.errors import InvalidRequest, RetiredResource, UnknownResource
from domain.resources import KINDS, GrantMap, is_pattern, matches

DENIAL_ORDER = (
    "unknown_key",
    "key_deleted",
    "key_blocked",
    "key_expired",
    "team_blocked",
    "unknown_resource",
    "retired_resource",
    "no_grant",
    "restricted",
)

# The four places a key's grants come from, in the order reasons are listed.
SOURCES = ("key", "key_group", "team", "team_group")


EMPTY: frozenset[str] = frozenset()


class GrantSet:
    """One holder's direct grants, split so that exact names are one look-up.

    Sets exist only for the kinds a holder has grants of: most keys have
    none, and a hundred thousand keys each carrying six empty sets would
    cost more memory than everything else they hold.
    """

    __slots__ = ("exact", "patterns")

    def __init__(self) -> None:
        self.exact: dict[str, set[str]] = {}
        self.patterns: dict[str, set[str]] = {}

    def add(self, kind: str, selector: str) -> None:
        split = self.patterns if is_pattern(selector) else self.exact
        split.setdefault(kind, set()).add(selector)

    def discard(self, kind: str, selector: str) -> None:
        split = self.patterns if is_pattern(selector) else self.exact
        selectors = split.get(kind)
        if selectors is not None:
            selectors.discard(selector)
            if not selectors:
                del split[kind]

    def matching(self, kind: str, name: str) -> Iterator[str]:
        if name in self.exact.get(kind, EMPTY):
            yield name
        for pattern in self.patterns.get(kind, EMPTY):
            if matches(pattern, name):
                yield pattern

    def selectors(self, kind: str) -> set[str]:
        return self.exact.get(kind, set()) | self.patterns.get(kind, set())

    def as_map(self) -> GrantMap:
        return {kind: sorted(self.selectors(kind)) for kind in KINDS}

    def pairs(self) -> Iterator[tuple[str, str]]:
        for kind in KINDS:
            for selector in self.selectors(kind):
                yield kind, selector


@dataclass(frozen=True, slots=True)
class Reason:
    source: str
    holder_id: str
    selector: str
    team_id: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reasons: tuple[Reason, ...] = ()
    denied_because: str | None = None


def restriction_allows(restrict: GrantMap | None, kind: str, name: str) -> bool:
    if restrict is None or kind not in restrict:
        return True
    return any(matches(selector, name) for selector in restrict[kind])


def decide_grants(
    sources: list[tuple[str, str, GrantSet, str | None]],
    restrict: GrantMap | None,
    kind: str,
    name: str,
) -> Decision:
    """The part of a check after states and the catalog have been looked at.

    `sources` are (source, holder_id, grants, team_id) in SOURCES order.
    """
    reasons = tuple(
        Reason(source, holder_id, selector, team_id)
        for source, holder_id, grants, team_id in sources
        for selector in sorted(grants.matching(kind, name))
    )
    if not reasons:
        return Decision(False, denied_because="no_grant")
    if not restriction_allows(restrict, kind, name):
        return Decision(False, denied_because="restricted")
    return Decision(True, reasons)


def check_catalog_selectors(
    grants: GrantMap, status_of: Callable[[str, str], str | None]
) -> None:
    """A concrete selector must name an active resource when it is granted."""
    for kind in KINDS:
        for selector in grants.get(kind, ()):
            if is_pattern(selector):
                continue
            status = status_of(kind, selector)
            if status is None:
                raise UnknownResource(f"{kind} {selector!r} is not in the catalog")
            if status != "active":
                raise RetiredResource(f"{kind} {selector!r} is retired")


RFC_3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})"
)


def parse_time(value: object, what: str = "time") -> datetime:
    """An RFC 3339 time with an offset, as an aware UTC datetime."""
    if not isinstance(value, str) or not RFC_3339.fullmatch(value):
        raise InvalidRequest(
            f"{what} must be an RFC 3339 time with an offset, "
            "such as 2030-01-31T12:00:00Z"
        )
    text = value.upper().replace("Z", "+00:00")
    whole, dot, rest = text.partition(".")
    if dot:  # Python reads at most microseconds; finer digits change nothing here
        digits = rest[:-6]
        text = f"{whole}.{digits[:6].ljust(6, '0')}{rest[-6:]}"
    try:
        return datetime.fromisoformat(text).astimezone(timezone.utc)
    except (ValueError, OverflowError):
        raise InvalidRequest(f"{what} is not a time that exists: {value!r}") from None


def format_time(moment: datetime) -> str:
    text = moment.astimezone(timezone.utc).isoformat()
    return text.replace("+00:00", "Z")


def seconds_of(text: str) -> float:
    """Seconds since the epoch of a time this service wrote (RFC 3339, Z)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def text_of(seconds: float) -> str:
    """The RFC 3339 text of seconds since the epoch."""
    return format_time(datetime.fromtimestamp(seconds, timezone.utc))


def canonical_time(value: object, what: str = "time") -> str:
    return format_time(parse_time(value, what))
