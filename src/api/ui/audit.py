"""The audit page: the event stream, by holder and actor, from a position or
a time."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from api.ledger import Ledger
from api.routes.audit import parse_actor
from api.ui.keys import summary_of, utc_time
from api.ui.sessions import Session
from api.ui.web import PageRoute, get_ledger, render, signed_in
from domain.errors import InvalidRequest
from domain.rules import parse_time
from projections.past import position_at_time

router = APIRouter(prefix="/ui", route_class=PageRoute, include_in_schema=False)

PAGE = 100
MAX_POSITION = 2**63 - 1


@router.get("/audit")
def audit_page(
    request: Request,
    holder: str = Query(""),
    actor: str = Query(""),
    after: int = Query(0, ge=0, le=MAX_POSITION),
    since: str = Query(""),
    session: Session = Depends(signed_in),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    """Events oldest first, each with its holder, time, actor, reason and data."""
    head = ledger.current()
    holder_id = holder_uuid(holder)
    start = after
    if since and not after:
        moment = parse_time(utc_time(since), "since").timestamp()
        with ledger.engine.connect() as connection:
            start = position_at_time(connection, moment)
    wanted_actor = parse_actor(actor) if actor else None
    items, next_after = ledger.audit.page(start, PAGE, holder_id, head, wanted_actor)
    with ledger.index.lock:
        names = {i["holder"]: holder_name(ledger, i["holder"]) for i in items}
    context = {
        "items": items,
        "names": names,
        "summaries": {i["position"]: summary_of(i) for i in items},
        "holder": holder,
        "since": since,
        "actor": actor,
        "next_after": next_after,
        "head": head,
    }
    return render(request, "audit.html", context, session)


def holder_uuid(holder: str) -> UUID | None:
    if not holder.strip():
        return None
    try:
        return UUID(holder.strip())
    except ValueError:
        message = "holder must be the id of a group, team, key or resource"
        raise InvalidRequest(message) from None


def holder_name(ledger: Ledger, holder_id: str) -> tuple[str, str]:
    """A link target and a name for the holder of an event, if the index knows it."""
    entry = ledger.index.holders.get(holder_id)
    if entry is not None:
        section = {"group": "groups", "team": "teams", "key": "keys"}[entry.type]
        return (f"/ui/{section}/{holder_id}" if not entry.deleted else "", entry.name)
    resource = ledger.index.resources_by_id.get(holder_id)
    if resource is not None:
        return "", f"{resource.kind} {resource.name}"
    return "", ""
