"""Catalog pages: browse and search resources, register and retire them."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from starlette.datastructures import FormData

from api.ledger import Ledger
from api.ui.sessions import Session
from api.ui.web import (
    PageRoute,
    change_of,
    checked_form,
    get_ledger,
    render,
    see_other,
    signed_in,
    text_field,
)
from domain.aggregates import Change
from domain.errors import InvalidRequest, LedgerError
from domain.resources import KINDS, check_kind

router = APIRouter(prefix="/ui", route_class=PageRoute, include_in_schema=False)

PAGE = 100
STATUSES = ("", "active", "retired")


@router.get("/catalog")
def catalog_list(
    request: Request,
    kind: str = Query("model"),
    q: str = Query(""),
    status: str = Query(""),
    after: int = Query(0, ge=0),
    session: Session = Depends(signed_in),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    """One kind's resources, a page at a time, searched by name."""
    return catalog_page(request, ledger, session, kind, q, status, after, None)


@router.post("/catalog")
def register(
    request: Request,
    form: FormData = Depends(checked_form),
    change: Change = Depends(change_of),
    session: Session = Depends(signed_in),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    """Register a resource, or bring a retired one back."""
    kind, name = text_field(form, "kind"), text_field(form, "name").strip()
    description = text_field(form, "description") or None
    try:
        ledger.register_resource(kind, name, description, change)
    except LedgerError as error:
        return catalog_page(request, ledger, session, kind, "", "", 0, error)
    return see_other(f"/ui/catalog?kind={quote(kind)}&q={quote(name)}")


@router.post("/catalog/retire")
def retire(
    form: FormData = Depends(checked_form),
    change: Change = Depends(change_of),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    """Retire a resource: grants naming it stay, and grant nothing."""
    kind, name = text_field(form, "kind"), text_field(form, "name")
    ledger.retire_resource(kind, name, change)
    return see_other(f"/ui/catalog?kind={quote(kind)}&q={quote(name)}")


def catalog_page(
    request: Request,
    ledger: Ledger,
    session: Session,
    kind: str,
    q: str,
    status: str,
    after: int,
    error: LedgerError | None,
) -> Response:
    if error is not None and kind not in KINDS:
        kind = "model"  # the refused form named no kind: show the first
    check_kind(kind)
    if status not in STATUSES:
        raise InvalidRequest("status must be active or retired")
    needle = q.strip().casefold()

    def keep(entry) -> bool:  # type: ignore[no-untyped-def]
        return (
            entry.kind == kind
            and (not status or entry.active == (status == "active"))
            and needle in entry.name.casefold()
        )

    ledger.current()
    with ledger.index.lock:
        items, next_seq = ledger.index.listing("resource", after, keep, PAGE)
        counts = {
            k: (len(ledger.index.active_names[k]), len(ledger.index.resources[k]))
            for k in ledger.index.resources
        }
    context = {
        "items": items,
        "kind": kind,
        "q": q,
        "status": status,
        "next_after": next_seq,
        "counts": counts,
        "error": error.message if error else None,
    }
    return render(
        request, "catalog.html", context, session, error.status if error else 200
    )
