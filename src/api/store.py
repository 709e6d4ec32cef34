"""The event store: eventsourcing's SQLAlchemy recorder, one code path for
SQLite and PostgreSQL, with one change to suit a ledger that writes several
commands in one transaction."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from eventsourcing_sqlalchemy.factory import SQLAlchemyFactory
from eventsourcing_sqlalchemy.recorders import SQLAlchemyApplicationRecorder


class LedgerRecorder(SQLAlchemyApplicationRecorder):
    """Locks the events table and notifies listeners once per transaction.

    The library does both on every insert. The lock keeps notification ids
    committing in order (readers that follow the log must never skip one) and
    is held until commit anyway, so taking it again is only a round trip; one
    notification per transaction wakes a listener just as well.
    """

    def _lock_table(self, session: Session) -> None:
        if not session.info.get("events_locked"):
            super()._lock_table(session)
            session.info["events_locked"] = True

    def _notify_channel(self, session: Session) -> None:
        if not session.info.get("listeners_notified"):
            super()._notify_channel(session)
            session.info["listeners_notified"] = True


class LedgerFactory(SQLAlchemyFactory):
    application_recorder_class = LedgerRecorder


FACTORY_TOPIC = f"{__name__}:LedgerFactory"


class HeadReader:
    """Reads the store's head, the newest committed notification id.

    Every question asks this first, so it runs on one dedicated driver
    connection in autocommit mode (no pool check-out, no transaction), which
    costs a few microseconds on SQLite and one round trip on PostgreSQL.
    A broken connection is dropped and made again on the next call.
    """

    def __init__(self, engine: Engine, events_table: str) -> None:
        self.engine = engine
        self.query = f"SELECT max(id) FROM {events_table}"
        self.lock = threading.Lock()
        self.connection: Any = None

    def head(self) -> int:
        with self.lock:
            try:
                cursor = self.driver_connection().cursor()
                cursor.execute(self.query)
                row = cursor.fetchone()
                cursor.close()
            except Exception:
                self.drop()
                raise
        return (row[0] if row else None) or 0

    def driver_connection(self) -> Any:
        if self.connection is None:
            self.connection = self.engine.raw_connection()
            if self.engine.dialect.name == "postgresql":
                self.connection.driver_connection.autocommit = True
        return self.connection.driver_connection

    def drop(self) -> None:
        if self.connection is not None:
            try:
                self.connection.invalidate()
            except Exception:  # the connection is already gone; nothing to keep
                pass
            self.connection = None

    def close(self) -> None:
        with self.lock:
            if self.connection is not None:
                self.connection.close()
                self.connection = None
