"""Access group pages: the list, create and edit with the catalog picker,
the detail with who uses the group, and delete with its impact first."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from starlette.datastructures import FormData

from api.ledger import Ledger, live_holder
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
    signed_in,
    text_field,
)
from domain.aggregates import Change
from domain.errors import InvalidRequest, LedgerError
from domain.resources import KINDS, check_kind, is_pattern

router = APIRouter(prefix="/ui", route_class=PageRoute, include_in_schema=False)

PAGE = 50
# Keys listed on a delete confirmation; the rest are counted.
SHOWN_LOSSES = 200
PICKER_PREFIXES = ("", "grant_")


@router.get("/groups")
def group_list(
    request: Request,
    q: str = Query(""),
    after: int = Query(0, ge=0),
    session: Session = Depends(signed_in),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    """Groups with their resource counts and how many keys and teams use them."""
    needle = q.strip().casefold()

    def keep(group) -> bool:  # type: ignore[no-untyped-def]
        return not group.deleted and needle in group.name.casefold()

    ledger.current()
    with ledger.index.lock:
        items, next_seq = ledger.index.listing("group", after, keep, PAGE)
        rows = [views.group_row(ledger.index, g) for g in items]
    context = {"rows": rows, "q": q, "next_after": next_seq}
    # Search-as-you-type swaps the rows alone; anything else, a history
    # restore included, gets the whole page.
    rows_only = request.headers.get("hx-target") == "group-rows"
    template = "groups_rows.html" if rows_only else "groups.html"
    return render(request, template, context, session)


@router.get("/groups/new")
def new_group(
    request: Request,
    session: Session = Depends(signed_in),
) -> Response:
    """An empty group form."""
    context = {"group": None, "values": empty_values(), "notes": {}, "error": None}
    return render(request, "group_form.html", context, session)


@router.post("/groups")
def create_group(
    request: Request,
    form: FormData = Depends(checked_form),
    change: Change = Depends(change_of),
    session: Session = Depends(signed_in),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    """Create a group with the resources picked in the three tabs."""
    values = form_values(form)
    try:
        group_id, _ = ledger.create_group(
            values["name"], values["description"], values["grants"], change
        )
    except LedgerError as error:
        return form_again(request, ledger, None, values, error, session)
    return see_other(f"/ui/groups/{group_id}")


@router.get("/groups/picker")
def picker(
    request: Request,
    kind: str = Query(...),
    q: str = Query(""),
    prefix: str = Query(""),
    session: Session = Depends(signed_in),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    """Catalog names matching what was typed, or what a pattern matches now."""
    check_kind(kind)
    if prefix not in PICKER_PREFIXES:
        raise InvalidRequest("unknown picker")
    query = q.strip()
    ledger.current()
    with ledger.index.lock:
        if is_pattern(query):
            count, names = views.pattern_matches(ledger.index, kind, query)
        else:
            names = views.catalog_search(ledger.index, kind, query) if query else []
            count = len(names)
    context = {
        "kind": kind,
        "field": prefix + kind,
        "query": query,
        "pattern": is_pattern(query),
        "names": names,
        "count": count,
        "limit": views.PICKER_LIMIT,
    }
    return render(request, "picker_results.html", context, session)


@router.get("/groups/{group_id}")
def group_detail(
    request: Request,
    group_id: str,
    session: Session = Depends(signed_in),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    """A group's resources, the keys and teams using it, and their team's keys."""
    ledger.current()
    with ledger.index.lock:
        group = live_holder(ledger.index, "group", group_id)
        grants = group.grants.as_map()
        keys, teams, via_teams = ledger.index.usage(group)
        context = {
            "group": group,
            "grants": grants,
            "notes": views.selector_notes(ledger.index, grants),
            "keys": keys,
            "teams": teams,
            "via_teams": via_teams[:SHOWN_LOSSES],
            "via_teams_count": len(via_teams),
            "team_names": {t.id: t.name for t in teams},
        }
    return render(request, "group_detail.html", context, session)


@router.get("/groups/{group_id}/edit")
def edit_group(
    request: Request,
    group_id: str,
    session: Session = Depends(signed_in),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    """The group form, filled in."""
    ledger.current()
    with ledger.index.lock:
        group = live_holder(ledger.index, "group", group_id)
        values = {
            "name": group.name,
            "description": group.description,
            "grants": group.grants.as_map(),
            "version": group.version,
        }
        notes = views.selector_notes(ledger.index, values["grants"])
    context = {"group": group, "values": values, "notes": notes, "error": None}
    return render(request, "group_form.html", context, session)


@router.post("/groups/{group_id}/edit")
def update_group(
    request: Request,
    group_id: str,
    form: FormData = Depends(checked_form),
    change: Change = Depends(change_of),
    session: Session = Depends(signed_in),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    """Save the differences: the version sent guards against a lost update."""
    values = form_values(form)
    ledger.current()
    with ledger.index.lock:
        group = live_holder(ledger.index, "group", group_id)
        before = group.grants.as_map()
        name, description = group.name, group.description
    added = {k: sorted(set(values["grants"][k]) - set(before[k])) for k in KINDS}
    removed = {k: sorted(set(before[k]) - set(values["grants"][k])) for k in KINDS}
    try:
        ledger.update_group(
            group_id,
            change,
            name=values["name"] if values["name"] != name else None,
            description=(
                values["description"] if values["description"] != description else None
            ),
            add=added,
            remove=removed,
            if_match=version_of(form),
        )
    except LedgerError as error:
        return form_again(request, ledger, group, values, error, session)
    return see_other(f"/ui/groups/{group_id}")


@router.get("/groups/{group_id}/delete")
def confirm_delete(
    request: Request,
    group_id: str,
    session: Session = Depends(signed_in),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    """What deleting the group would revoke, key by key, before it is done."""
    ledger.current()
    with ledger.index.lock:
        group = live_holder(ledger.index, "group", group_id)
        losses = views.losses_without(ledger.index, group, time.time())
        _, teams, _ = ledger.index.usage(group)
    losing = [loss for loss in losses if loss.total]
    context = {
        "group": group,
        "losing": losing[:SHOWN_LOSSES],
        "losing_count": len(losing),
        "keys_count": len(losses),
        "teams": teams,
    }
    return render(request, "group_delete.html", context, session)


@router.post("/groups/{group_id}/delete")
def delete_group(
    group_id: str,
    form: FormData = Depends(checked_form),
    change: Change = Depends(change_of),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    """Delete the group at the version whose impact was shown."""
    ledger.delete_group(group_id, change, if_match=version_of(form))
    return see_other("/ui/groups")


def empty_values() -> dict:
    return {"name": "", "description": "", "grants": {k: [] for k in KINDS}}


def form_values(form: FormData) -> dict:
    return {
        "name": text_field(form, "name").strip(),
        "description": text_field(form, "description"),
        "grants": grant_map_of(form, ""),
        "version": version_of(form),
    }


def version_of(form: FormData) -> int | None:
    text = text_field(form, "version")
    if not text:
        return None
    if not text.isdigit() or not text.isascii() or len(text) > 18:
        raise InvalidRequest("version must be a whole number")
    return int(text)


def form_again(
    request: Request,
    ledger: Ledger,
    group: object,
    values: dict,
    error: LedgerError,
    session: Session,
) -> Response:
    """The same form with what was typed, and why it was refused."""
    with ledger.index.lock:
        notes = views.selector_notes(ledger.index, values["grants"])
    context = {"group": group, "values": values, "notes": notes, "error": error.message}
    return render(request, "group_form.html", context, session, error.status)
