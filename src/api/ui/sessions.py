"""Admin sessions of the web UI, kept in the store so every replica knows them.

The cookie holds only a random session id. The store keeps its SHA-256, the
actor and the expiry, so reading the table is not enough to sign in, and a
restart or another replica keeps the admin signed in. The CSRF token is
derived from the session id, so it needs no storage either.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import Column, Float, MetaData, String, Table, Text, delete, select
from sqlalchemy.engine import Engine

COOKIE = "accessledger_session"
# A working day; after that the admin signs in again.
LIFETIME_SECONDS = 8 * 3600

ui_tables = MetaData()
ui_sessions = Table(
    "ledger_ui_sessions",
    ui_tables,
    Column("id_sha256", String(64), primary_key=True),
    Column("actor", Text, nullable=False),
    Column("expires", Float, nullable=False),
)


@dataclass(frozen=True)
class Session:
    id: str
    actor: str
    expires: float

    @property
    def csrf(self) -> str:
        """The token every form and htmx request of this session carries."""
        return hashlib.sha256(f"csrf:{self.id}".encode()).hexdigest()


class Sessions:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def start(self, actor: str) -> Session:
        """A new session for an actor whose token was just accepted."""
        session = Session(
            id=secrets.token_urlsafe(32),
            actor=actor,
            expires=time.time() + LIFETIME_SECONDS,
        )
        with self.engine.begin() as connection:
            connection.execute(
                delete(ui_sessions).where(ui_sessions.c.expires <= time.time())
            )
            connection.execute(
                ui_sessions.insert().values(
                    id_sha256=digest(session.id),
                    actor=actor,
                    expires=session.expires,
                )
            )
        return session

    def find(self, session_id: str | None) -> Session | None:
        if not session_id or len(session_id) > 100:
            return None
        query = select(ui_sessions.c.actor, ui_sessions.c.expires).where(
            ui_sessions.c.id_sha256 == digest(session_id),
            ui_sessions.c.expires > time.time(),
        )
        with self.engine.connect() as connection:
            row = connection.execute(query).first()
        return None if row is None else Session(session_id, row.actor, row.expires)

    def end(self, session_id: str | None) -> None:
        if not session_id:
            return
        with self.engine.begin() as connection:
            connection.execute(
                delete(ui_sessions).where(ui_sessions.c.id_sha256 == digest(session_id))
            )


def digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()
