"""The FastAPI application: routes, and errors in the contract's one shape."""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from api.auth import AdminTokens
from api.http import JSONAnswer
from api.ledger import Ledger
from api.routes import catalog, groups, keys, questions, teams
from domain.errors import LedgerError

log = logging.getLogger("accessledger")

STATUS_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    503: "not_ready",
}


def create_app(ledger: Ledger, tokens: AdminTokens) -> FastAPI:
    app = FastAPI(
        title="accessledger",
        summary="The access-control ledger for LLM gateways.",
        version="0.1.0",
    )
    app.state.ledger = ledger
    app.state.tokens = tokens

    # The specific paths must come before catalog's `{name:path}` routes.
    app.include_router(questions.router)
    for module in (catalog, groups, teams, keys):
        app.include_router(module.router)

    add_error_handlers(app)
    add_health_routes(app)
    app.add_middleware(JSONBodies)
    return app


class JSONBodies:
    """Reads every /v1 request body as JSON, whatever its Content-Type says.

    The API speaks only JSON, and `curl -d` sends form encoding by default;
    refusing that would only make every first try fail.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1/"):
            headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
            headers.append((b"content-type", b"application/json"))
            scope = {**scope, "headers": headers}
        await self.app(scope, receive, send)


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

    @app.exception_handler(sqlalchemy.exc.OperationalError)
    async def store_unreachable(_: Request, exc: Exception) -> Response:
        log.warning("store error: %s", type(exc).__name__)
        return error(503, "not_ready", "the store cannot be reached")


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
