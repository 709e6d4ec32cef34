"""Resources, names, selectors and grant maps: the vocabulary of every rule.

Pure functions with no I/O. A selector is a pattern exactly when it contains
`*`; every other character matches itself and the whole name must match.
"""

from __future__ import annotations

import unicodedata
from typing import Iterable, Mapping

from domain.errors import InvalidRequest, InvalidSelector

KINDS: tuple[str, ...] = ("model", "mcp_server", "agent")
MAX_NAME_LENGTH = 256
MAX_DESCRIPTION_LENGTH = 1000
# Selectors in one grant map: a request is an admin's change, not a bulk load.
MAX_SELECTORS = 1000

# A grant map after validation: every kind present, selectors sorted, unique.
GrantMap = dict[str, list[str]]


def check_kind(kind: object) -> str:
    if kind not in KINDS:
        raise InvalidRequest(f"unknown kind {kind!r}; kinds are {', '.join(KINDS)}")
    return kind  # type: ignore[return-value]


def has_forbidden_characters(text: str) -> bool:
    """Control characters, and lone surrogates that no database can store."""
    if text.isascii():  # the common case, in one pass of C
        return not text.isprintable()
    return any(unicodedata.category(char) in ("Cc", "Cs") for char in text)


def check_name(name: object, what: str = "name") -> str:
    """A resource name, selector, group or team name, or key alias."""
    if not isinstance(name, str):
        raise InvalidRequest(f"{what} must be a string")
    if not name:
        raise InvalidSelector(f"{what} must not be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidSelector(f"{what} is longer than {MAX_NAME_LENGTH} characters")
    if has_forbidden_characters(name):
        raise InvalidSelector(f"{what} contains a control character or a lone surrogate")
    if name != name.strip():
        raise InvalidSelector(f"{what} starts or ends with a space")
    if has_invisible_characters(name):
        raise InvalidSelector(
            f"{what} contains an invisible or direction-changing character"
        )
    return name


# Characters that draw nothing although they are not formats: fillers,
# the combining grapheme joiner, variation selectors, tags, a blank pattern.
BLANK_MARKS = (
    {"\u034f", "\u115f", "\u1160", "\u17b4", "\u17b5", "\u2800", "\u3164"}
    | {"\uffa0", *map(chr, range(0x180B, 0x1810)), *map(chr, range(0xFE00, 0xFE10))}
    | {*map(chr, range(0xE0000, 0xE1000)), *map(chr, range(0x1BCA0, 0x1BCA4))}
)
EMOJI_SELECTORS = {"\ufe0e", "\ufe0f"}
JOINER = "\u200d"
KEYCAP = "\u20e3"


def has_invisible_characters(text: str) -> bool:
    """Characters that draw nothing, direction overrides and line separators:
    they make two names that look the same, or one that reads backwards.

    Emoji still work: a text or emoji selector right after a symbol or
    before a keycap, and a joiner between two symbols (as in 👩‍💻), are part
    of what is drawn.
    """
    if text.isascii():  # none of these is ASCII; most names are
        return False
    for at, char in enumerate(text):
        before = text[at - 1] if at else ""
        after = text[at + 1] if at + 1 < len(text) else ""
        if char in EMOJI_SELECTORS and (is_symbol(before) or after == KEYCAP):
            continue
        joins_symbols = is_symbol(before) or before in EMOJI_SELECTORS
        if char == JOINER and joins_symbols and is_symbol(after):
            continue
        if char in BLANK_MARKS or unicodedata.category(char) in ("Cf", "Zl", "Zp"):
            return True
    return False


def is_symbol(char: str) -> bool:
    """A pictograph or an emoji modifier (skin tones are modifier symbols)."""
    return bool(char) and unicodedata.category(char) in ("So", "Sk")


def check_description(description: object) -> str:
    if not isinstance(description, str):
        raise InvalidRequest("description must be a string")
    if len(description) > MAX_DESCRIPTION_LENGTH:
        raise InvalidRequest(
            f"description is longer than {MAX_DESCRIPTION_LENGTH} characters"
        )
    # Line breaks and tabs are fine in prose; other control characters are not.
    if has_forbidden_characters(description.replace("\n", "").replace("\t", "")):
        raise InvalidRequest("description contains a control character")
    return description


def normalise_name(name: str) -> str:
    """The form in which group and team names must be unique."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", name).casefold())


def is_pattern(selector: str) -> bool:
    return "*" in selector


def matches(selector: str, name: str) -> bool:
    """Whether a selector matches a resource name (kinds compared elsewhere).

    The pieces between stars must appear in order; the first must start the
    name and the last must end it. Taking each middle piece at its leftmost
    place is always right when `*` is the only wildcard, so this runs in
    linear passes of `str.find`: no regular expression, no backtracking, and
    no pattern that can make it slow.
    """
    if "*" not in selector:
        return selector == name
    pieces = selector.split("*")
    first, last = pieces[0], pieces[-1]
    if len(first) + len(last) > len(name):
        return False
    if not (name.startswith(first) and name.endswith(last)):
        return False

    at, stop = len(first), len(name) - len(last)
    for piece in pieces[1:-1]:
        found = name.find(piece, at, stop)
        if found < 0:
            return False
        at = found + len(piece)
    return True


def literal_prefix(selector: str) -> str:
    """The characters every match must start with: a cheap first filter."""
    return selector.split("*", 1)[0]


def check_grant_map(grants: object, what: str = "grants") -> GrantMap:
    """Validate a map from kind to selectors; answer it with every kind."""
    if grants is None:
        return empty_grant_map()
    if not isinstance(grants, Mapping):
        raise InvalidRequest(f"{what} must be an object mapping kinds to lists")

    result = empty_grant_map()
    for kind, selectors in grants.items():
        check_kind(kind)
        if not isinstance(selectors, list):
            raise InvalidRequest(f"{what}.{kind} must be a list of selectors")
        if len(selectors) > MAX_SELECTORS:
            raise InvalidRequest(f"{what} names more than {MAX_SELECTORS} selectors")
        checked = (check_name(s, f"selector in {what}.{kind}") for s in selectors)
        result[kind] = sorted(set(checked))

    if sum(len(selectors) for selectors in result.values()) > MAX_SELECTORS:
        raise InvalidRequest(f"{what} names more than {MAX_SELECTORS} selectors")
    return result


def empty_grant_map() -> GrantMap:
    return {kind: [] for kind in KINDS}


def grant_pairs(grants: Mapping[str, Iterable[str]]) -> set[tuple[str, str]]:
    return {(kind, s) for kind, selectors in grants.items() for s in selectors}


def grant_map_of(pairs: Iterable[tuple[str, str]]) -> GrantMap:
    result = empty_grant_map()
    for kind, selector in pairs:
        result[kind].append(selector)
    for kind in KINDS:
        result[kind].sort()
    return result


def check_restriction(restrict: object) -> GrantMap | None:
    """A restriction keeps only the kinds it names; None limits nothing."""
    if restrict is None:
        return None
    if not isinstance(restrict, Mapping):
        raise InvalidRequest("restrict must be an object mapping kinds to lists, or null")
    if not restrict:
        return None

    checked = check_grant_map(restrict, "restrict")
    return {kind: checked[kind] for kind in KINDS if kind in restrict}
