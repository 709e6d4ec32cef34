"""Fixtures: a fresh store on SQLite and on PostgreSQL, and clients over it.

The PostgreSQL store is required: when it cannot be reached the tests that
need it fail rather than skip, so a green run always covered both stores.
"""

from __future__ import annotations

import os
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
import sqlalchemy
from sqlalchemy import text

from api.app import create_app
from api.auth import admin_tokens
from api.ledger import APPLICATION_NAME, Ledger
from api.ui.sessions import ui_tables
from projections.tables import LIVE, control

# Starlette's test client still runs on httpx and says so; nothing to act on.
warnings.filterwarnings("ignore", message=".*httpx.*starlette.testclient.*")
from fastapi.testclient import TestClient  # noqa: E402

POSTGRES_URL = os.environ.get(
    "ACCESSLEDGER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
MASTER_KEY = "test-master-key"
ADMIN = {"Authorization": f"Bearer {MASTER_KEY}"}


def reset_postgres(url: str) -> None:
    """Drop the ledger's tables so that each test starts from an empty store."""
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.begin() as connection:
            for table in [
                *LIVE.metadata.sorted_tables,
                *control.sorted_tables,
                *ui_tables.sorted_tables,
            ]:
                connection.execute(text(f"DROP TABLE IF EXISTS {table.name}"))
            connection.execute(text(f"DROP TABLE IF EXISTS {APPLICATION_NAME}_events"))
    except sqlalchemy.exc.OperationalError as error:
        pytest.fail(f"PostgreSQL at {url} cannot be reached: {error}")
    finally:
        engine.dispose()


@pytest.fixture
def postgres_url() -> str:
    reset_postgres(POSTGRES_URL)
    return POSTGRES_URL


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        reset_postgres(POSTGRES_URL)
        return POSTGRES_URL
    return f"sqlite:///{tmp_path / 'ledger.db'}"


@pytest.fixture
def ledger(database_url: str) -> Iterator[Ledger]:
    service = Ledger(database_url)
    yield service
    service.close()


@pytest.fixture
def client(ledger: Ledger) -> Iterator[TestClient]:
    app = create_app(ledger, admin_tokens(MASTER_KEY))
    with TestClient(app, headers=ADMIN) as test_client:
        yield test_client


@contextmanager
def replica_clients(url: str) -> Iterator[tuple[TestClient, TestClient]]:
    """Two API processes' worth of state (engine, index, locks) on one store,
    each behind a client that sends the master key."""
    ledgers = [Ledger(url), Ledger(url)]
    try:
        one, two = (
            TestClient(create_app(ledger, admin_tokens(MASTER_KEY)), headers=ADMIN)
            for ledger in ledgers
        )
        yield one, two
    finally:
        for ledger in ledgers:
            ledger.close()


def event_count(ledger: Ledger) -> int:
    with ledger.engine.connect() as connection:
        return connection.execute(
            text(f"SELECT count(*) FROM {ledger.events_table}")
        ).scalar_one()


class LiveServer:
    """The app served by uvicorn on 127.0.0.1 and a port the OS picks, in a
    thread: for clients that must speak real HTTP to it."""

    def __init__(self, ledger: Ledger) -> None:
        import threading

        import uvicorn

        app = create_app(ledger, admin_tokens(MASTER_KEY))
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                pytest.fail("the test server did not start")
            threading.Event().wait(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def live_server(ledger: Ledger) -> Iterator[LiveServer]:
    server = LiveServer(ledger)
    yield server
    server.stop()


@pytest.fixture
def live_url(live_server: LiveServer) -> str:
    return live_server.url
