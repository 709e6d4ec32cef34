"""Key pages: create with optional settings (the secret shown once), the list,
and the detail with effective access, its reasons, the past and the timeline."""

from __future__ import annotations

import time
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from starlette.datastructures import FormData

from api.ledger import Ledger, live_holder
from api.presenters import key_status
from api.routes.questions import moment_asked
from api.ui import views
from api.ui.sessions import Session
from api.ui.web import (
    PageRoute,
    change_of,
    checked_form,
    get_ledger,
    grant_map_of,
    render,
    see_other,
    selector_lines,
    signed_in,
    text_field,
    text_list,
)
from domain.aggregates import Change
from domain.errors import LedgerError, NotFound
from domain.resources import KINDS
from projections.access_index import AccessIndex, HolderEntry
from projections.past import PastIndex

router = APIRouter(prefix="/ui", route_class=PageRoute, include_in_schema=False)

PAGE = 50
TIMELINE_LIMIT = 200


@router.get("/keys")
def key_list(
    request: Request,
    q: str = Query(""),
    after: int = Query(0, ge=0),
    session: Session = Depends(signed_in),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    """Keys by alias, with their team and state."""
    needle = q.strip().casefold()

    def keep(key) -> bool:  # type: ignore[no-untyped-def]
        return not key.deleted and needle in key.name.casefold()

    ledger.current()
    moment = time.time()
    with ledger.index.lock:
        items, next_seq = ledger.index.listing("key", after, keep, PAGE)
        rows = [key_row(ledger.index, k, moment) for k in items]
    context = {"rows": rows, "q": q, "next_after": next_seq}
    return render(request, "keys.html", context, session)


@router.get("/keys/new")
def new_key(
    request: Request,
    team: str = Query(""),
    session: Session = Depends(signed_in),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    """The key form; optional settings stay folded until wanted."""
    values = {"alias": "", "team_id": team, "groups": [], "expires_at": ""}
    values |= {"grants": {k: [] for k in KINDS}, "restrict": {}}
    return key_form(request, ledger, values, None, session)


@router.post("/keys")
def create_key(
    request: Request,
    form: FormData = Depends(checked_form),
    change: Change = Depends(change_of),
    session: Session = Depends(signed_in),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    """Create the key and show its secret, this once."""
    values = key_values(form)
    try:
        (key_id, secret), _ = ledger.create_key(
            values["alias"],
            change,
            team_id=values["team_id"] or None,
            access_groups=values["groups"],
            grants=values["grants"],
            restrict=values["restrict"] or None,
            expires_at=expiry_of(values["expires_at"]),
        )
    except LedgerError as error:
        return key_form(request, ledger, values, error, session)
    with ledger.index.lock:
        key = ledger.index.holders[key_id]
    context = {"key": key, "secret": secret, "rotated": False}
    return render(request, "key_secret.html", context, session, 201)


@router.get("/keys/{key_id}")
def key_detail(
    request: Request,
    key_id: str,
    at: str = Query(""),
    session: Session = Depends(signed_in),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    """What the key can use now, or at a past moment, and why; its timeline."""
    head = ledger.current()
    moment = time.time()
    with ledger.index.lock:
        key = live_holder(ledger.index, "key", key_id)
        context: dict[str, Any] = {
            "key": key,
            "row": key_row(ledger.index, key, moment),
            "groups": [ledger.index.holders[g] for g in sorted(key.groups)],
            "all_groups": views.live(ledger.index, "group"),
            "at": at,
        }
        if not at:
            context["access"] = access_of(ledger.index, key, moment)
            context["as_of"] = head
    if at:
        context["access"], context["as_of"] = past_access(ledger, key_id, at, head)
    context["timeline"] = timeline_of(ledger, key, head)
    return render(request, "key_detail.html", context, session)


@router.post("/keys/{key_id}/{action}")
def key_action(
    request: Request,
    key_id: str,
    action: str,
    form: FormData = Depends(checked_form),
    change: Change = Depends(change_of),
    session: Session = Depends(signed_in),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    """Block, unblock, rotate, delete, attach or detach a group."""
    if action == "rotate":
        secret, _ = ledger.rotate_key(key_id, change)
        with ledger.index.lock:
            key = ledger.index.holders[key_id]
        context = {"key": key, "secret": secret, "rotated": True}
        return render(request, "key_secret.html", context, session)
    if action == "delete":
        ledger.delete_key(key_id, change)
        return see_other("/ui/keys")
    if action in ("block", "unblock"):
        ledger.set_blocked("key", key_id, action == "block", change)
    elif action in ("attach", "detach"):
        group_id = text_field(form, "group_id")
        ledger.set_attachment("key", key_id, group_id, action == "attach", change)
    else:
        raise NotFound(f"no key action {action!r}")
    return see_other(f"/ui/keys/{key_id}")


def timeline_of(ledger: Ledger, key: HolderEntry, head: int) -> list[dict[str, Any]]:
    """The changes that shaped the key's access, newest first: its own events
    and those of its team and of the groups on it and on its team now."""
    with ledger.index.lock:
        names = holder_names(ledger.index, key)
    events = []
    for holder_id, name in names.items():
        for event in ledger.audit.events(0, TIMELINE_LIMIT, UUID(holder_id), head):
            events.append({**event, "holder_name": name, "summary": summary_of(event)})
    events.sort(key=lambda e: e["position"], reverse=True)
    return events[:TIMELINE_LIMIT]


def holder_names(index: AccessIndex, key: HolderEntry) -> dict[str, str]:
    names = {key.id: "this key"}
    team = index.holders.get(key.team_id) if key.team_id else None
    group_ids = set(key.groups)
    if team is not None:
        names[team.id] = f"team {team.name}"
        group_ids |= team.groups
    for group_id in sorted(group_ids):
        names[group_id] = f"group {index.holders[group_id].name}"
    return names


def summary_of(event: dict[str, Any]) -> str:
    """The selectors an event granted or removed, in a line."""
    grants = event["data"].get("grants")
    if not isinstance(grants, dict):
        return ""
    selectors = [s for kind in KINDS for s in grants.get(kind, ())]
    text = ", ".join(selectors[:6])
    return text + (f" and {len(selectors) - 6} more" if len(selectors) > 6 else "")


def key_row(index: AccessIndex, key: HolderEntry, moment: float) -> dict[str, Any]:
    team = index.holders.get(key.team_id) if key.team_id else None
    status = key_status(key, moment)
    if status == "active" and team is not None and team.blocked:
        status = "team blocked"
    return {"key": key, "team": team, "status": status}


def access_of(
    index: AccessIndex, key: HolderEntry, moment: float
) -> dict[str, list[dict[str, Any]]]:
    """Effective access by kind, each resource with its reasons in words."""
    access = {}
    for kind in KINDS:
        found = index.access(key, kind, moment)
        access[kind] = [
            {"name": name, "reasons": [views.reason_words(index, r) for r in found[name]]}
            for name in sorted(found)
        ]
    return access


def past_access(ledger: Ledger, key_id: str, at: str, head: int) -> tuple[Any, int]:
    """The access as it was at a time, with the names of then."""
    with ledger.engine.connect() as connection:
        boundary, moment = moment_asked(ledger, connection, utc_time(at), None, head)
        past = PastIndex(connection, boundary)
        key = past.key(key_id)
        if key is None:
            return {kind: [] for kind in KINDS}, boundary
        past.catalog(KINDS)
        return access_of(past.index, key, moment), boundary


def utc_time(text: str) -> str:
    """A browser's date-time field (no zone) read as UTC; RFC 3339 passes as is."""
    text = text.strip()
    if len(text) == 16 and text[10:11] == "T":
        return text + ":00Z"
    if len(text) == 19 and text[10:11] == "T":
        return text + "Z"
    return text


def expiry_of(text: str) -> str | None:
    return utc_time(text) if text.strip() else None


def key_values(form: FormData) -> dict[str, Any]:
    restrict = {}
    for kind in KINDS:
        if text_field(form, f"restrict_{kind}_on"):
            restrict[kind] = selector_lines(text_field(form, f"restrict_{kind}"))
    return {
        "alias": text_field(form, "alias").strip(),
        "team_id": text_field(form, "team_id"),
        "groups": text_list(form, "access_groups"),
        "grants": grant_map_of(form, "grant_"),
        "restrict": restrict,
        "expires_at": text_field(form, "expires_at"),
    }


def key_form(
    request: Request,
    ledger: Ledger,
    values: dict[str, Any],
    error: LedgerError | None,
    session: Session,
) -> Response:
    ledger.current()
    with ledger.index.lock:
        context = {
            "values": values,
            "teams": views.live(ledger.index, "team"),
            "groups": views.live(ledger.index, "group"),
            "notes": views.selector_notes(ledger.index, values["grants"]),
            "error": error.message if error else None,
            "open": bool(error) or bool(values["groups"]),
        }
    status = error.status if error else 200
    return render(request, "key_form.html", context, session, status)
