"""Builds an access index from the factored tables, as of their tracking
position, so that a new process starts from rows instead of the whole log."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.engine import Connection

from projections.access_index import (
    AccessIndex,
    AdminTokenEntry,
    HolderEntry,
    ResourceEntry,
    set_expiry,
)
from projections.tables import LIVE, PROJECTION, LedgerSchema, decode_restriction


def load_index(connection: Connection, schema: LedgerSchema = LIVE) -> AccessIndex:
    index = AccessIndex()
    resources, holders, grants = schema.resources, schema.holders, schema.grants
    attachments, tracking = schema.attachments, schema.tracking
    position = connection.execute(
        select(tracking.c.position).where(tracking.c.projection == PROJECTION)
    ).scalar()

    for row in connection.execute(select(resources).order_by(resources.c.seq)):
        entry = ResourceEntry(
            row.id,
            row.kind,
            row.name,
            row.description,
            False,
            row.created_at,
            row.updated_at,
            row.seq,
            row.version,
        )
        index.add_resource(entry)
        if row.active:
            index.activate(entry)

    grant_rows = defaultdict(list)
    for row in connection.execute(select(grants)):
        grant_rows[row.holder_id].append((row.kind, row.selector))
    attachment_rows = defaultdict(list)
    for row in connection.execute(select(attachments)):
        attachment_rows[row.holder_id].append(row.group_id)

    for row in connection.execute(select(holders).order_by(holders.c.seq)):
        grant_map: dict[str, list[str]] = defaultdict(list)
        for kind, selector in grant_rows.get(row.id, ()):
            grant_map[kind].append(selector)
        index.add_holder(holder_entry(row), grant_map, [])

    # Attach only once every holder is known: a team may carry a group
    # created after the team itself.
    for holder_id, group_ids in attachment_rows.items():
        for group_id in group_ids:
            index.attach(index.holders[holder_id], group_id)

    for row in connection.execute(select(schema.admin_tokens)):
        index.add_admin_token(
            AdminTokenEntry(
                row.id,
                row.name,
                row.role,
                row.token_hash,
                row.created_by,
                row.version,
                row.created_at,
                row.updated_at,
                row.seq,
                bool(row.revoked),
            )
        )

    index.position = position or 0
    return index


def holder_entry(row) -> HolderEntry:  # type: ignore[no-untyped-def]
    entry = HolderEntry(
        row.id, row.type, row.name, row.version, row.created_at, row.updated_at, row.seq
    )
    entry.description = row.description or ""
    entry.team_id = row.team_id
    entry.restrict = decode_restriction(row.restrict)
    entry.secret_hash = row.secret_hash
    entry.blocked = bool(row.blocked)
    entry.deleted = bool(row.deleted)
    set_expiry(entry, row.expires_at)
    return entry
