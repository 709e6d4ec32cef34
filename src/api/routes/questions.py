"""Questions a gateway asks on every request, answered from the access index.

These routes are `async`: they only read memory (after one indexed query for
the store's head), and skipping the thread pool halves their latency.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import Response

from api.auth import bearer_token
from api.http import (
    Page,
    admin_actor,
    answer,
    cursor_of,
    get_ledger,
    now,
    page_of,
    wanted_position,
)
from api.ledger import Ledger, hash_secret, live_holder
from api.presenters import (
    access_public,
    decision_public,
    model_list_public,
    reason_public,
)
from api.schemas import BulkCheckRequest, CheckRequest
from domain.errors import InvalidRequest, NotFound, Unauthorized
from domain.resources import KINDS, check_kind, check_name
from projections.access_index import AccessIndex, HolderEntry

MAX_BULK = 1000

router = APIRouter(tags=["questions"])
admin = [Depends(admin_actor)]


@router.post("/v1/check", dependencies=admin)
async def check(
    body: CheckRequest,
    min_position: int | None = Depends(wanted_position),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    """May this key use this resource now, and why (or why not)?"""
    refuse_past(body.at, body.position)
    check_item(body)
    position = ledger.current(min_position)
    with ledger.index.lock:
        result = evaluate(ledger.index, body, now(), position)
    return answer(result, position)


@router.post("/v1/check/bulk", dependencies=admin)
async def check_bulk(
    body: BulkCheckRequest,
    min_position: int | None = Depends(wanted_position),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    """Up to 1,000 checks against one state of the ledger, answered in order."""
    if len(body.checks) > MAX_BULK:
        raise InvalidRequest(f"at most {MAX_BULK} checks per request")
    for item in body.checks:
        refuse_past(item.at, item.position)
        check_item(item)

    position = ledger.current(min_position)
    moment = now()
    with ledger.index.lock:
        results = [evaluate(ledger.index, item, moment, position) for item in body.checks]
    return answer({"results": results, "position": position}, position)


@router.get("/v1/keys/{key_id}/access", dependencies=admin)
async def key_access(
    key_id: str,
    kind: str | None = Query(None),
    at: str | None = Query(None, description="Not answered yet: see the audit API."),
    position: int | None = Query(None, description="Not answered yet."),
    min_position: int | None = Depends(wanted_position),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    """Everything the key can use now, by kind, each resource with its reasons."""
    refuse_past(at, position)
    kinds = (check_kind(kind),) if kind is not None else KINDS
    current = ledger.current(min_position)
    with ledger.index.lock:
        key = live_holder(ledger.index, "key", key_id)
        resources = access_public(ledger.index, key, kinds, now())
    return answer({"key_id": key_id, "as_of": current, "resources": resources}, current)


@router.get("/v1/who-can-use", dependencies=admin)
async def who_can_use(
    kind: str = Query(...),
    name: str = Query(...),
    page: Page = Depends(page_of),
    min_position: int | None = Depends(wanted_position),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    """The keys that can use a resource now, in creation order, with reasons."""
    check_kind(kind)
    check_name(name)
    position = ledger.current(min_position)
    with ledger.index.lock:
        if ledger.index.resources[kind].get(name) is None:
            raise NotFound(f"no {kind} named {name!r} in the catalog")
        found = ledger.index.who_can_use(kind, name, now())
        later = [(k, d) for k, d in found if k.seq > page.after]
        shown = later[: page.limit]
        keys = [
            {
                "key_id": key.id,
                "alias": key.name,
                "reasons": [reason_public(ledger.index, r) for r in decision.reasons],
            }
            for key, decision in shown
        ]
    next_seq = shown[-1][0].seq if len(later) > page.limit else None
    return answer({"keys": keys, "next_cursor": cursor_of(next_seq)}, position)


@router.get("/v1/models")
async def list_models(
    authorization: str | None = Header(None, include_in_schema=False),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    """OpenAI's model list for the calling virtual key (bearer: its secret)."""
    secret_hash = hash_secret(bearer_token(authorization))
    position = ledger.current()
    with ledger.index.lock:
        key = ledger.index.key_for_secret(secret_hash)
        if key is None or key.deleted:
            raise Unauthorized("unknown virtual key")
        body = model_list_public(ledger.index, key, now())
    return answer(body, position)


def refuse_past(at: Any, position: Any) -> None:
    if at is not None or position is not None:
        raise InvalidRequest(
            "questions about the past (at, position) are not answered by this version"
        )


def check_item(item: CheckRequest) -> None:
    check_kind(item.kind)
    check_name(item.name)
    if (item.key_id is None) == (item.key is None):
        raise InvalidRequest("give exactly one of key_id and key")


def evaluate(
    index: AccessIndex, item: CheckRequest, moment: float, position: int
) -> dict[str, Any]:
    key = find_key(index, item)
    return decision_public(index, index.check(key, item.kind, item.name, moment), position)


def find_key(index: AccessIndex, item: CheckRequest) -> HolderEntry | None:
    if item.key_id is not None:
        return index.key(item.key_id)
    return index.key_for_secret(hash_secret(item.key or ""))
