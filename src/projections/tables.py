"""The durable, factored read model: one table per factor of access, and the
history of each factor as position intervals.

Rows change by O(1) per event (deleting a group also closes its attachment
rows). They are written in the same transaction as the events that cause
them, together with the tracking position, so that the tables and the log
never disagree and a new process can load them instead of replaying the log.
Pattern expansion against the catalog is not stored: every process derives
it in memory when it loads (see projections.access_index).

History rows hold `[from_position, to_position)`: the state after applying
every event up to and including position P is the rows with
`from_position <= P` and `to_position` null or greater than P.

A `LedgerSchema` names its tables with a prefix, so that a compliance replay
can rebuild every table beside the live ones and compare the two.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Protocol

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from domain.aggregates import (
    AccessGroup,
    AdminToken,
    CatalogResource,
    Holder,
    Key,
    Principal,
    Team,
)
from domain.resources import KINDS

PROJECTION = "access"
# Holder columns whose history is kept; grants and attachments have their own.
HOLDER_STATE = ("type", "name", "team_id", "restrict", "expires_at", "blocked", "deleted")


class LedgerSchema:
    """Every read-model table, named `{prefix}_...`."""

    def __init__(self, prefix: str = "ledger") -> None:
        self.prefix = prefix
        self.metadata = MetaData()
        m, p = self.metadata, prefix

        self.resources = Table(
            f"{p}_resources",
            m,
            Column("id", String(36), primary_key=True),
            Column("kind", String(16), nullable=False),
            Column("name", Text, nullable=False),
            Column("description", Text, nullable=False),
            Column("active", Boolean, nullable=False),
            Column("created_at", String(40), nullable=False),
            Column("updated_at", String(40), nullable=False),
            Column("seq", Integer, nullable=False),
            Column("version", Integer, nullable=False),
            Index(f"{p}_resources_name", "kind", "name", unique=True),
        )
        self.holders = Table(
            f"{p}_holders",
            m,
            Column("id", String(36), primary_key=True),
            Column("type", String(8), nullable=False),
            Column("name", Text, nullable=False),
            Column("description", Text, nullable=False, default=""),
            Column("team_id", String(36)),
            Column("restrict", Text),
            Column("expires_at", String(40)),
            Column("secret_hash", String(64)),
            Column("blocked", Boolean, nullable=False, default=False),
            Column("deleted", Boolean, nullable=False, default=False),
            Column("version", Integer, nullable=False),
            Column("created_at", String(40), nullable=False),
            Column("updated_at", String(40), nullable=False),
            Column("seq", Integer, nullable=False),
            Index(f"{p}_holders_secret", "secret_hash"),
        )
        self.grants = Table(
            f"{p}_grants",
            m,
            Column("holder_id", String(36), primary_key=True),
            Column("kind", String(16), primary_key=True),
            Column("selector", Text, primary_key=True),
        )
        self.attachments = Table(
            f"{p}_attachments",
            m,
            Column("holder_id", String(36), primary_key=True),
            Column("group_id", String(36), primary_key=True),
            Index(f"{p}_attachments_group", "group_id"),
        )
        self.tracking = Table(
            f"{p}_tracking",
            m,
            Column("projection", String(32), primary_key=True),
            Column("position", Integer, nullable=False),
        )
        # One row per committed command: where a question "as of" a position
        # or a time lands, so that it never sees half of a command.
        self.commits = Table(
            f"{p}_commits",
            m,
            Column("position", Integer, primary_key=True),
            Column("committed_at", Float, nullable=False, index=True),
        )
        self.holder_history = Table(
            f"{p}_holder_history",
            m,
            Column("holder_id", String(36), nullable=False),
            *(
                Column(name, Text if name in ("name", "restrict") else String(40))
                for name in HOLDER_STATE
                if name not in ("blocked", "deleted")
            ),
            Column("blocked", Boolean, nullable=False),
            Column("deleted", Boolean, nullable=False),
            Column("from_position", Integer, nullable=False),
            Column("to_position", Integer),
            Index(f"{p}_holder_history_holder", "holder_id", "from_position"),
        )
        self.grant_history = Table(
            f"{p}_grant_history",
            m,
            Column("holder_id", String(36), nullable=False),
            Column("kind", String(16), nullable=False),
            Column("selector", Text, nullable=False),
            Column("from_position", Integer, nullable=False),
            Column("to_position", Integer),
            Index(f"{p}_grant_history_holder", "holder_id", "from_position"),
        )
        self.attachment_history = Table(
            f"{p}_attachment_history",
            m,
            Column("holder_id", String(36), nullable=False),
            Column("group_id", String(36), nullable=False),
            Column("from_position", Integer, nullable=False),
            Column("to_position", Integer),
            Index(f"{p}_attachment_history_holder", "holder_id"),
            Index(f"{p}_attachment_history_group", "group_id"),
        )
        self.resource_history = Table(
            f"{p}_resource_history",
            m,
            Column("kind", String(16), nullable=False),
            Column("name", Text, nullable=False),
            Column("from_position", Integer, nullable=False),
            Column("to_position", Integer),
            Index(f"{p}_resource_history_kind", "kind", "from_position"),
        )
        # Admin tokens by the SHA-256 of the token; the token is never stored.
        self.admin_tokens = Table(
            f"{p}_admin_tokens",
            m,
            Column("id", String(36), primary_key=True),
            Column("name", Text, nullable=False),
            Column("role", String(16), nullable=False),
            Column("token_hash", String(64), nullable=False),
            Column("revoked", Boolean, nullable=False),
            Column("created_by", Text, nullable=False),
            Column("version", Integer, nullable=False),
            Column("created_at", String(40), nullable=False),
            Column("updated_at", String(40), nullable=False),
            Column("seq", Integer, nullable=False),
            Index(f"{p}_admin_tokens_hash", "token_hash"),
        )

    def all_tables(self) -> list[Table]:
        """Every table, in the same order for every prefix."""
        return [
            self.resources,
            self.holders,
            self.grants,
            self.attachments,
            self.tracking,
            self.commits,
            self.holder_history,
            self.grant_history,
            self.attachment_history,
            self.resource_history,
            self.admin_tokens,
        ]

    def digest_tables(self) -> list[Table]:
        """The tables a replay rebuilds and compares (not tracking or commits,
        which record when things were written rather than what they are)."""
        return [
            self.resources,
            self.holders,
            self.grants,
            self.attachments,
            self.holder_history,
            self.grant_history,
            self.attachment_history,
            self.resource_history,
            self.admin_tokens,
        ]


LIVE = LedgerSchema()


# The other tables of the store: one row whose update starts every write
# transaction, serialising writers across processes on both stores.
control = MetaData()
writer_turn = Table(
    "ledger_writer_turn",
    control,
    Column("id", Integer, primary_key=True),
    Column("turn", Integer, nullable=False),
)
# Settings every process of one store shares, such as the master key's hash.
settings = Table(
    "ledger_settings",
    control,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

# The first answer to each idempotent write, by caller and key, written in
# the transaction of the write itself (see api.idempotency).
MAX_IDEMPOTENCY_KEY_LENGTH = 255
idempotent_answers = Table(
    "ledger_idempotency",
    control,
    Column("actor", String(255), primary_key=True),
    Column("idempotency_key", String(MAX_IDEMPOTENCY_KEY_LENGTH), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("status", Integer, nullable=False),
    Column("body", Text),
    Column("position", Integer, nullable=False),
    Column("stored_at", Float, nullable=False),
)


def store_clock(dialect: str) -> Any:
    """Seconds since the epoch by the store's clock, as SQL, to the clock's
    own precision (PostgreSQL's microsecond; SQLite's millisecond, since its
    clock is the host's in milliseconds), so that the time shown for a commit
    is exactly the time it was recorded at. SQLite has no server: its clock
    is the host's."""
    if dialect == "postgresql":
        return func.extract("epoch", func.clock_timestamp())
    return func.round((func.julianday("now") - 2440587.5) * 86400.0, 3)


def timestamp_of(event: Any) -> str:
    return event.timestamp.isoformat().replace("+00:00", "Z")


class Statements:
    """Statements built once and run with parameters: building a statement
    costs more than running it, and one construct per shape also lets the
    driver prepare it once."""

    def __init__(self, schema: LedgerSchema) -> None:
        self.s = schema
        self.cache: dict[tuple, Any] = {}

    def copy_holder_state(self) -> Any:
        holders = self.s.holders
        return self.cached(
            ("copy_holder_state",),
            lambda: insert(self.s.holder_history).from_select(
                ["holder_id", *HOLDER_STATE, "from_position"],
                select(
                    holders.c.id,
                    *(holders.c[n] for n in HOLDER_STATE),
                    bindparam("position", type_=Integer),
                ).where(holders.c.id == bindparam("holder_id")),
            ),
        )

    def update_resource(self, values: tuple[str, ...]) -> Any:
        resources = self.s.resources
        return self.cached(
            ("update_resource", values),
            lambda: (
                update(resources)
                .where(resources.c.id == bindparam("w_id"))
                .values({c: bindparam(f"v_{c}") for c in values})
                .returning(resources.c.kind, resources.c.name)
            ),
        )

    def insert(self, table: Table) -> Any:
        return self.cached(("insert", table.name), lambda: insert(table))

    def update(
        self, table: Table, where: tuple[str, ...], values: tuple[str, ...]
    ) -> Any:
        return self.cached(
            ("update", table.name, where, values),
            lambda: (
                update(table)
                .where(*(table.c[c] == bindparam(f"w_{c}") for c in where))
                .values({c: bindparam(f"v_{c}") for c in values})
            ),
        )

    def close(self, table: Table, where: tuple[str, ...]) -> Any:
        return self.cached(
            ("close", table.name, where),
            lambda: (
                update(table)
                .where(
                    *(table.c[c] == bindparam(f"w_{c}") for c in where),
                    table.c.to_position.is_(None),
                )
                .values(to_position=bindparam("v_to_position"))
            ),
        )

    def delete(self, table: Table, where: tuple[str, ...]) -> Any:
        return self.cached(
            ("delete", table.name, where),
            lambda: delete(table).where(
                *(table.c[c] == bindparam(f"w_{c}") for c in where)
            ),
        )

    def cached(self, shape: tuple, build: Callable[[], Any]) -> Any:
        statement = self.cache.get(shape)
        if statement is None:
            statement = self.cache[shape] = build()
        return statement


class Sink(Protocol):
    """Where a projection's row changes go: the tables in a transaction, or
    memory (see projections.memory_tables) when a whole log is replayed."""

    def insert(self, table: Table, rows: Any) -> None: ...
    def update(self, table: Table, where: dict, values: dict) -> None: ...
    def delete(self, table: Table, where: dict) -> None: ...
    def close(self, table: Table, position: int, where: dict) -> None: ...
    def copy_state(self, holder_id: str, position: int) -> None: ...
    def update_resource(self, resource_id: str, values: dict) -> tuple[str, str]: ...


class SqlSink:
    """Row changes as statements on one connection."""

    def __init__(self, connection: Connection, statements: Statements) -> None:
        self.connection = connection
        self.statements = statements

    def insert(self, table: Table, rows: Any) -> None:
        if rows:
            self.connection.execute(self.statements.insert(table), rows)

    def update(self, table: Table, where: dict, values: dict) -> None:
        statement = self.statements.update(table, tuple(where), tuple(values))
        params = {
            **{f"w_{c}": v for c, v in where.items()},
            **{f"v_{c}": v for c, v in values.items()},
        }
        self.connection.execute(statement, params)

    def delete(self, table: Table, where: dict) -> None:
        statement = self.statements.delete(table, tuple(where))
        self.connection.execute(statement, {f"w_{c}": v for c, v in where.items()})

    def close(self, table: Table, position: int, where: dict) -> None:
        """End the open history interval of the rows `where` names."""
        statement = self.statements.close(table, tuple(where))
        params = {f"w_{c}": v for c, v in where.items()}
        self.connection.execute(statement, {**params, "v_to_position": position})

    def copy_state(self, holder_id: str, position: int) -> None:
        """Start a holder's next history interval from its current row."""
        self.connection.execute(
            self.statements.copy_holder_state(),
            {"holder_id": holder_id, "position": position},
        )

    def update_resource(self, resource_id: str, values: dict) -> tuple[str, str]:
        statement = self.statements.update_resource(tuple(values))
        params = {"w_id": resource_id, **{f"v_{c}": v for c, v in values.items()}}
        row = self.connection.execute(statement, params).one()
        return row.kind, row.name


class LedgerTables:
    """Applies domain events to one schema's tables inside a session."""

    def __init__(self, schema: LedgerSchema = LIVE) -> None:
        self.s = schema
        self.statements = Statements(schema)
        self.handlers: dict[type, Callable[[Connection, Any, int], None]] = {
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
            AdminToken.Issued: self.admin_token_issued,
            AdminToken.Revoked: self.admin_token_revoked,
        }

    def apply(self, target: Session | Sink, events: list[tuple[Any, int]]) -> None:
        """Apply (event, position) pairs in order, to a session's tables or to
        another sink. The caller records the command's commit and moves the
        tracking row, with `commit`."""
        out = target
        if isinstance(target, Session):
            out = SqlSink(target.connection(), self.statements)
        for domain_event, position in events:
            handler = self.handlers.get(type(domain_event))
            if handler is not None:
                handler(out, domain_event, position)

    def commit(self, session: Session, positions: list[int]) -> None:
        """Record the last position of each command, stamped by the store's
        clock, and move the tracking row."""
        if not positions:
            return
        clock = store_clock(session.get_bind().dialect.name)
        session.execute(
            insert(self.s.commits).values(committed_at=clock),
            [{"position": position} for position in positions],
        )
        self.track(session, positions[-1])

    def track(self, session: Session, position: int) -> None:
        tracking = self.s.tracking
        moved = session.execute(
            update(tracking)
            .where(tracking.c.projection == PROJECTION)
            .values(position=position)
        )
        if moved.rowcount == 0:
            session.execute(
                insert(tracking).values(projection=PROJECTION, position=position)
            )

    # -- catalog ---------------------------------------------------------

    def resource_registered(self, out: Sink, e: Any, position: int) -> None:
        at = timestamp_of(e)
        out.insert(
            self.s.resources,
            {
                "id": str(e.originator_id),
                "kind": e.kind,
                "name": e.name,
                "description": e.description,
                "active": True,
                "created_at": at,
                "updated_at": at,
                "seq": position,
                "version": e.originator_version,
            },
        )
        self.open_resource(out, e.kind, e.name, position)

    def resource_returned(self, out: Sink, e: Any, position: int) -> None:
        kind, name = self.update_resource(out, e, active=True)
        self.open_resource(out, kind, name, position)

    def resource_retired(self, out: Sink, e: Any, position: int) -> None:
        kind, name = self.update_resource(out, e, active=False)
        out.close(self.s.resource_history, position, {"kind": kind, "name": name})

    def resource_described(self, out: Sink, e: Any, position: int) -> None:
        self.update_resource(out, e, description=e.description)

    def update_resource(self, out: Sink, e: Any, **values: Any) -> tuple[str, str]:
        values = {
            "updated_at": timestamp_of(e),
            "version": e.originator_version,
            **values,
        }
        return out.update_resource(str(e.originator_id), values)

    def open_resource(self, out: Sink, kind: str, name: str, position: int) -> None:
        out.insert(
            self.s.resource_history,
            {"kind": kind, "name": name, "from_position": position},
        )

    # -- holders ---------------------------------------------------------

    def group_created(self, out: Sink, e: Any, position: int) -> None:
        self.insert_holder(
            out, e, position, type="group", name=e.name, description=e.description
        )
        self.insert_grants(out, e.originator_id, e.grants, position)

    def team_created(self, out: Sink, e: Any, position: int) -> None:
        self.insert_holder(out, e, position, type="team", name=e.name)
        self.insert_grants(out, e.originator_id, e.grants, position)
        self.insert_attachments(out, e.originator_id, e.access_groups, position)

    def key_created(self, out: Sink, e: Any, position: int) -> None:
        self.insert_holder(
            out,
            e,
            position,
            type="key",
            name=e.alias,
            team_id=e.team_id,
            restrict=encode_restriction(e.restrict),
            expires_at=e.expires_at,
            secret_hash=e.secret_hash,
        )
        self.insert_grants(out, e.originator_id, e.grants, position)
        self.insert_attachments(out, e.originator_id, e.access_groups, position)

    def insert_holder(self, out: Sink, e: Any, position: int, **values: Any) -> None:
        at = timestamp_of(e)
        row = {
            "id": str(e.originator_id),
            "version": e.originator_version,
            "created_at": at,
            "updated_at": at,
            "seq": position,
            "blocked": False,
            "deleted": False,
            "description": "",
            "team_id": None,
            "restrict": None,
            "expires_at": None,
            "secret_hash": None,
            **values,
        }
        out.insert(self.s.holders, row)
        state = {name: row[name] for name in HOLDER_STATE}
        out.insert(
            self.s.holder_history,
            {"holder_id": row["id"], **state, "from_position": position},
        )

    def insert_grants(
        self, out: Sink, holder_id: Any, grant_map: dict, position: int
    ) -> None:
        rows = [
            {"holder_id": str(holder_id), "kind": kind, "selector": selector}
            for kind in KINDS
            for selector in grant_map.get(kind, ())
        ]
        out.insert(self.s.grants, rows)
        out.insert(
            self.s.grant_history, [{**row, "from_position": position} for row in rows]
        )

    def insert_attachments(
        self, out: Sink, holder_id: Any, group_ids: list, position: int
    ) -> None:
        rows = [{"holder_id": str(holder_id), "group_id": g} for g in group_ids]
        out.insert(self.s.attachments, rows)
        out.insert(
            self.s.attachment_history,
            [{**row, "from_position": position} for row in rows],
        )

    def touch(self, out: Sink, e: Any, **values: Any) -> None:
        """Every holder event moves its version and update time."""
        out.update(
            self.s.holders,
            {"id": str(e.originator_id)},
            {"version": e.originator_version, "updated_at": timestamp_of(e), **values},
        )

    def change_state(self, out: Sink, e: Any, position: int, **values: Any) -> None:
        """A change to a column with history: end the open interval, update,
        then start the next interval from the changed row. The interval ends
        before the row changes, so a sink may take its state from the row."""
        holder_id = str(e.originator_id)
        out.close(self.s.holder_history, position, {"holder_id": holder_id})
        self.touch(out, e, **values)
        out.copy_state(holder_id, position)

    def holder_renamed(self, out: Sink, e: Any, position: int) -> None:
        self.change_state(out, e, position, name=e.name)

    def key_renamed(self, out: Sink, e: Any, position: int) -> None:
        self.change_state(out, e, position, name=e.alias)

    def group_described(self, out: Sink, e: Any, position: int) -> None:
        self.touch(out, e, description=e.description)

    def key_restricted(self, out: Sink, e: Any, position: int) -> None:
        self.change_state(out, e, position, restrict=encode_restriction(e.restrict))

    def key_expiry_set(self, out: Sink, e: Any, position: int) -> None:
        self.change_state(out, e, position, expires_at=e.expires_at)

    def key_rotated(self, out: Sink, e: Any, position: int) -> None:
        self.touch(out, e, secret_hash=e.secret_hash)

    def principal_blocked(self, out: Sink, e: Any, position: int) -> None:
        self.change_state(out, e, position, blocked=True)

    def principal_unblocked(self, out: Sink, e: Any, position: int) -> None:
        self.change_state(out, e, position, blocked=False)

    def grants_added(self, out: Sink, e: Any, position: int) -> None:
        self.touch(out, e)
        self.insert_grants(out, e.originator_id, e.grants, position)

    def grants_removed(self, out: Sink, e: Any, position: int) -> None:
        self.touch(out, e)
        holder_id = str(e.originator_id)
        for kind in KINDS:
            for selector in e.grants.get(kind, ()):
                where = {"holder_id": holder_id, "kind": kind, "selector": selector}
                out.close(self.s.grant_history, position, where)
                out.delete(self.s.grants, where)

    def group_attached(self, out: Sink, e: Any, position: int) -> None:
        self.touch(out, e)
        self.insert_attachments(out, e.originator_id, [e.group_id], position)

    def group_detached(self, out: Sink, e: Any, position: int) -> None:
        self.touch(out, e)
        where = {"holder_id": str(e.originator_id), "group_id": e.group_id}
        out.close(self.s.attachment_history, position, where)
        out.delete(self.s.attachments, where)

    def holder_deleted(self, out: Sink, e: Any, position: int) -> None:
        """A deleted holder keeps its row (ids are never reused) but grants
        nothing; a deleted group is detached from every key and team."""
        holder_id = str(e.originator_id)
        self.change_state(out, e, position, deleted=True)

        # Each interval ends before its row goes, as everywhere: a sink may
        # find the open intervals through the rows of current state.
        s = self.s
        out.close(s.grant_history, position, {"holder_id": holder_id})
        out.delete(s.grants, {"holder_id": holder_id})
        for column in ("holder_id", "group_id"):
            out.close(s.attachment_history, position, {column: holder_id})
            out.delete(s.attachments, {column: holder_id})

    # -- admin tokens ----------------------------------------------------

    def admin_token_issued(self, out: Sink, e: Any, position: int) -> None:
        at = timestamp_of(e)
        row = {
            "id": str(e.originator_id),
            "name": e.name,
            "role": e.role,
            "token_hash": e.token_hash,
            "revoked": False,
            "created_by": e.actor,
            "version": e.originator_version,
            "created_at": at,
            "updated_at": at,
            "seq": position,
        }
        out.insert(self.s.admin_tokens, row)

    def admin_token_revoked(self, out: Sink, e: Any, position: int) -> None:
        out.update(
            self.s.admin_tokens,
            {"id": str(e.originator_id)},
            {
                "revoked": True,
                "version": e.originator_version,
                "updated_at": timestamp_of(e),
            },
        )


def encode_restriction(restrict: dict | None) -> str | None:
    if restrict is None:
        return None
    return json.dumps(restrict, sort_keys=True, ensure_ascii=False)


def decode_restriction(text: str | None) -> dict | None:
    return None if text is None else json.loads(text)
