"""Selector matching against a reference: `*` is any run of characters
(slashes and the empty run included), everything else matches itself, and
the whole name must match. The reference is a regular expression."""

from __future__ import annotations

import re

from hypothesis import example, given, settings
from hypothesis import strategies as st

from domain.resources import literal_prefix, matches

# Few letters, so that pieces of a selector often occur in a name.
LETTERS = st.sampled_from("ab/.-*")
NAME_LETTERS = st.sampled_from("ab/.-")


def reference(selector: str, name: str) -> bool:
    pattern = ".*".join(re.escape(piece) for piece in selector.split("*"))
    return re.fullmatch(pattern, name, re.DOTALL) is not None


@settings(max_examples=3000, deadline=None)
@given(st.text(LETTERS, max_size=12), st.text(NAME_LETTERS, max_size=14))
@example("a*a", "a")
@example("*", "")
@example("a**b", "ab")
@example("a/*/b", "a//b")
def test_matching_agrees_with_the_reference(selector: str, name: str) -> None:
    assert matches(selector, name) == reference(selector, name)


@settings(max_examples=1000, deadline=None)
@given(st.text(LETTERS, max_size=12), st.text(NAME_LETTERS, max_size=14))
def test_every_match_starts_with_the_literal_prefix(selector: str, name: str) -> None:
    if matches(selector, name):
        assert name.startswith(literal_prefix(selector))


@settings(max_examples=500, deadline=None)
@given(st.text(NAME_LETTERS, min_size=1, max_size=14))
def test_a_name_matches_itself_and_a_lone_star(name: str) -> None:
    assert matches(name, name) and matches("*", name)
