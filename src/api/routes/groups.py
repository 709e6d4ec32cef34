"""Access groups: named bundles of grants, and who uses each."""

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
from api.presenters import group_public
from api.roles import ADMINS, READERS
from api.schemas import AccessGroupCreate, AccessGroupUpdate
from domain.aggregates import Change

router = APIRouter(prefix="/v1/access-groups", tags=["access groups"])


@router.post("", status_code=201, dependencies=ADMINS)
@idempotent
def create_group(
    body: AccessGroupCreate,
    change: Change = Depends(change_by),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    group_id, position = ledger.create_group(
        body.name, body.description, body.grants, change
    )
    return written(group_public(ledger.index.holders[group_id]), position, 201)


@router.get("", dependencies=READERS)
def list_groups(
    q: str | None = Query(None, description="Part of the name, any case."),
    page: Page = Depends(page_of),
    min_position: int | None = Depends(wanted_position),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    needle = q.casefold() if q else None

    def keep(group) -> bool:  # type: ignore[no-untyped-def]
        return not group.deleted and (needle is None or needle in group.name.casefold())

    position = ledger.current()
    with ledger.index.lock:
        items, next_seq = ledger.index.listing("group", page.after, keep, page.limit)
        body = {
            "items": [group_public(g) for g in items],
            "next_cursor": cursor_of(next_seq),
        }
    return answer(body, position)


@router.get("/{group_id}", dependencies=READERS)
def get_group(
    group_id: str,
    min_position: int | None = Depends(wanted_position),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    position = ledger.current()
    group = live_holder(ledger.index, "group", group_id)
    return holder_answer(group_public(group), position)


@router.patch("/{group_id}", dependencies=ADMINS)
@idempotent
def update_group(
    group_id: str,
    body: AccessGroupUpdate,
    change: Change = Depends(change_by),
    if_match: int | None = Depends(expected_version),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    """Rename, describe, add and remove grants; every key and team using the
    group changes at once."""
    position = ledger.update_group(
        group_id,
        change,
        name=body.name,
        description=body.description,
        add=body.add,
        remove=body.remove,
        if_match=if_match,
    )
    return written(group_public(ledger.index.holders[group_id]), position)


@router.delete("/{group_id}", status_code=204, dependencies=ADMINS)
@idempotent
def delete_group(
    group_id: str,
    change: Change = Depends(change_by),
    if_match: int | None = Depends(expected_version),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    """Delete a group; it is detached from every key and team at once."""
    return no_content(ledger.delete_group(group_id, change, if_match))


@router.get("/{group_id}/usage", dependencies=READERS)
def group_usage(
    group_id: str,
    min_position: int | None = Depends(wanted_position),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    """The keys and teams the group is attached to, and the keys of those teams."""
    position = ledger.current()
    with ledger.index.lock:
        group = live_holder(ledger.index, "group", group_id)
        keys, teams, via_teams = ledger.index.usage(group)
        body = {
            "keys": [{"id": k.id, "alias": k.name} for k in keys],
            "teams": [{"id": t.id, "name": t.name} for t in teams],
            "keys_via_teams": [
                {"id": k.id, "alias": k.name, "team_id": k.team_id} for k in via_teams
            ],
        }
    return answer(body, position)
