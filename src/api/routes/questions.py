"""Questions a gateway asks on every request, answered from the access index.

These routes are `async`: they only read memory (after one indexed query for
the store's head), and skipping the thread pool halves their latency.
"""

from __future__ import annotations

import time
from bisect import bisect_right
from typing import Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from api.auth import bearer_token
from api.http import (
    POSITION_HEADER,
    JSONAnswer,
    Page,
    answer,
    cursor_of,
    get_ledger,
    now,
    page_of,
    wanted_position,
)
from api.ledger import Ledger, hash_secret, live_holder
from api.presenters import (
    SharedReasons,
    access_public,
    decision_public,
    model_list_public,
    model_public,
)
from api.roles import GATEWAYS, READERS
from api.schemas import BulkCheckRequest, CheckRequest
from domain.errors import InvalidRequest, NotFound, Unauthorized
from domain.resources import KINDS, check_kind, check_name, has_forbidden_characters
from domain.rules import Reason, parse_time
from projections.access_index import BY_SEQ, AccessIndex, HolderEntry
from projections.past import PastIndex, command_boundary, committed_at, position_at_time

MAX_BULK = 1000
NAMES_ONLY = (
    "false: the names alone, without reasons; a long list is several times "
    "smaller and faster."
)

router = APIRouter(tags=["questions"])


@router.post("/v1/check", dependencies=GATEWAYS)
async def check(
    body: CheckRequest,
    request: Request,
    min_position: int | None = Depends(wanted_position),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    """May this key use this resource now (or at `at` / `position`), and why?"""
    check_item(body)
    position = ledger.current()
    if asks_about_past(body):
        result = await run_in_threadpool(evaluate_past, ledger, body, position)
        return answer(result, position)
    with ledger.index.lock:
        result = evaluate(ledger.index, body, now(), position, request.app.state.metrics)
    return answer(result, position)


@router.post("/v1/check/bulk", dependencies=GATEWAYS)
async def check_bulk(
    body: BulkCheckRequest,
    request: Request,
    min_position: int | None = Depends(wanted_position),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    """Up to 1,000 checks against one state of the ledger, answered in order."""
    if len(body.checks) > MAX_BULK:
        raise InvalidRequest(f"at most {MAX_BULK} checks per request")
    for item in body.checks:
        check_item(item)

    position = ledger.current()
    metrics = request.app.state.metrics
    if any(asks_about_past(item) for item in body.checks):
        results = await run_in_threadpool(
            evaluate_mixed, ledger, body.checks, position, metrics
        )
        return answer({"results": results, "position": position}, position)
    moment = now()
    with ledger.index.lock:
        results = [
            evaluate(ledger.index, item, moment, position, metrics)
            for item in body.checks
        ]
    return answer({"results": results, "position": position}, position)


def asks_about_past(item: CheckRequest) -> bool:
    return item.at is not None or item.position is not None


def evaluate_mixed(
    ledger: Ledger, items: list[CheckRequest], position: int, metrics: Any
) -> list[dict[str, Any]]:
    """A bulk check with questions about the past: those about now are all
    answered first, from one state of the index, then each past one from
    the state it names."""
    moment = now()
    with ledger.index.lock:
        present = {
            at: evaluate(ledger.index, item, moment, position, metrics)
            for at, item in enumerate(items)
            if not asks_about_past(item)
        }
    return [
        present[at] if at in present else evaluate_past(ledger, item, position)
        for at, item in enumerate(items)
    ]


@router.get("/v1/keys/{key_id}/access", dependencies=GATEWAYS)
async def key_access(
    key_id: str,
    kind: str | None = Query(None),
    at: str | None = Query(None, description="As of this time (RFC 3339)."),
    position: int | None = Query(None, description="As of this ledger position."),
    reasons: bool = Query(True, description=NAMES_ONLY),
    min_position: int | None = Depends(wanted_position),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    """Everything the key can use now (or then), by kind, with the reasons."""
    kinds = (check_kind(kind),) if kind is not None else KINDS
    current = ledger.current()
    if at is not None or position is not None:
        body = await run_in_threadpool(
            access_past, ledger, key_id, kinds, at, position, current, reasons
        )
        return answer(body, current)
    with ledger.index.lock:
        key = live_holder(ledger.index, "key", key_id)
        resources = access_public(ledger.index, key, kinds, now(), reasons)
    return answer({"key_id": key_id, "as_of": current, "resources": resources}, current)


@router.get("/v1/who-can-use", dependencies=READERS)
async def who_can_use(
    kind: str = Query(...),
    name: str = Query(...),
    page: Page = Depends(page_of),
    reasons: bool = Query(True, description=NAMES_ONLY),
    at: str | None = Query(None, include_in_schema=False),
    as_of: str | None = Query(None, alias="position", include_in_schema=False),
    min_position: int | None = Depends(wanted_position),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    """The keys that can use a resource now, in creation order, with reasons."""
    if at is not None or as_of is not None:
        # Answering about now to a question about the past would mislead.
        raise InvalidRequest(
            "who-can-use answers about now; for the past ask "
            "/v1/audit/grants?kind=&name= with from and to"
        )
    check_kind(kind)
    check_name(name)
    position = ledger.current()
    with ledger.index.lock:
        if ledger.index.resources[kind].get(name) is None:
            raise NotFound(f"no {kind} named {name!r} in the catalog")
        moment = now()
        found = ledger.index.users_of(kind, name, moment)
        later = found[bisect_right(found, page.after, key=BY_SEQ) :]  # sorted by seq
        shown = later[: page.limit]
        keys = [{"key_id": key.id, "alias": key.name} for key in shown]
        if reasons:
            add_reasons(ledger.index, keys, shown, kind, name)
    next_seq = shown[-1].seq if len(later) > page.limit else None
    return answer({"keys": keys, "next_cursor": cursor_of(next_seq)}, position)


def add_reasons(
    index: AccessIndex, keys: list[dict], shown: list[HolderEntry], kind: str, name: str
) -> None:
    """Reasons only for the keys on a page; users_of has already asked
    everything else a check asks, so the reasons are all that is left."""
    grantors = index.grantors_of(kind, name)
    known: dict[tuple[str, str, str | None], list[Reason]] = {}
    public = SharedReasons(index)
    for entry, key in zip(keys, shown, strict=True):
        entry["reasons"] = public(index.reasons_among(key, kind, name, grantors, known))


@router.get("/v1/models")
async def list_models(
    request: Request,
    authorization: str | None = Header(None, include_in_schema=False),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    """OpenAI's model list for the calling virtual key (bearer: its secret)."""
    secret_hash = hash_secret(bearer_token(authorization))
    position = ledger.current()
    with ledger.index.lock:
        key = calling_key(ledger.index, secret_hash)
        request.state.actor = f"key:{key.id}"
        body = model_list_public(ledger.index, key, now())
    return answer(body, position)


@router.get("/v1/models/{model_id:path}")
async def retrieve_model(
    model_id: str,
    request: Request,
    authorization: str | None = Header(None, include_in_schema=False),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    """One model of the calling key's list, as OpenAI's model object; 404 when
    `check` would not allow it (bearer: the key's secret)."""
    secret_hash = hash_secret(bearer_token(authorization))
    position = ledger.current()
    with ledger.index.lock:
        key = calling_key(ledger.index, secret_hash)
        request.state.actor = f"key:{key.id}"
        decision = ledger.index.check(key, "model", model_id, now())
        if decision.allowed:
            return answer(model_public(ledger.index, model_id), position)
    return model_not_found(model_id, position)


def calling_key(index: AccessIndex, secret_hash: str) -> HolderEntry:
    key = index.key_for_secret(secret_hash)
    if key is None or key.deleted:
        raise Unauthorized("unknown virtual key")
    return key


def model_not_found(model_id: str, position: int) -> Response:
    """The contract's error body, plus the two fields OpenAI's clients read.

    The same answer for a model that does not exist and one the key may not
    use: a key learns nothing about models outside its own list.
    """
    error = {
        "code": "not_found",
        "message": f"the model {model_id!r} does not exist or this key cannot use it",
        "type": "invalid_request_error",
        "param": "model",
    }
    return JSONAnswer(
        {"error": error}, status_code=404, headers={POSITION_HEADER: str(position)}
    )


def moment_asked(
    ledger: Ledger, connection: Any, at: Any, position: Any, head: int
) -> tuple[int, float]:
    """The command boundary an as-of question lands on, and the clock then.

    `at` is the last position committed at or before that time by the
    store's clock; `position` is rounded down to the end of its command.
    """
    if at is not None and position is not None:
        raise InvalidRequest("give at or position, not both")
    if position is not None:
        if position < 0 or position > head:
            raise InvalidRequest(f"position must be between 0 and the head, {head}")
        boundary = command_boundary(connection, position)
        return boundary, committed_at(connection, boundary)
    moment = parse_time(at, "at").timestamp()
    if moment > time.time():
        raise InvalidRequest("at is in the future")
    return position_at_time(connection, moment), moment


def evaluate_past(ledger: Ledger, item: CheckRequest, head: int) -> dict[str, Any]:
    with ledger.engine.connect() as connection:
        boundary, moment = moment_asked(ledger, connection, item.at, item.position, head)
        past = PastIndex(connection, boundary)
        key_id = item.key_id
        if key_id is None:
            # A secret names the key it belongs to now; the key is then asked about.
            with ledger.index.lock:
                key = find_key(ledger.index, item)
            key_id = key.id if key is not None else ""
        key = past.key(key_id)
        past.resource(item.kind, item.name)
        decision = past.index.check(key, item.kind, item.name, moment)
        return decision_public(past.index, decision, boundary)


def access_past(
    ledger: Ledger,
    key_id: str,
    kinds: tuple[str, ...],
    at: Any,
    position: Any,
    head: int,
    reasons: bool = True,
) -> dict[str, Any]:
    with ledger.engine.connect() as connection:
        boundary, moment = moment_asked(ledger, connection, at, position, head)
        past = PastIndex(connection, boundary)
        key = past.key(key_id)
        if key is None:
            raise NotFound(f"no key with id {key_id!r} at position {boundary}")
        past.catalog(kinds)
        resources = access_public(past.index, key, kinds, moment, reasons)
    return {"key_id": key_id, "as_of": boundary, "resources": resources}


def check_item(item: CheckRequest) -> None:
    check_kind(item.kind)
    check_name(item.name)
    if (item.key_id is None) == (item.key is None):
        raise InvalidRequest("give exactly one of key_id and key")
    if item.key is not None and has_forbidden_characters(item.key):
        raise InvalidRequest("key is not a key secret")


def evaluate(
    index: AccessIndex, item: CheckRequest, moment: float, position: int, metrics: Any
) -> dict[str, Any]:
    key = find_key(index, item)
    decision = index.check(key, item.kind, item.name, moment)
    metrics.count_decision(decision)
    return decision_public(index, decision, position)


def find_key(index: AccessIndex, item: CheckRequest) -> HolderEntry | None:
    if item.key_id is not None:
        return index.key(item.key_id)
    return index.key_for_secret(hash_secret(item.key or ""))
