"""What every page of the web UI shares: templates, the signed-in admin, the
CSRF check, form fields, and errors shown as pages rather than JSON."""

from __future__ import annotations

import hmac
from pathlib import Path
from typing import Any, Callable

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException

from api.http import MAX_REASON_LENGTH
from api.ledger import Ledger
from api.ui.sessions import COOKIE, Session, Sessions
from domain.aggregates import Change
from domain.errors import Forbidden, InvalidRequest, LedgerError
from domain.resources import KINDS, has_forbidden_characters

HERE = Path(__file__).resolve().parent
TEMPLATES = Jinja2Templates(directory=HERE / "templates")
KIND_LABELS = {"model": "Models", "mcp_server": "MCP servers", "agent": "Agents"}
# The same inside a sentence.
KIND_WORDS = {"model": "models", "mcp_server": "MCP servers", "agent": "agents"}
TEMPLATES.env.globals["KINDS"] = KINDS
TEMPLATES.env.globals["KIND_LABELS"] = KIND_LABELS
TEMPLATES.env.globals["KIND_WORDS"] = KIND_WORDS

# Every asset is served by this process: the browser may load nothing else.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; "
        "script-src 'self'; frame-ancestors 'none'; form-action 'self'; "
        "base-uri 'none'"
    ),
    # Pages show access and, once, key secrets: no cache may keep them.
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}


class SignInNeeded(Exception):
    """The request has no live session."""


class PageRoute(APIRoute):
    """A UI route: a missing session leads to the sign-in page, and a refused
    change is shown as a page with the reason, never as a bare JSON error."""

    def get_route_handler(self) -> Callable[[Request], Any]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            try:
                response = await handler(request)
            except SignInNeeded:
                response = to_sign_in(request)
            except LedgerError as error:
                response = await error_page(request, error.status, error.message)
            except RequestValidationError as error:
                response = await error_page(request, 400, form_problem(error.errors()))
            except HTTPException as error:
                response = await error_page(request, error.status_code, str(error.detail))
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            return response

        return page_handler


def form_problem(errors: Any) -> str:
    """Which fields are wrong, never echoing a value (it could be a secret)."""
    fields = [str(e.get("loc", ("?",))[-1]) for e in list(errors)[:3]]
    return "these fields are missing or not valid: " + ", ".join(fields)


def to_sign_in(request: Request) -> Response:
    if request.headers.get("hx-request"):
        # htmx follows this header with a full page load.
        return Response(status_code=204, headers={"HX-Redirect": "/ui/sign-in"})
    return RedirectResponse("/ui/sign-in", status_code=303)


async def error_page(request: Request, status: int, message: str) -> Response:
    session = await run_in_threadpool(session_of, request)
    return render(
        request, "error.html", {"status": status, "message": message}, session, status
    )


def render(
    request: Request,
    template: str,
    context: dict[str, Any],
    session: Session | None,
    status: int = 200,
) -> Response:
    return TEMPLATES.TemplateResponse(
        request,
        template,
        {**context, "session": session, "path": request.url.path},
        status_code=status,
    )


async def get_ledger(request: Request) -> Ledger:
    return request.app.state.ledger  # type: ignore[no-any-return]


def session_of(request: Request) -> Session | None:
    sessions: Sessions = request.app.state.ui_sessions
    return sessions.find(request.cookies.get(COOKIE))


def signed_in(request: Request) -> Session:
    """The request's session; a plain `def`, run in the thread pool, because
    it reads the store."""
    session = session_of(request)
    if session is None:
        raise SignInNeeded
    return session


async def checked_form(
    request: Request, session: Session = Depends(signed_in)
) -> FormData:
    """The posted form, once its CSRF token (field or htmx header) is the session's."""
    # No form here takes a file: refusing them up front leaves none to clean up.
    form = await request.form(max_files=0)
    sent = request.headers.get("x-csrf-token") or form.get("csrf") or ""
    if not isinstance(sent, str) or not hmac.compare_digest(
        sent.encode("utf-8", "surrogatepass"), session.csrf.encode()
    ):
        raise Forbidden("this form has expired; reload the page and send it again")
    return form


async def change_of(
    form: FormData = Depends(checked_form), session: Session = Depends(signed_in)
) -> Change:
    """The change a form makes: by the session's actor, for the reason given."""
    return Change(session.actor, reason_of(form))


def reason_of(form: FormData) -> str | None:
    reason = text_field(form, "reason").strip()
    if len(reason) > MAX_REASON_LENGTH:
        raise InvalidRequest(f"the reason is longer than {MAX_REASON_LENGTH} characters")
    if has_forbidden_characters(reason):
        raise InvalidRequest("the reason contains a control character")
    return reason or None


def text_field(form: FormData, name: str) -> str:
    value = form.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidRequest(f"{name} must be text, not a file")
    return value


def text_list(form: FormData, name: str) -> list[str]:
    values = form.getlist(name)
    if not all(isinstance(v, str) for v in values):
        raise InvalidRequest(f"{name} must be text, not a file")
    return [v for v in values if v]  # type: ignore[misc]


def grant_map_of(form: FormData, prefix: str) -> dict[str, list[str]]:
    """The selectors a picker posted, one field per kind: `<prefix><kind>`."""
    return {kind: sorted(set(text_list(form, prefix + kind))) for kind in KINDS}


def selector_lines(text: str) -> list[str]:
    """Selectors typed one a line (commas work too), blanks dropped."""
    parts = text.replace(",", "\n").splitlines()
    return sorted({part.strip() for part in parts if part.strip()})


def see_other(url: str) -> Response:
    return RedirectResponse(url, status_code=303)
