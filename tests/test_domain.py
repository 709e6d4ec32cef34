"""Unit tests of the rules in src/domain: no store, no HTTP."""

from __future__ import annotations

import pytest

from domain.aggregates import AccessGroup, CatalogResource, Change, Key, NameClaim, Team
from domain.errors import (
    InvalidRequest,
    InvalidSelector,
    NameTaken,
    NotFound,
    RetiredResource,
    UnknownResource,
)
from domain.resources import (
    check_grant_map,
    check_name,
    check_restriction,
    is_pattern,
    matches,
    normalise_name,
)
from domain.rules import (
    GrantSet,
    canonical_time,
    check_catalog_selectors,
    decide_grants,
    restriction_allows,
)

BY = Change("tester", "unit test")


# -- selectors ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "name", "expected"),
    [
        ("openai/*", "openai/gpt-4o", True),
        ("openai/*", "openaiz/gpt-4o", False),
        ("openai/*", "azure/openai/x", False),
        ("openai/*", "openai/", True),
        ("*", "anything/at/all", True),
        ("*", "", True),
        ("gpt-4o", "gpt-4o", True),
        ("gpt-4o", "gpt-4o-mini", False),
        ("gpt-4o*", "gpt-4o-mini", True),
        ("*mini", "gpt-4o-mini", True),
        ("a*b*c", "a-b-c", True),
        ("a*b*c", "a-c-b", False),
        ("bedrock/*/1-month-commitment/x", "bedrock/y/1-month-commitment/x", True),
        ("bedrock/us.*", "bedrock/us.amazon.nova-micro-v1:0", True),
        ("bedrock/us.*", "bedrock/usXamazon", False),
        (
            "vertex_ai/claude-3-5-sonnet@20240620",
            "vertex_ai/claude-3-5-sonnet@20240620",
            True,
        ),
        ("données-*", "données-météo", True),
        ("DONNÉES-*", "données-météo", False),
        ("a.b", "axb", False),
        ("a+(b)[c]?\\", "a+(b)[c]?\\", True),
        ("x*", "x\ny", True),
    ],
)
def test_selector_matching(selector: str, name: str, expected: bool) -> None:
    assert matches(selector, name) is expected


def test_a_selector_is_a_pattern_exactly_when_it_contains_a_star() -> None:
    assert is_pattern("bedrock/*/1-month-commitment/cohere.command-text-v14")
    assert not is_pattern("bedrock/us.amazon.nova-micro-v1:0")


# Names that draw nothing, or that draw like another name.
INVISIBLE = ["\ufe0f", "a\ufe0fb", "a\ufe00b", "\u3164", "\uffa0", "\u2800", "a\u034fb"]
INVISIBLE += ["a\U000e0100b", "Fin\u200bance", "a\u202eb", " a", "a "]


@pytest.mark.parametrize(
    "name", ["", "x" * 257, "a\x00b", "tab\there", "\x7f", "\ud800", *INVISIBLE]
)
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidSelector):
        check_name(name)


EMOJI = ["techie 👩‍💻", "rainbow 🏳️‍🌈", "fam 👨‍👩‍👧", "❤️", "1️⃣", "👍🏽", "🇫🇷"]


@pytest.mark.parametrize(
    "name", ["x" * 256, "données-météo", "a b", "a:b@c/d", "*", "東京", *EMOJI]
)
def test_untidy_names_are_fine(name: str) -> None:
    assert check_name(name) == name


def test_a_name_that_is_not_a_string_is_a_bad_request() -> None:
    with pytest.raises(InvalidRequest):
        check_name(42)


def test_names_compare_after_nfc_and_case_folding() -> None:
    assert normalise_name("Prod") == normalise_name("PROD")
    assert normalise_name("Cafe\u0301") == normalise_name("CAFÉ")
    assert normalise_name("Straße") == normalise_name("STRASSE")
    assert normalise_name("Prod") != normalise_name("Prod ")


# -- grant maps and restrictions ------------------------------------------------


def test_grant_maps_list_every_kind_sorted_and_unique() -> None:
    checked = check_grant_map({"model": ["b", "a", "b"]})
    assert checked == {"model": ["a", "b"], "mcp_server": [], "agent": []}


@pytest.mark.parametrize(
    "grants", [{"tool": ["x"]}, {"model": "gpt-4o"}, ["model"], {"model": [1]}]
)
def test_malformed_grant_maps_are_bad_requests(grants: object) -> None:
    with pytest.raises(InvalidRequest):
        check_grant_map(grants)


def test_an_empty_selector_is_invalid() -> None:
    with pytest.raises(InvalidSelector):
        check_grant_map({"model": [""]})


def test_a_restriction_keeps_only_the_kinds_it_names() -> None:
    assert check_restriction(None) is None
    assert check_restriction({}) is None
    assert check_restriction({"agent": []}) == {"agent": []}
    restriction = check_restriction({"agent": ["helloworld"]})
    assert restriction_allows(restriction, "agent", "helloworld")
    assert not restriction_allows(restriction, "agent", "analytics")
    assert restriction_allows(restriction, "model", "gpt-4o")
    assert not restriction_allows({"model": []}, "model", "gpt-4o")


# -- the catalog rule -------------------------------------------------------------


def test_concrete_selectors_must_name_active_resources() -> None:
    catalog = {("model", "gpt-4o"): "active", ("model", "old"): "retired"}

    def status_of(kind: str, name: str) -> str | None:
        return catalog.get((kind, name))

    check_catalog_selectors({"model": ["gpt-4o", "new/*"]}, status_of)
    with pytest.raises(UnknownResource):
        check_catalog_selectors({"model": ["missing"]}, status_of)
    with pytest.raises(RetiredResource):
        check_catalog_selectors({"model": ["old"]}, status_of)


# -- deciding -------------------------------------------------------------------


def grant_set(*selectors: str, kind: str = "model") -> GrantSet:
    grants = GrantSet()
    for selector in selectors:
        grants.add(kind, selector)
    return grants


def test_two_selectors_of_one_group_give_two_reasons() -> None:
    sources = [("key_group", "g", grant_set("openai/*", "openai/gpt-4o"), None)]
    decision = decide_grants(sources, None, "model", "openai/gpt-4o")
    assert decision.allowed
    assert [r.selector for r in decision.reasons] == ["openai/*", "openai/gpt-4o"]


def test_no_grant_comes_before_restricted() -> None:
    nothing = [("key", "k", GrantSet(), None)]
    assert (
        decide_grants(nothing, {"model": []}, "model", "m").denied_because == "no_grant"
    )
    wide = [("key", "k", grant_set("*"), None)]
    assert (
        decide_grants(wide, {"model": ["n"]}, "model", "m").denied_because == "restricted"
    )


def test_grants_of_one_kind_grant_nothing_of_another() -> None:
    sources = [("team", "t", grant_set("*", kind="agent"), None)]
    assert decide_grants(sources, None, "model", "gpt-4o").denied_because == "no_grant"


def test_times_must_carry_an_offset() -> None:
    assert canonical_time("2001-01-01T00:00:00Z") == "2001-01-01T00:00:00Z"
    assert canonical_time("2001-01-01T02:00:00+02:00") == "2001-01-01T00:00:00Z"
    for bad in ("2001-01-01T00:00:00", "yesterday", 5):
        with pytest.raises(InvalidRequest):
            canonical_time(bad)


# -- aggregates: what records an event and what does not ----------------------------


def pending(aggregate: object) -> list[str]:
    return [type(e).__name__ for e in aggregate.collect_events()]  # type: ignore[attr-defined]


def test_a_group_records_only_real_changes() -> None:
    group = AccessGroup(
        name="Prod",
        description="",
        grants={"model": ["a"]},
        actor=BY.actor,
        reason=BY.reason,
    )
    assert pending(group) == ["Created"]

    group.add_grants({"model": ["a"], "mcp_server": [], "agent": []}, BY)
    group.rename("Prod", BY)
    group.describe("", BY)
    assert pending(group) == []

    group.add_grants({"model": ["b"], "mcp_server": [], "agent": []}, BY)
    group.remove_grants({"model": ["a"], "mcp_server": [], "agent": []}, BY)
    assert pending(group) == ["GrantsAdded", "GrantsRemoved"]
    assert group.grants["model"] == {"b"}


def test_removing_a_grant_that_is_not_there_is_an_error_and_records_nothing() -> None:
    group = AccessGroup(name="Prod", description="", grants={}, actor="a", reason=None)
    group.collect_events()
    with pytest.raises(NotFound):
        group.remove_grants({"model": ["a"], "mcp_server": [], "agent": []}, BY)
    assert pending(group) == []


def test_events_carry_the_actor_and_the_reason() -> None:
    team = Team(name="T", access_groups=[], grants={}, actor="alice", reason="onboarding")
    team.block(Change("bob", "incident 7"))
    created, blocked = team.collect_events()
    assert (created.actor, created.reason) == ("alice", "onboarding")
    assert (blocked.actor, blocked.reason) == ("bob", "incident 7")


def test_attach_block_and_their_no_ops() -> None:
    key = Key(
        alias="k",
        team_id=None,
        access_groups=["g1"],
        grants={},
        restrict=None,
        expires_at=None,
        secret_hash="0" * 64,
        actor="a",
        reason=None,
    )
    key.collect_events()

    key.attach_group("g1", BY)
    key.unblock(BY)
    assert pending(key) == []

    key.block(BY)
    key.block(BY)
    key.detach_group("g1", BY)
    assert pending(key) == ["Blocked", "GroupDetached"]
    with pytest.raises(NotFound):
        key.detach_group("g1", BY)


def test_restriction_and_expiry_record_only_changes() -> None:
    key = Key(
        alias="k",
        team_id=None,
        access_groups=[],
        grants={},
        restrict=None,
        expires_at=None,
        secret_hash="0" * 64,
        actor="a",
        reason=None,
    )
    key.collect_events()
    key.set_restriction(None, BY)
    key.set_expiry(None, BY)
    assert pending(key) == []
    key.set_restriction({"model": []}, BY)
    key.set_expiry("2001-01-01T00:00:00Z", BY)
    assert pending(key) == ["Restricted", "ExpirySet"]


def test_catalog_resources_retire_and_return() -> None:
    resource = CatalogResource(
        kind="model", name="gpt-4o", description="", actor="a", reason=None
    )
    resource.collect_events()
    resource.register_again(None, BY)
    assert pending(resource) == []
    resource.retire(BY)
    resource.retire(BY)
    resource.register_again(None, BY)
    assert pending(resource) == ["Retired", "Returned"]
    assert resource.id == CatalogResource.create_id("model", "gpt-4o")


def test_a_name_claim_admits_one_holder_at_a_time() -> None:
    claim = NameClaim(scope="team", normalised_name="sales", actor="a", reason=None)
    claim.claim("team-1", BY)
    claim.claim("team-1", BY)
    with pytest.raises(NameTaken):
        claim.claim("team-2", BY)
    claim.release("team-2", BY)
    assert claim.holder_id == "team-1"
    claim.release("team-1", BY)
    claim.claim("team-2", BY)
    assert pending(claim) == ["Opened", "Claimed", "Released", "Claimed"]
