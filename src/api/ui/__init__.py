"""The admin web UI at /ui, from packaged assets only."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from api.ui import audit, catalog, groups, keys, signin, teams
from api.ui.sessions import Sessions, ui_tables
from api.ui.web import HERE


def install_ui(app: FastAPI) -> None:
    """Mount the pages and their assets on the app."""
    ledger = app.state.ledger
    with ledger.schema_lock():
        ui_tables.create_all(ledger.engine)
    app.state.ui_sessions = Sessions(ledger.engine)
    for module in (signin, groups, keys, teams, catalog, audit):
        app.include_router(module.router)
    app.mount("/ui/static", StaticFiles(directory=HERE / "static"), name="ui-static")
