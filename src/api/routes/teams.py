"""Teams: their keys get the team's grants and the grants of its groups."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from api.http import (
    Page,
    answer,
    change_by,
    cursor_of,
    expected_version,
    get_ledger,
    holder_answer,
    no_content,
    page_of,
    wanted_position,
    written,
)
from api.idempotency import idempotent
from api.ledger import Ledger, live_holder
from api.presenters import team_public
from api.roles import ADMINS, READERS
from api.schemas import TeamCreate, TeamUpdate
from domain.aggregates import Change

router = APIRouter(prefix="/v1/teams", tags=["teams"])


@router.post("", status_code=201, dependencies=ADMINS)
@idempotent
def create_team(
    body: TeamCreate,
    change: Change = Depends(change_by),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    team_id, position = ledger.create_team(
        body.name, body.access_groups, body.grants, change
    )
    return written(team_public(ledger.index.holders[team_id]), position, 201)


@router.get("", dependencies=READERS)
def list_teams(
    q: str | None = Query(None, description="Part of the name, any case."),
    page: Page = Depends(page_of),
    min_position: int | None = Depends(wanted_position),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    needle = q.casefold() if q else None

    def keep(team) -> bool:  # type: ignore[no-untyped-def]
        return not team.deleted and (needle is None or needle in team.name.casefold())

    position = ledger.current()
    with ledger.index.lock:
        items, next_seq = ledger.index.listing("team", page.after, keep, page.limit)
        body = {
            "items": [team_public(t) for t in items],
            "next_cursor": cursor_of(next_seq),
        }
    return answer(body, position)


@router.get("/{team_id}", dependencies=READERS)
def get_team(
    team_id: str,
    min_position: int | None = Depends(wanted_position),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    position = ledger.current()
    team = live_holder(ledger.index, "team", team_id)
    return holder_answer(team_public(team), position)


@router.patch("/{team_id}", dependencies=ADMINS)
@idempotent
def update_team(
    team_id: str,
    body: TeamUpdate,
    change: Change = Depends(change_by),
    if_match: int | None = Depends(expected_version),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    position = ledger.update_team(
        team_id,
        change,
        name=body.name,
        add=body.add,
        remove=body.remove,
        if_match=if_match,
    )
    return written(team_public(ledger.index.holders[team_id]), position)


@router.delete("/{team_id}", status_code=204, dependencies=ADMINS)
@idempotent
def delete_team(
    team_id: str,
    change: Change = Depends(change_by),
    if_match: int | None = Depends(expected_version),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    """Delete a team and every key of the team."""
    return no_content(ledger.delete_team(team_id, change, if_match))


@router.put("/{team_id}/access-groups/{group_id}", dependencies=ADMINS)
@idempotent
def attach_group(
    team_id: str,
    group_id: str,
    change: Change = Depends(change_by),
    if_match: int | None = Depends(expected_version),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    position = ledger.set_attachment("team", team_id, group_id, True, change, if_match)
    return written(team_public(ledger.index.holders[team_id]), position)


@router.delete("/{team_id}/access-groups/{group_id}", dependencies=ADMINS)
@idempotent
def detach_group(
    team_id: str,
    group_id: str,
    change: Change = Depends(change_by),
    if_match: int | None = Depends(expected_version),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    position = ledger.set_attachment("team", team_id, group_id, False, change, if_match)
    return written(team_public(ledger.index.holders[team_id]), position)


@router.post("/{team_id}/block", dependencies=ADMINS)
@idempotent
def block_team(
    team_id: str,
    change: Change = Depends(change_by),
    if_match: int | None = Depends(expected_version),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    """Deny every key of the team everything, at once, until unblocked."""
    position = ledger.set_blocked("team", team_id, True, change, if_match)
    return written(team_public(ledger.index.holders[team_id]), position)


@router.post("/{team_id}/unblock", dependencies=ADMINS)
@idempotent
def unblock_team(
    team_id: str,
    change: Change = Depends(change_by),
    if_match: int | None = Depends(expected_version),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    position = ledger.set_blocked("team", team_id, False, change, if_match)
    return written(team_public(ledger.index.holders[team_id]), position)
