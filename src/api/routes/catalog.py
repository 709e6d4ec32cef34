"""The catalog: resources that grants can name, registered and retired."""

from __future__ import annotations

from fastapi import APIRouter, Body, Depends, Query
from fastapi.responses import Response

from api.http import (
    Page,
    answer,
    change_by,
    cursor_of,
    get_ledger,
    page_of,
    wanted_position,
    written,
)
from api.idempotency import idempotent
from api.ledger import Ledger
from api.presenters import resource_public
from api.roles import ADMINS, READERS
from api.schemas import CatalogSync, ResourcePut
from domain.aggregates import Change
from domain.errors import InvalidRequest, NotFound
from domain.resources import check_kind

router = APIRouter(prefix="/v1/catalog", tags=["catalog"])

STATUSES = ("active", "retired")


@router.get("", dependencies=READERS)
def list_resources(
    kind: str | None = Query(None),
    status: str | None = Query(None, description="active or retired"),
    q: str | None = Query(None, description="Part of the name, any case."),
    page: Page = Depends(page_of),
    min_position: int | None = Depends(wanted_position),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    """Catalog resources in the order they were first registered."""
    if kind is not None:
        check_kind(kind)
    if status is not None and status not in STATUSES:
        raise InvalidRequest("status must be active or retired")
    needle = q.casefold() if q else None

    def keep(entry) -> bool:  # type: ignore[no-untyped-def]
        return (
            (kind is None or entry.kind == kind)
            and (status is None or entry.active == (status == "active"))
            and (needle is None or needle in entry.name.casefold())
        )

    position = ledger.current()
    with ledger.index.lock:
        items, next_seq = ledger.index.listing("resource", page.after, keep, page.limit)
        body = {
            "items": [resource_public(e) for e in items],
            "next_cursor": cursor_of(next_seq),
        }
    return answer(body, position)


@router.post("/sync", dependencies=ADMINS)
@idempotent
def sync_catalog(
    body: CatalogSync,
    change: Change = Depends(change_by),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    """Make the active resources of one kind exactly the names a gateway has."""
    counts, position = ledger.sync_catalog(
        body.kind, body.names, body.retire_missing, change
    )
    return written(counts, position)


@router.get("/{kind}/{name:path}", dependencies=READERS)
def get_resource(
    kind: str,
    name: str,
    min_position: int | None = Depends(wanted_position),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    check_kind(kind)
    position = ledger.current()
    return answer(resource_public(known_resource(ledger, kind, name)), position)


@router.put("/{kind}/{name:path}", status_code=201, dependencies=ADMINS)
@idempotent
def register_resource(
    kind: str,
    name: str,
    body: ResourcePut | None = Body(None),
    change: Change = Depends(change_by),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    """Register a resource, or bring a retired one back: 201 when it is new."""
    description = body.description if body is not None else None
    created, position = ledger.register_resource(kind, name, description, change)
    entry = known_resource(ledger, kind, name)
    return written(resource_public(entry), position, 201 if created else 200)


@router.delete("/{kind}/{name:path}", dependencies=ADMINS)
@idempotent
def retire_resource(
    kind: str,
    name: str,
    change: Change = Depends(change_by),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    """Retire a resource: every grant naming it stays, but grants nothing."""
    position = ledger.retire_resource(kind, name, change)
    return written(resource_public(known_resource(ledger, kind, name)), position)


def known_resource(ledger: Ledger, kind: str, name: str):  # type: ignore[no-untyped-def]
    entry = ledger.index.resources[kind].get(name)
    if entry is None:
        raise NotFound(f"no {kind} named {name!r} in the catalog")
    return entry
