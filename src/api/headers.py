"""Security headers on every response, and the interactive docs page.

Every answer says: do not sniff its type, never show it in a frame, send
no referrer. JSON answers get a policy that allows nothing; HTML pages a
strict one whose inline scripts and styles must carry the response's nonce.
The nonce is made per request and offered to pages as
`request.state.csp_nonce`; a page that needs more hosts for its assets
names them in `request.state.csp_asset_hosts`.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ALWAYS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]
NOTHING_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
# Swagger UI's built assets, vendored from the swagger-ui-dist package.
DOCS_ASSETS = Path(__file__).resolve().parent / "static" / "swagger-ui"


def page_policy(nonce: str, hosts: str) -> str:
    extra = f" {hosts}" if hosts else ""
    return (
        "default-src 'self'; "
        f"script-src 'self' 'nonce-{nonce}'{extra}; "
        f"style-src 'self' 'nonce-{nonce}'{extra}; "
        "img-src 'self' data:; connect-src 'self'; object-src 'none'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )


class SecurityHeaders:
    """Plain ASGI, so that it covers every response, errors and pages alike."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        state = scope.setdefault("state", {})
        state["csp_nonce"] = secrets.token_urlsafe(16)

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = with_headers(message.get("headers", []), state)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def with_headers(headers: list, state: dict) -> list:
    names = {name.lower() for name, _ in headers}
    added = [(name, value) for name, value in ALWAYS if name not in names]
    content_type = dict((k.lower(), v) for k, v in headers).get(b"content-type", b"")
    if content_type.startswith(b"text/html"):
        hosts = state.get("csp_asset_hosts", "")
        policy = page_policy(state["csp_nonce"], hosts)
    else:
        policy = NOTHING_POLICY
    if b"content-security-policy" not in names:
        added.append((b"content-security-policy", policy.encode()))
    return [*headers, *added]


def add_docs_page(app: FastAPI) -> None:
    """Swagger UI from the service itself, its one inline script carrying
    the nonce: the page loads nothing from anywhere else."""
    app.mount("/docs/assets", StaticFiles(directory=DOCS_ASSETS), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title} - API",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="data:,",
            # Swagger UI would otherwise send the document to a public validator.
            swagger_ui_parameters={"validatorUrl": None},
        )
        nonce = request.state.csp_nonce
        html = re.sub(r"<script>", f'<script nonce="{nonce}">', bytes(page.body).decode())
        return HTMLResponse(html)
