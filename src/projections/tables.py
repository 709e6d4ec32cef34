"""The durable, factored read model: one table per factor of access.

Rows change by O(1) per event (deleting a group also drops its attachment
rows). They are written in the same transaction as the events that cause
them, together with the tracking position, so that the tables and the log
never disagree and a new process can load them instead of replaying the log.
Pattern expansion against the catalog is not stored: every process derives
it in memory when it loads (see projections.access_index).
"""

from __future__ import annotations

import json
from typing import Any, Callable

from sqlalchemy import (
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    insert,
    or_,
    update,
)
from sqlalchemy.orm import Session

from domain.aggregates import AccessGroup, CatalogResource, Holder, Key, Principal, Team
from domain.resources import KINDS

metadata = MetaData()

resources = Table(
    "ledger_resources",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("name", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("updated_at", String(40), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("version", Integer, nullable=False),
    Index("ledger_resources_name", "kind", "name", unique=True),
)

holders = Table(
    "ledger_holders",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("type", String(8), nullable=False),
    Column("name", Text, nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("team_id", String(36)),
    Column("restrict", Text),
    Column("expires_at", String(40)),
    Column("secret_hash", String(64), index=True),
    Column("blocked", Boolean, nullable=False, default=False),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("version", Integer, nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("updated_at", String(40), nullable=False),
    Column("seq", Integer, nullable=False),
)

grants = Table(
    "ledger_grants",
    metadata,
    Column("holder_id", String(36), primary_key=True),
    Column("kind", String(16), primary_key=True),
    Column("selector", Text, primary_key=True),
)

attachments = Table(
    "ledger_attachments",
    metadata,
    Column("holder_id", String(36), primary_key=True),
    Column("group_id", String(36), primary_key=True, index=True),
)

tracking = Table(
    "ledger_tracking",
    metadata,
    Column("projection", String(32), primary_key=True),
    Column("position", Integer, nullable=False),
)

# One row whose update starts every write transaction: it serialises writers
# across processes on both stores, so each command sees the latest state.
writer_turn = Table(
    "ledger_writer_turn",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("turn", Integer, nullable=False),
)

PROJECTION = "access"


def timestamp_of(event: Any) -> str:
    return event.timestamp.isoformat().replace("+00:00", "Z")


class LedgerTables:
    """Applies domain events to the factored tables inside a session."""

    def __init__(self) -> None:
        self.handlers: dict[type, Callable[[Session, Any, int], None]] = {
            CatalogResource.Registered: self.resource_registered,
            CatalogResource.Returned: self.resource_returned,
            CatalogResource.Retired: self.resource_retired,
            CatalogResource.Described: self.resource_described,
            AccessGroup.Created: self.group_created,
            AccessGroup.Renamed: self.holder_renamed,
            AccessGroup.Described: self.group_described,
            Team.Created: self.team_created,
            Team.Renamed: self.holder_renamed,
            Key.Created: self.key_created,
            Key.Renamed: self.key_renamed,
            Key.Restricted: self.key_restricted,
            Key.ExpirySet: self.key_expiry_set,
            Key.Rotated: self.key_rotated,
            Holder.GrantsAdded: self.grants_added,
            Holder.GrantsRemoved: self.grants_removed,
            Holder.Deleted: self.holder_deleted,
            Principal.GroupAttached: self.group_attached,
            Principal.GroupDetached: self.group_detached,
            Principal.Blocked: self.principal_blocked,
            Principal.Unblocked: self.principal_unblocked,
        }

    def apply(self, session: Session, events: list[tuple[Any, int]]) -> None:
        """Apply (event, position) pairs in order. The caller moves the
        tracking row once per transaction, with `track`."""
        for domain_event, position in events:
            handler = self.handlers.get(type(domain_event))
            if handler is not None:
                handler(session, domain_event, position)

    def track(self, session: Session, position: int) -> None:
        moved = session.execute(
            update(tracking)
            .where(tracking.c.projection == PROJECTION)
            .values(position=position)
        )
        if moved.rowcount == 0:
            session.execute(insert(tracking).values(projection=PROJECTION, position=position))

    # -- catalog ---------------------------------------------------------

    def resource_registered(self, session: Session, e: Any, position: int) -> None:
        at = timestamp_of(e)
        session.execute(
            insert(resources).values(
                id=str(e.originator_id), kind=e.kind, name=e.name,
                description=e.description, active=True,
                created_at=at, updated_at=at, seq=position, version=e.originator_version,
            )
        )

    def resource_returned(self, session: Session, e: Any, position: int) -> None:
        self.update_resource(session, e, active=True)

    def resource_retired(self, session: Session, e: Any, position: int) -> None:
        self.update_resource(session, e, active=False)

    def resource_described(self, session: Session, e: Any, position: int) -> None:
        self.update_resource(session, e, description=e.description)

    def update_resource(self, session: Session, e: Any, **values: Any) -> None:
        session.execute(
            update(resources)
            .where(resources.c.id == str(e.originator_id))
            .values(updated_at=timestamp_of(e), version=e.originator_version, **values)
        )

    # -- holders ---------------------------------------------------------

    def group_created(self, session: Session, e: Any, position: int) -> None:
        self.insert_holder(session, e, position, type="group", name=e.name,
                           description=e.description)
        self.insert_grants(session, e.originator_id, e.grants)

    def team_created(self, session: Session, e: Any, position: int) -> None:
        self.insert_holder(session, e, position, type="team", name=e.name)
        self.insert_grants(session, e.originator_id, e.grants)
        self.insert_attachments(session, e.originator_id, e.access_groups)

    def key_created(self, session: Session, e: Any, position: int) -> None:
        self.insert_holder(
            session, e, position, type="key", name=e.alias, team_id=e.team_id,
            restrict=encode_restriction(e.restrict), expires_at=e.expires_at,
            secret_hash=e.secret_hash,
        )
        self.insert_grants(session, e.originator_id, e.grants)
        self.insert_attachments(session, e.originator_id, e.access_groups)

    def insert_holder(
        self, session: Session, e: Any, position: int, **values: Any
    ) -> None:
        at = timestamp_of(e)
        session.execute(
            insert(holders).values(
                id=str(e.originator_id), version=e.originator_version,
                created_at=at, updated_at=at, seq=position,
                blocked=False, deleted=False, **values,
            )
        )

    def insert_grants(self, session: Session, holder_id: Any, grant_map: dict) -> None:
        rows = [
            {"holder_id": str(holder_id), "kind": kind, "selector": selector}
            for kind in KINDS
            for selector in grant_map.get(kind, ())
        ]
        if rows:
            session.execute(insert(grants), rows)

    def insert_attachments(self, session: Session, holder_id: Any, group_ids: list) -> None:
        rows = [{"holder_id": str(holder_id), "group_id": g} for g in group_ids]
        if rows:
            session.execute(insert(attachments), rows)

    def touch(self, session: Session, e: Any, **values: Any) -> None:
        """Every holder event moves its version and update time."""
        session.execute(
            update(holders)
            .where(holders.c.id == str(e.originator_id))
            .values(version=e.originator_version, updated_at=timestamp_of(e), **values)
        )

    def holder_renamed(self, session: Session, e: Any, position: int) -> None:
        self.touch(session, e, name=e.name)

    def key_renamed(self, session: Session, e: Any, position: int) -> None:
        self.touch(session, e, name=e.alias)

    def group_described(self, session: Session, e: Any, position: int) -> None:
        self.touch(session, e, description=e.description)

    def key_restricted(self, session: Session, e: Any, position: int) -> None:
        self.touch(session, e, restrict=encode_restriction(e.restrict))

    def key_expiry_set(self, session: Session, e: Any, position: int) -> None:
        self.touch(session, e, expires_at=e.expires_at)

    def key_rotated(self, session: Session, e: Any, position: int) -> None:
        self.touch(session, e, secret_hash=e.secret_hash)

    def principal_blocked(self, session: Session, e: Any, position: int) -> None:
        self.touch(session, e, blocked=True)

    def principal_unblocked(self, session: Session, e: Any, position: int) -> None:
        self.touch(session, e, blocked=False)

    def grants_added(self, session: Session, e: Any, position: int) -> None:
        self.touch(session, e)
        self.insert_grants(session, e.originator_id, e.grants)

    def grants_removed(self, session: Session, e: Any, position: int) -> None:
        self.touch(session, e)
        for kind in KINDS:
            for selector in e.grants.get(kind, ()):
                session.execute(
                    delete(grants).where(
                        grants.c.holder_id == str(e.originator_id),
                        grants.c.kind == kind,
                        grants.c.selector == selector,
                    )
                )

    def group_attached(self, session: Session, e: Any, position: int) -> None:
        self.touch(session, e)
        self.insert_attachments(session, e.originator_id, [e.group_id])

    def group_detached(self, session: Session, e: Any, position: int) -> None:
        self.touch(session, e)
        session.execute(
            delete(attachments).where(
                attachments.c.holder_id == str(e.originator_id),
                attachments.c.group_id == e.group_id,
            )
        )

    def holder_deleted(self, session: Session, e: Any, position: int) -> None:
        """A deleted holder keeps its row (ids are never reused) but grants
        nothing; a deleted group is detached from every key and team."""
        holder_id = str(e.originator_id)
        self.touch(session, e, deleted=True)
        session.execute(delete(grants).where(grants.c.holder_id == holder_id))
        session.execute(
            delete(attachments).where(
                or_(attachments.c.holder_id == holder_id,
                    attachments.c.group_id == holder_id)
            )
        )


def encode_restriction(restrict: dict | None) -> str | None:
    if restrict is None:
        return None
    return json.dumps(restrict, sort_keys=True, ensure_ascii=False)


def decode_restriction(text: str | None) -> dict | None:
    return None if text is None else json.loads(text)

