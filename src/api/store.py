"""The event store: eventsourcing's SQLAlchemy recorder, one code path for
SQLite and PostgreSQL, with one change to suit a ledger that writes several
commands in one transaction."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Iterator

from eventsourcing_sqlalchemy.factory import SQLAlchemyFactory
from eventsourcing_sqlalchemy.recorders import SQLAlchemyApplicationRecorder
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from projections.audit import events_after


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


class LogReader:
    """Follows the event log on one dedicated autocommit connection.

    Every question reads the head first and a process catches up through
    here, so neither ever waits for the connection pool: a pool drained by
    writers waiting for their turn cannot stall the reads those writers need
    (the head query even skips SQLAlchemy and uses the driver directly). A
    broken connection is dropped and made again on the next call.
    """

    def __init__(self, engine: Engine, records: Any) -> None:
        self.engine = engine
        self.records = records
        self.head_query = f"SELECT max(id) FROM {records.__table__.name}"
        self.lock = threading.Lock()
        self.connection: Connection | None = None

    def head(self) -> int:
        with self.lock, self.guarded() as connection:
            cursor = connection.connection.driver_connection.cursor()
            cursor.execute(self.head_query)
            row = cursor.fetchone()
            cursor.close()
        return (row[0] if row else None) or 0

    def rows_after(self, position: int, stop: int, limit: int) -> list[Any]:
        query = events_after(self.records, position, limit, until=stop)
        with self.lock, self.guarded() as connection:
            return list(connection.execute(query))

    @contextmanager
    def guarded(self) -> Iterator[Connection]:
        if self.connection is None:
            self.connection = self.engine.connect().execution_options(
                isolation_level="AUTOCOMMIT"
            )
        try:
            yield self.connection
        except Exception:
            self.drop()
            raise

    def drop(self) -> None:
        if self.connection is not None:
            try:
                self.connection.invalidate()
                self.connection.close()
            except Exception:  # the connection is already gone; nothing to keep
                pass
            self.connection = None

    def close(self) -> None:
        with self.lock:
            if self.connection is not None:
                self.connection.close()
                self.connection = None
