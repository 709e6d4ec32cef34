"""Audit: the event log, grant intervals, compliance replay and export.

These routes read the store (not the in-memory index), so they are plain
`def` routes and run in the thread pool.
"""

from __future__ import annotations

import time
from uuid import UUID

from fastapi import APIRouter, Body, Depends, Query
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict

from api.http import answer, get_ledger, wanted_position
from api.ledger import Ledger
from api.roles import READERS
from domain.errors import InvalidRequest, LedgerError, NotFound
from domain.resources import KINDS, check_kind, check_name
from projections.audit import as_csv, as_jsonl
from projections.grant_history import GrantHistory
from projections.past import export_bound, until_position
from projections.replay import replay

router = APIRouter(prefix="/v1/audit", tags=["audit"])

MAX_PAGE = 1000
# The largest id a store keeps (a signed 64-bit integer on both stores).
MAX_POSITION = 2**63 - 1


class ReplayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    until_position: int | None = None
    until_time: str | None = None


@router.get("/events", dependencies=READERS)
def audit_events(
    after: int = Query(
        0, ge=0, le=MAX_POSITION, description="Answer events after this position."
    ),
    limit: int = Query(100, ge=1, le=MAX_PAGE),
    holder: str | None = Query(
        None, description="Only this holder's (or resource's) events."
    ),
    actor: str | None = Query(
        None,
        description="Only the events of this actor. A page reads at most 20,000 "
        "events, so it can hold fewer than `limit`; go on from `next_after`.",
    ),
    min_position: int | None = Depends(wanted_position),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    """Every recorded change with its type, holder, time, actor, reason and data."""
    position = ledger.current()
    holder_id = parse_holder(holder)
    items, next_after = ledger.audit.page(
        after, limit, holder_id, position, parse_actor(actor)
    )
    return answer({"items": items, "next_after": next_after}, position)


@router.get("/grants", dependencies=READERS)
def audit_grants(
    key_id: str | None = Query(None, description="One key; or give kind and name."),
    kind: str | None = Query(None),
    name: str | None = Query(None, description="One resource; needs kind."),
    from_: str | None = Query(
        None, alias="from", description="Intervals that end after (time or position)."
    ),
    to: str | None = Query(
        None, description="Intervals that start at or before (time or position)."
    ),
    min_position: int | None = Depends(wanted_position),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    """Each unbroken interval in which a key could use a resource, with the
    reasons that held when it started: for one key, or for every key that
    ever could use one resource (kind and name)."""
    kinds = (check_kind(kind),) if kind is not None else KINDS
    if name is not None:
        check_name(name)
        if kind is None:
            raise InvalidRequest("name needs kind")
    if key_id is None and name is None:
        raise InvalidRequest("give key_id, or kind and name")
    position = ledger.current()
    ends_after = export_bound(ledger.engine, from_, position, default=0)
    starts_by = export_bound(ledger.engine, to, position, default=position)
    if ends_after > starts_by:
        raise InvalidRequest("from is after to")

    with ledger.engine.connect() as connection:
        history = GrantHistory(connection)
        key_ids = (
            [key_id]
            if key_id is not None
            else history.keys_that_could_use(kinds[0], name)
        )
        if name is not None:
            history.read_ahead(key_ids, kinds, name)
        items = [
            item
            for each in key_ids
            for item in history.intervals(each, kinds, name, position, time.time())
        ]
    if key_id is not None and not items and ledger.index.key(key_id) is None:
        raise NotFound(f"no key with id {key_id!r}")
    items = [
        i
        for i in items
        if i["granted_position"] <= starts_by
        and (i["revoked_position"] is None or i["revoked_position"] > ends_after)
    ]
    return answer({"items": items}, position)


@router.post("/replay", dependencies=READERS)
def audit_replay(
    body: ReplayRequest | None = Body(None),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    """Rebuild every read model from the log into fresh tables and compare."""
    request = body or ReplayRequest()
    position = ledger.current()
    until = until_position(
        ledger.engine, request.until_position, request.until_time, position
    )
    report = replay(ledger.audit, ledger.engine, until)
    return answer(report.public(), position)


@router.get("/export", dependencies=READERS)
def audit_export(
    format: str = Query("jsonl", description="jsonl or csv"),
    from_: str | None = Query(None, alias="from", description="A time or a position."),
    to: str | None = Query(None, description="A time or a position."),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    """Every event in the range, streamed, one row per event."""
    if format not in ("jsonl", "csv"):
        raise InvalidRequest("format must be jsonl or csv")
    head = ledger.current()
    after = export_bound(ledger.engine, from_, head, default=0)
    until = export_bound(ledger.engine, to, head, default=head)
    if after > until:
        raise InvalidRequest("from is after to")
    records = ledger.audit.stream(after, until)
    if format == "csv":
        return StreamingResponse(
            as_csv(records), media_type="text/csv", headers=attachment("csv")
        )
    return StreamingResponse(
        as_jsonl(records), media_type="application/x-ndjson", headers=attachment("jsonl")
    )


def attachment(extension: str) -> dict[str, str]:
    return {
        "Content-Disposition": f'attachment; filename="accessledger-audit.{extension}"'
    }


def parse_holder(holder: str | None) -> UUID | None:
    if holder is None:
        return None
    try:
        return UUID(holder)
    except ValueError:
        raise InvalidRequest("holder must be an id") from None


def parse_actor(actor: str | None) -> str | None:
    """An actor to filter by: a bad one is a bad query, whatever the rule."""
    if actor is None:
        return None
    try:
        return check_name(actor, "actor")
    except LedgerError as error:
        raise InvalidRequest(error.message) from None
