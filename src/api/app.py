"""The FastAPI application: routes, and errors in the contract's one shape."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import unquote_to_bytes

import sqlalchemy.exc
from eventsourcing import persistence
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from api.auth import AdminTokens, SignInGuard
from api.gateway_checks import GatewayChecks
from api.headers import SecurityHeaders, add_docs_page
from api.http import JSONAnswer, replay
from api.ledger import Ledger
from api.observability import add_metrics
from api.openapi_doc import use_documented_errors
from api.routes import admin_tokens, audit, catalog, groups, keys, questions, teams
from api.ui import install_ui
from domain.errors import LedgerError

log = logging.getLogger("accessledger")

# Room for a catalog sync of several thousand names.
MAX_BODY_BYTES = 4 * 1024 * 1024
TOO_LARGE = f"the body is larger than {MAX_BODY_BYTES:,} bytes"

STATUS_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    503: "not_ready",
}


# What a store that is down or out of connections raises, through either layer.
STORE_UNREACHABLE = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
    persistence.OperationalError,
    persistence.InterfaceError,
)


def create_app(ledger: Ledger, tokens: AdminTokens) -> FastAPI:
    app = FastAPI(
        title="accessledger",
        summary="The access-control ledger for LLM gateways.",
        version="0.1.0",
        # No redirect to a trailing-slash twin: it would build its Location
        # from the caller's Host header. An unknown path is a plain 404.
        redirect_slashes=False,
        # Served by api.headers, with a nonce for its inline script.
        docs_url=None,
        redoc_url=None,
    )
    app.state.ledger = ledger
    app.state.tokens = tokens
    app.state.sign_ins = SignInGuard()

    # The specific paths must come before catalog's `{name:path}` routes.
    app.include_router(questions.router)
    for module in (catalog, groups, teams, keys, audit, admin_tokens):
        app.include_router(module.router)

    add_error_handlers(app)
    add_health_routes(app)
    add_docs_page(app)
    install_ui(app)
    use_documented_errors(app)
    app.add_middleware(RequestHygiene)
    add_metrics(app, ledger)
    # Outermost, so that even the hygiene refusals carry the headers.
    app.add_middleware(SecurityHeaders)
    # Before all of them: it answers a gateway's plain check by itself, with
    # the same headers, metrics and log line, and passes on everything else.
    app.add_middleware(GatewayChecks)
    return app


class RequestHygiene:
    """Checks every request before routing, in plain ASGI.

    - A path or query whose percent-escapes are not UTF-8 is refused: the
      framework would silently turn the bytes into U+FFFD and carry on.
    - A body over MAX_BODY_BYTES is refused with 413 as soon as it is known.
    - Every /v1 body is read as JSON whatever its Content-Type says: the API
      speaks only JSON, and `curl -d` sends form encoding by default.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        refusal = self.refusal(scope)
        if refusal is not None:
            await refusal(scope, receive, send)
            return

        body = await read_body(receive)
        if body is TOO_BIG:
            await error(413, "too_large", TOO_LARGE)(scope, receive, send)
            return
        if body is CUT_OFF or not complete(scope, body):
            return  # the client went away mid-body: there is no one to answer

        if scope["path"].startswith("/v1/"):
            headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
            headers.append((b"content-type", b"application/json"))
            # In place: the request recorder around this reads the route
            # that routing writes into this same scope.
            scope["headers"] = headers
        await self.app(scope, replay(body, receive), send)

    def refusal(self, scope: dict) -> JSONAnswer | None:
        raw_path = scope.get("raw_path") or scope["path"].encode(
            "utf-8", "surrogateescape"
        )
        for part in (raw_path, scope.get("query_string", b"")):
            try:
                unquote_to_bytes(part).decode("utf-8")
            except UnicodeDecodeError:
                return error(400, "invalid_request", "the URL is not valid UTF-8")
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            return error(413, "too_large", TOO_LARGE)
        return None


def complete(scope: dict, body: bytes) -> bool:
    """A body shorter than its Content-Length was cut off: nothing is done."""
    declared = dict(scope["headers"]).get(b"content-length")
    return declared is None or not declared.isdigit() or int(declared) == len(body)


# What read_body answers instead of a body.
TOO_BIG, CUT_OFF = object(), object()


async def read_body(receive: Any) -> Any:
    """The whole body; TOO_BIG once it passes the limit (a streamed body
    announces no length, so it is counted as it arrives); CUT_OFF when the
    client disconnects before the end."""
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            return CUT_OFF
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return TOO_BIG
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


def error(status: int, code: str, message: str) -> JSONAnswer:
    return JSONAnswer({"error": {"code": code, "message": message}}, status_code=status)


def add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(LedgerError)
    async def ledger_error(_: Request, exc: LedgerError) -> Response:
        return error(exc.status, exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> Response:
        return error(400, "invalid_request", describe_validation(exc.errors()))

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> Response:
        code = STATUS_CODES.get(exc.status_code, "invalid_request")
        return error(exc.status_code, code, str(exc.detail))

    async def store_unreachable(_: Request, exc: Exception) -> Response:
        log.warning("store error: %s", type(exc).__name__)
        return error(503, "not_ready", "the store cannot be reached")

    for unreachable in STORE_UNREACHABLE:
        app.add_exception_handler(unreachable, store_unreachable)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> Response:
        # A bug, not the caller's fault: say so in the contract's shape, log
        # the kind of failure (never the request, which may carry a secret).
        log.error("unexpected %s", type(exc).__name__, exc_info=exc)
        return error(500, "internal", "the service failed to answer; this is logged")


def describe_validation(errors: Any) -> str:
    """Where the request is wrong and how, never echoing the value: a value
    could be a key secret."""
    parts = []
    for item in list(errors)[:3]:
        where = ".".join(str(p) for p in item.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {item.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def add_health_routes(app: FastAPI) -> None:
    @app.get("/healthz", tags=["operations"])
    async def healthz() -> Response:
        """The process is up."""
        return JSONAnswer({"status": "ok"})

    @app.get("/readyz", tags=["operations"])
    def readyz(request: Request) -> Response:
        """The store answers and the read model has caught up with it."""
        position = request.app.state.ledger.current()
        return JSONAnswer({"status": "ready", "position": position})
