"""The event store: eventsourcing's SQLAlchemy recorder, one code path for
SQLite and PostgreSQL, with one change to suit a ledger that writes several
commands in one transaction."""

from __future__ import annotations

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
