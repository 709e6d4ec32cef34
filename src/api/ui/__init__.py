"""The admin web UI at /ui, and Swagger UI at /docs, from packaged assets only."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from api.ui import audit, catalog, groups, keys, signin, teams
from api.ui.sessions import Sessions, ui_tables
from api.ui.web import HERE

VENDOR = "/ui/static/vendor"


def install_ui(app: FastAPI) -> None:
    """Mount the pages, their assets and the offline API docs on the app."""
    ledger = app.state.ledger
    with ledger.schema_lock():
        ui_tables.create_all(ledger.engine)
    app.state.ui_sessions = Sessions(ledger.engine)
    for module in (signin, groups, keys, teams, catalog, audit):
        app.include_router(module.router)
    app.mount("/ui/static", StaticFiles(directory=HERE / "static"), name="ui-static")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        """Swagger UI over /openapi.json, with every asset served from here."""
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="accessledger API",
            swagger_js_url=f"{VENDOR}/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url=f"{VENDOR}/swagger-ui/swagger-ui.css",
            swagger_favicon_url="/ui/static/favicon.svg",
            # The default validator is a public web service: ask nobody.
            swagger_ui_parameters={"validatorUrl": None},
        )
