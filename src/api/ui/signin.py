"""Signing in with an admin token, and out again."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from api.ui.sessions import COOKIE, LIFETIME_SECONDS, Session
from api.ui.web import PageRoute, checked_form, render, see_other, signed_in
from domain.errors import Unauthorized

router = APIRouter(prefix="/ui", route_class=PageRoute, include_in_schema=False)


@router.get("")
async def home(session: Session = Depends(signed_in)) -> Response:
    """The UI starts at the access groups."""
    return see_other("/ui/groups")


@router.get("/sign-in")
async def sign_in_page(request: Request) -> Response:
    """The token form; the one UI page that needs no session."""
    return render(request, "sign_in.html", {"error": None}, None)


@router.post("/sign-in")
async def sign_in(request: Request, token: str = Form("")) -> Response:
    """Accept the tokens the JSON API accepts for the admin role, as the same
    actor. The pages change things, so auditor and gateway tokens stay out."""
    state = request.app.state
    try:
        caller = state.tokens.caller_for(token.strip(), state.ledger)
    except Unauthorized:
        context = {"error": "That admin token is not valid."}
        return render(request, "sign_in.html", context, None, 401)
    if caller.role != "admin":
        context = {"error": f"A token of the {caller.role} role cannot use the UI."}
        return render(request, "sign_in.html", context, None, 403)
    actor = caller.actor

    sessions = request.app.state.ui_sessions
    sessions.end(request.cookies.get(COOKIE))
    session = sessions.start(actor)
    response = see_other("/ui/groups")
    response.set_cookie(
        COOKIE,
        session.id,
        max_age=LIFETIME_SECONDS,
        path="/ui",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/sign-out", dependencies=[Depends(checked_form)])
async def sign_out(request: Request) -> Response:
    """End the session here and forget the cookie in the browser."""
    request.app.state.ui_sessions.end(request.cookies.get(COOKIE))
    response = see_other("/ui/sign-in")
    response.delete_cookie(COOKIE, path="/ui", httponly=True, samesite="strict")
    return response
