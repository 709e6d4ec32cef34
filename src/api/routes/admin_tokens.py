"""Admin tokens: named, with one role each; answered once, stored hashed."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from api.http import (
    Page,
    answer,
    change_by,
    cursor_of,
    get_ledger,
    no_content,
    page_of,
    written,
)
from api.idempotency import idempotent
from api.ledger import Ledger
from api.roles import ADMINS
from api.schemas import AdminTokenCreate
from domain.aggregates import Change
from domain.errors import NotFound
from projections.access_index import AdminTokenEntry

router = APIRouter(prefix="/v1/admin-tokens", tags=["admin tokens"])


@router.post("", status_code=201, dependencies=ADMINS)
@idempotent
def issue_token(
    body: AdminTokenCreate,
    change: Change = Depends(change_by),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    """Issue a token; it is in this answer and nowhere else, ever."""
    (token_id, token), position = ledger.issue_admin_token(body.name, body.role, change)
    issued = token_public(ledger.index.admin_tokens[token_id])
    return written({**issued, "token": token}, position, 201)


@router.get("", dependencies=ADMINS)
def list_tokens(
    page: Page = Depends(page_of), ledger: Ledger = Depends(get_ledger)
) -> Response:
    """The tokens that are not revoked, oldest first (never the token itself)."""
    position = ledger.current()
    with ledger.index.lock:
        live = sorted(
            (e for e in ledger.index.admin_tokens.values() if not e.revoked),
            key=lambda e: e.seq,
        )
    after = [e for e in live if e.seq > page.after]
    shown = after[: page.limit]
    more = len(after) > page.limit
    body = {
        "items": [token_public(e) for e in shown],
        "next_cursor": cursor_of(shown[-1].seq) if more else None,
    }
    return answer(body, position)


@router.get("/{token_id}", dependencies=ADMINS)
def get_token(token_id: str, ledger: Ledger = Depends(get_ledger)) -> Response:
    position = ledger.current()
    entry = ledger.index.admin_tokens.get(token_id)
    if entry is None or entry.revoked:
        raise NotFound(f"no admin token with id {token_id!r}")
    return answer(token_public(entry), position)


@router.delete("/{token_id}", status_code=204, dependencies=ADMINS)
@idempotent
def revoke_token(
    token_id: str,
    change: Change = Depends(change_by),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    """Revoke a token: every replica refuses it from the next request on."""
    return no_content(ledger.revoke_admin_token(token_id, change))


def token_public(entry: AdminTokenEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "name": entry.name,
        "role": entry.role,
        "created_by": entry.created_by,
        "version": entry.version,
        "created_at": entry.created_at,
    }
