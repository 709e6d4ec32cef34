"""`POST /v1/check` about now, answered in plain ASGI before the framework.

A gateway asks this on every request it serves, so its cost is the service's
cost. Through FastAPI, resolving the route's dependencies and validating the
body take about five times as long as the check itself. This layer answers
the common question directly: a JSON object with `key_id` or `key`, `kind`
and `name`, no query string, a valid token. It gives the route's answer, its
headers, its metrics and its log line, and it reads the store's head before
answering, as the route does, so revocation stays instant.

Anything else goes on to the full application untouched, which answers it
as it always has: a question about the past, `min_position`, a body that is
not the common shape or is invalid, a missing or refused token, a client the
sign-in guard is slowing down, a store that cannot be reached. Refusals and
errors are therefore worded and counted in one place only.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from api.auth import bearer_token
from api.headers import ALWAYS, NOTHING_POLICY
from api.http import POSITION_HEADER, replay
from api.observability import Metrics, log_request
from api.roles import GATEWAY_ROLES
from api.routes.questions import check_item, evaluate
from api.schemas import CheckRequest

# The path, which is also its route template in metrics and log lines.
ROUTE = "/v1/check"
# A check's body is a few hundred bytes; anything longer is left to the
# full application, which enforces the service's body limit.
MAX_FAST_BODY = 16 * 1024
FIELDS = frozenset(("key_id", "key", "kind", "name"))
ANSWER_HEADERS = [
    (b"content-type", b"application/json"),
    *ALWAYS,
    (b"content-security-policy", NOTHING_POLICY.encode()),
]
POSITION = POSITION_HEADER.lower().encode()


class GatewayChecks:
    """The outermost layer of the application (see the module's doc)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if not is_plain_check(scope):
            await self.app(scope, receive, send)
            return

        started = time.perf_counter()
        body, more = await read_small_body(receive)
        answered = None if more else self.answer(scope, body)
        if answered is None:
            await self.app(scope, replay(body, receive, more), send)
            return

        payload, position, actor = answered
        await send_answer(send, payload, position)
        self.record(scope, time.perf_counter() - started, actor, position)

    def answer(self, scope: dict, body: bytes) -> tuple[bytes, int, str] | None:
        """The answer's body, its position and the caller's name; None when
        the full application should answer instead."""
        state = scope["app"].state
        item = parse_check(body)
        if item is None or not client_is_clear(scope, state):
            return None

        ledger = state.ledger
        try:
            check_item(item)
            position = ledger.current()
            # The index has just caught up, so revoked tokens are already gone.
            caller = state.tokens.caller_in(token_of(scope), ledger.index)
            if caller.role not in GATEWAY_ROLES:
                return None
            with ledger.index.lock:
                result = evaluate(
                    ledger.index, item, time.time(), position, state.metrics
                )
        except Exception:  # noqa: BLE001 - the full application answers, or logs the bug
            return None
        return orjson.dumps(result), position, caller.actor

    def record(self, scope: dict, seconds: float, actor: str, position: int) -> None:
        metrics: Metrics = scope["app"].state.metrics
        metrics.count_request("POST", ROUTE, 200, seconds)
        log_request("POST", ROUTE, 200, seconds, actor, position)


def is_plain_check(scope: dict) -> bool:
    return (
        scope["type"] == "http"
        and scope["path"] == ROUTE
        and scope["method"] == "POST"
        and not scope.get("query_string")
        and "app" in scope
        and declared_length_is_small(scope)
    )


def declared_length_is_small(scope: dict) -> bool:
    """A body announced as longer than a check's is the application's to
    refuse before it is sent (and before `100 Continue` invites it)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            return value.isdigit() and int(value) <= MAX_FAST_BODY
    return True


async def read_small_body(receive: Any) -> tuple[bytes, bool]:
    """The body read so far, and whether more is to come: reading stops
    once the body is longer than a check's, or the client has gone (the
    next receive tells the application so)."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), True
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        more = message.get("more_body", False)
        if size > MAX_FAST_BODY or not more:
            return b"".join(chunks), more


def parse_check(body: bytes) -> CheckRequest | None:
    """The check in the common shape, unvalidated beyond types; None for
    anything else (the route's validation words the errors)."""
    try:
        fields = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if type(fields) is not dict or not fields.keys() <= FIELDS:
        return None
    if not all(type(value) is str for value in fields.values()):
        return None
    if "kind" not in fields or "name" not in fields:
        return None
    return CheckRequest.model_construct(**fields)


def client_is_clear(scope: dict, state: Any) -> bool:
    """No recent refused sign-ins from this client: a client being slowed
    down goes the full way, where the guard makes it wait."""
    client = scope.get("client")
    return state.sign_ins.recent(client[0] if client else "unknown") == 0


def token_of(scope: dict) -> str:
    """The bearer token of the first Authorization header, as the
    framework would read it."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            return bearer_token(value.decode("latin-1"))
    return bearer_token(None)


async def send_answer(send: Any, payload: bytes, position: int) -> None:
    headers = [
        (POSITION, str(position).encode()),
        (b"content-length", str(len(payload)).encode()),
        *ANSWER_HEADERS,
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
