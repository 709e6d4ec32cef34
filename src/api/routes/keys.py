"""Virtual keys. A key's secret is answered once, at creation and rotation."""

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
    now,
    page_of,
    wanted_position,
    written,
)
from api.idempotency import idempotent
from api.ledger import UNSET, Ledger, live_holder
from api.presenters import key_public
from api.roles import ADMINS, READERS
from api.schemas import KeyCreate, KeyUpdate
from domain.aggregates import Change

router = APIRouter(prefix="/v1/keys", tags=["keys"])


@router.post("", status_code=201, dependencies=ADMINS)
@idempotent
def create_key(
    body: KeyCreate,
    change: Change = Depends(change_by),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    """Create a key; its secret is in this answer and nowhere else, ever."""
    (key_id, secret), position = ledger.create_key(
        body.alias,
        change,
        team_id=body.team_id,
        access_groups=body.access_groups,
        grants=body.grants,
        restrict=body.restrict,
        expires_at=body.expires_at,
    )
    key = key_public(ledger.index.holders[key_id], now())
    return written({**key, "secret": secret}, position, 201)


@router.get("", dependencies=READERS)
def list_keys(
    team_id: str | None = Query(None),
    q: str | None = Query(None, description="Part of the alias, any case."),
    page: Page = Depends(page_of),
    min_position: int | None = Depends(wanted_position),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    needle = q.casefold() if q else None

    def keep(key) -> bool:  # type: ignore[no-untyped-def]
        return (
            not key.deleted
            and (team_id is None or key.team_id == team_id)
            and (needle is None or needle in key.name.casefold())
        )

    position = ledger.current()
    moment = now()
    with ledger.index.lock:
        items, next_seq = ledger.index.listing("key", page.after, keep, page.limit)
        body = {
            "items": [key_public(k, moment) for k in items],
            "next_cursor": cursor_of(next_seq),
        }
    return answer(body, position)


@router.get("/{key_id}", dependencies=READERS)
def get_key(
    key_id: str,
    min_position: int | None = Depends(wanted_position),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    position = ledger.current()
    key = live_holder(ledger.index, "key", key_id)
    return holder_answer(key_public(key, now()), position)


@router.patch("/{key_id}", dependencies=ADMINS)
@idempotent
def update_key(
    key_id: str,
    body: KeyUpdate,
    change: Change = Depends(change_by),
    if_match: int | None = Depends(expected_version),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    """`restrict` replaces the whole map (null or {} lifts every limit);
    `expires_at` null clears the expiry; fields left out stay as they are."""
    given = body.model_fields_set
    position = ledger.update_key(
        key_id,
        change,
        alias=body.alias,
        add=body.add,
        remove=body.remove,
        restrict=body.restrict if "restrict" in given else UNSET,
        expires_at=body.expires_at if "expires_at" in given else UNSET,
        if_match=if_match,
    )
    return written(key_public(ledger.index.holders[key_id], now()), position)


@router.delete("/{key_id}", status_code=204, dependencies=ADMINS)
@idempotent
def delete_key(
    key_id: str,
    change: Change = Depends(change_by),
    if_match: int | None = Depends(expected_version),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    """Delete a key for good; its secret stops working at once."""
    return no_content(ledger.delete_key(key_id, change, if_match))


@router.put("/{key_id}/access-groups/{group_id}", dependencies=ADMINS)
@idempotent
def attach_group(
    key_id: str,
    group_id: str,
    change: Change = Depends(change_by),
    if_match: int | None = Depends(expected_version),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    position = ledger.set_attachment("key", key_id, group_id, True, change, if_match)
    return written(key_public(ledger.index.holders[key_id], now()), position)


@router.delete("/{key_id}/access-groups/{group_id}", dependencies=ADMINS)
@idempotent
def detach_group(
    key_id: str,
    group_id: str,
    change: Change = Depends(change_by),
    if_match: int | None = Depends(expected_version),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    position = ledger.set_attachment("key", key_id, group_id, False, change, if_match)
    return written(key_public(ledger.index.holders[key_id], now()), position)


@router.post("/{key_id}/block", dependencies=ADMINS)
@idempotent
def block_key(
    key_id: str,
    change: Change = Depends(change_by),
    if_match: int | None = Depends(expected_version),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    position = ledger.set_blocked("key", key_id, True, change, if_match)
    return written(key_public(ledger.index.holders[key_id], now()), position)


@router.post("/{key_id}/unblock", dependencies=ADMINS)
@idempotent
def unblock_key(
    key_id: str,
    change: Change = Depends(change_by),
    if_match: int | None = Depends(expected_version),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    position = ledger.set_blocked("key", key_id, False, change, if_match)
    return written(key_public(ledger.index.holders[key_id], now()), position)


@router.post("/{key_id}/rotate", dependencies=ADMINS)
@idempotent
def rotate_key(
    key_id: str,
    change: Change = Depends(change_by),
    if_match: int | None = Depends(expected_version),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    """Give the key a new secret; the old one stops working at once."""
    secret, position = ledger.rotate_key(key_id, change, if_match)
    key = key_public(ledger.index.holders[key_id], now())
    return written({**key, "secret": secret}, position)
