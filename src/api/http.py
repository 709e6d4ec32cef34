"""What every route shares: the ledger, the caller, headers, paging, answers.

The dependencies are `async` although they never wait: FastAPI runs a plain
`def` dependency in the thread pool, a thread hop per dependency per request.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import Depends, Header, Query, Request
from fastapi.responses import Response

from api.auth import Caller, bearer_token
from api.ledger import Ledger
from domain.aggregates import Change
from domain.errors import InvalidRequest, NotReady, Unauthorized
from domain.resources import has_forbidden_characters

MAX_REASON_LENGTH = 1000
MIN_POSITION_WAIT_SECONDS = 5.0
MAX_PAGE = 1000
POSITION_HEADER = "X-Ledger-Position"


class JSONAnswer(Response):
    """JSON through orjson: several times faster than the standard encoder."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


async def get_ledger(request: Request) -> Ledger:
    return request.app.state.ledger  # type: ignore[no-any-return]


async def caller(
    request: Request, authorization: str | None = Header(None, include_in_schema=False)
) -> Caller:
    """The signed-in admin; a refusal is logged and counted against the client."""
    state = request.app.state
    client = request.client.host if request.client else "unknown"
    await state.sign_ins.wait(client)
    try:
        token = bearer_token(authorization)
        found: Caller = state.tokens.caller_for(token, state.ledger)
    except Unauthorized as refusal:
        state.sign_ins.refused(client, refusal.message)
        raise
    request.state.caller = found
    request.state.actor = found.actor  # for the request's log line
    return found


async def admin_actor(signed_in: Caller = Depends(caller)) -> str:
    return signed_in.actor


async def change_by(
    actor: str = Depends(admin_actor),
    x_change_reason: str | None = Header(None, description="Why; kept with the events."),
) -> Change:
    if x_change_reason is not None:
        x_change_reason = header_text(x_change_reason, "X-Change-Reason")
        if len(x_change_reason) > MAX_REASON_LENGTH:
            raise InvalidRequest(
                f"X-Change-Reason is longer than {MAX_REASON_LENGTH} characters"
            )
        if has_forbidden_characters(x_change_reason):
            raise InvalidRequest("X-Change-Reason contains a control character")
    return Change(actor, x_change_reason or None)


def header_text(value: str, name: str) -> str:
    """Header values reach us decoded as Latin-1; senders write UTF-8."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        raise InvalidRequest(f"{name} is not UTF-8 text") from None


async def expected_version(
    if_match: str | None = Header(None, description='The holder version: 3 or "3".'),
) -> int | None:
    if if_match is None:
        return None
    text = if_match.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    if not text.isdigit() or not text.isascii():
        raise InvalidRequest('If-Match must be a holder version such as 3 or "3"')
    return int(text)


async def wanted_position(
    request: Request,
    min_position: int | None = Query(None, ge=0, description="Wait for this position."),
) -> int | None:
    """Wait, at most 5 s and without holding a thread, until the read models
    have reached `min_position`."""
    if min_position is None:
        return None
    ledger = request.app.state.ledger
    deadline = time.monotonic() + MIN_POSITION_WAIT_SECONDS
    while ledger.catch_up() < min_position:
        if time.monotonic() >= deadline:
            raise NotReady(f"the ledger has not reached position {min_position}")
        await asyncio.sleep(0.01)
    return min_position


@dataclass(frozen=True)
class Page:
    limit: int
    after: int


async def page_of(
    limit: int = Query(100, description="At most 1,000."),
    cursor: str | None = Query(None, description="next_cursor of the page before."),
) -> Page:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidRequest(f"limit must be between 1 and {MAX_PAGE}")
    if cursor is None:
        return Page(limit, 0)
    if not cursor.isdigit() or not cursor.isascii() or len(cursor) > 18:
        raise InvalidRequest("cursor is not one this service gave out")
    return Page(limit, int(cursor))


def cursor_of(next_seq: int | None) -> str | None:
    return None if next_seq is None else str(next_seq)


def answer(body: Any, position: int, status: int = 200) -> JSONAnswer:
    return JSONAnswer(body, status_code=status, headers={POSITION_HEADER: str(position)})


def holder_answer(body: dict[str, Any], position: int) -> JSONAnswer:
    """One holder, with its version as the ETag that `If-Match` takes back."""
    response = answer(body, position)
    response.headers["ETag"] = f'"{body["version"]}"'
    return response


def written(body: dict[str, Any], position: int, status: int = 200) -> JSONAnswer:
    """A write's answer: the body carries the position too."""
    return answer({**body, "position": position}, position, status)


def no_content(position: int) -> Response:
    return Response(status_code=204, headers={POSITION_HEADER: str(position)})


def now() -> float:
    return time.time()


def replay(body: bytes, receive: Any, more: bool = False) -> Any:
    """An ASGI receive channel that hands an application the body a layer
    in front of it has already read (all of it, unless `more`), then
    whatever is still to come."""
    given = False

    async def receive_again() -> dict:
        nonlocal given
        if given:
            return await receive()  # type: ignore[no-any-return]
        given = True
        return {"type": "http.request", "body": body, "more_body": more}

    return receive_again
