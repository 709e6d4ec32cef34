"""Team pages: create, rename, attach and detach groups, block, members."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from starlette.datastructures import FormData

from api.ledger import Ledger, live_holder
from api.ui import views
from api.ui.groups import version_of
from api.ui.keys import key_row
from api.ui.sessions import Session
from api.ui.web import (
    PageRoute,
    change_of,
    checked_form,
    get_ledger,
    grant_map_of,
    render,
    see_other,
    signed_in,
    text_field,
    text_list,
)
from domain.aggregates import Change
from domain.errors import LedgerError, NotFound
from domain.resources import KINDS

router = APIRouter(prefix="/ui", route_class=PageRoute, include_in_schema=False)

PAGE = 50
SHOWN_MEMBERS = 500


@router.get("/teams")
def team_list(
    request: Request,
    q: str = Query(""),
    after: int = Query(0, ge=0),
    session: Session = Depends(signed_in),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    """Teams with their groups and key counts, and a form for a new one."""
    return teams_page(request, ledger, session, q, after, None)


@router.post("/teams")
def create_team(
    request: Request,
    form: FormData = Depends(checked_form),
    change: Change = Depends(change_of),
    session: Session = Depends(signed_in),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    """Create a team with the groups ticked."""
    name = text_field(form, "name").strip()
    try:
        team_id, _ = ledger.create_team(
            name, text_list(form, "access_groups"), None, change
        )
    except LedgerError as error:
        return teams_page(request, ledger, session, "", 0, error)
    return see_other(f"/ui/teams/{team_id}")


@router.get("/teams/{team_id}")
def team_detail(
    request: Request,
    team_id: str,
    session: Session = Depends(signed_in),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    """A team's groups, grants and keys."""
    ledger.current()
    moment = time.time()
    with ledger.index.lock:
        team = live_holder(ledger.index, "team", team_id)
        members = sorted((ledger.index.holders[k] for k in team.members), key=seq)
        context = {
            "team": team,
            "groups": [ledger.index.holders[g] for g in sorted(team.groups)],
            "all_groups": views.live(ledger.index, "group"),
            "grants": team.grants.as_map(),
            "notes": views.selector_notes(ledger.index, team.grants.as_map()),
            "members": [key_row(ledger.index, k, moment) for k in members][
                :SHOWN_MEMBERS
            ],
            "members_count": len(members),
        }
    return render(request, "team_detail.html", context, session)


@router.post("/teams/{team_id}/{action}")
def team_action(
    team_id: str,
    action: str,
    form: FormData = Depends(checked_form),
    change: Change = Depends(change_of),
    ledger: Ledger = Depends(get_ledger),
) -> Response:
    """Rename, change grants, block, unblock, attach or detach a group, delete."""
    if action == "rename":
        ledger.update_team(team_id, change, name=text_field(form, "name").strip())
    elif action in ("block", "unblock"):
        ledger.set_blocked("team", team_id, action == "block", change)
    elif action in ("attach", "detach"):
        group_id = text_field(form, "group_id")
        ledger.set_attachment("team", team_id, group_id, action == "attach", change)
    elif action == "grants":
        change_team_grants(ledger, team_id, form, change)
    elif action == "delete":
        ledger.delete_team(team_id, change)
        return see_other("/ui/teams")
    else:
        raise NotFound(f"no team action {action!r}")
    return see_other(f"/ui/teams/{team_id}")


def change_team_grants(
    ledger: Ledger, team_id: str, form: FormData, change: Change
) -> None:
    """Save the picker's differences at the version the form was made from."""
    wanted = grant_map_of(form, "")
    with ledger.index.lock:
        before = live_holder(ledger.index, "team", team_id).grants.as_map()
    ledger.update_team(
        team_id,
        change,
        add={k: sorted(set(wanted[k]) - set(before[k])) for k in KINDS},
        remove={k: sorted(set(before[k]) - set(wanted[k])) for k in KINDS},
        if_match=version_of(form),
    )


def teams_page(
    request: Request,
    ledger: Ledger,
    session: Session,
    q: str,
    after: int,
    error: LedgerError | None,
) -> Response:
    needle = q.strip().casefold()

    def keep(team) -> bool:  # type: ignore[no-untyped-def]
        return not team.deleted and needle in team.name.casefold()

    ledger.current()
    with ledger.index.lock:
        items, next_seq = ledger.index.listing("team", after, keep, PAGE)
        rows = [
            {"team": t, "groups": [ledger.index.holders[g] for g in sorted(t.groups)]}
            for t in items
        ]
        groups = views.live(ledger.index, "group")
    context = {
        "rows": rows,
        "q": q,
        "next_after": next_seq,
        "groups": groups,
        "error": error.message if error else None,
    }
    return render(request, "teams.html", context, session, error.status if error else 200)


def seq(holder) -> int:  # type: ignore[no-untyped-def]
    return holder.seq  # type: ignore[no-any-return]
