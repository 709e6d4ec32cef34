"""Compliance replay: rebuild every read model from the event log into fresh
tables beside the live ones, and compare the two table by table.

The live tables are read in one snapshot together with the head, so writes
that land meanwhile cannot make a false difference; checks are served as
usual the whole time, since nothing live is touched. Each table's digest is
order-independent: the sum of its rows' BLAKE2b hashes (mod 2**128) and
its row count. When digests differ, both tables are walked in the same order
and the first rows found on one side only are reported.

Replaying up to an earlier position compares the history tables with the
live history as it stood then (intervals cut at that position); the tables
of current state can only be compared at the head.
"""

from __future__ import annotations

import gc
import hashlib
import secrets
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from sqlalchemy import Table, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.schema import CreateTable

from projections.audit import AuditLog
from projections.memory_tables import MemorySink
from projections.tables import LIVE, LedgerSchema, LedgerTables

PAGE = 5000
SHOWN_DIFFERENCES = 20
# Below this many events, starting a second process costs more than it saves.
SECOND_PROCESS_FROM = 100_000


@dataclass
class ReplayReport:
    events: int
    position: int
    digest: str
    live_digest: str
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    differences: list[dict[str, Any]] = field(default_factory=list)

    @property
    def matches(self) -> bool:
        return self.digest == self.live_digest

    def public(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "position": self.position,
            "digest": self.digest,
            "live_digest": self.live_digest,
            "matches": self.matches,
            "tables": self.tables,
            "differences": self.differences,
        }


def rebuild(
    audit: AuditLog,
    schema: LedgerSchema,
    until: int,
    writer: Any,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Apply every event up to `until` to the tables of `schema`, sending
    their rows to `writer`; answer how many events there were."""
    tables = LedgerTables(schema)
    sink = MemorySink(schema, writer)
    applied, after = 0, 0
    with collector_paused():
        while after < until:
            rows = audit.rows(after, PAGE, until=until)
            if not rows:
                break
            tables.apply(sink, [(audit.decode(row), row.id) for row in rows])
            applied += len(rows)
            after = rows[-1].id
            if progress is not None:
                progress(len(rows))
        sink.finish()
    return applied


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a replay holds its state.

    The replayed tables are a million small lists and tuples that never form
    cycles, but each full collection walks all of them again: with the
    collector running, a replay of a million events takes twice as long. Its
    garbage is freed by reference counting meanwhile; only cycles made by
    other threads of the process wait for the collector to resume.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def create_tables(engine: Engine, schema: LedgerSchema) -> None:
    """Fresh, empty tables, without their secondary indexes yet: building an
    index once from all the rows costs less than keeping it up to date
    through a million inserts."""
    schema.metadata.drop_all(engine)
    with engine.begin() as connection:
        for table in schema.metadata.sorted_tables:
            connection.execute(CreateTable(table))


class TableWriter:
    """Inserts replayed rows a chunk at a time and digests them on the way.

    Each chunk commits on its own: the tables are new and private to the
    replay, and a long write transaction would hold SQLite's single write
    lock, stalling the service's own writes for the length of the replay.
    """

    def __init__(self, engine: Engine, schema: LedgerSchema) -> None:
        self.engine = engine
        self.schema = schema
        self.tables = {table.name: table for table in schema.digest_tables()}
        self.written = {name: Digest() for name in self.tables}
        marker = "%s" if engine.dialect.paramstyle in ("format", "pyformat") else "?"
        self.statements = {
            name: f"INSERT INTO {name} ({', '.join(c.name for c in table.columns)}) "
            f"VALUES ({', '.join([marker] * len(table.columns))})"
            for name, table in self.tables.items()
        }

    def write(self, name: str, rows: list[tuple]) -> None:
        digest = self.written[name]
        for values in rows:
            digest.add(values)
        with self.engine.begin() as connection:
            connection.exec_driver_sql(self.statements[name], rows)

    def finish(self, indexed: bool = True) -> dict[str, str]:
        """Add the indexes (tables that are kept need them; tables dropped
        right after the comparison do not); answer each table's digest."""
        if indexed:
            with self.engine.begin() as connection:
                for table in self.schema.metadata.sorted_tables:
                    for index in table.indexes:
                        index.create(connection)
        return {name: digest.hex() for name, digest in self.written.items()}


class Verifier:
    """The live side of a replay: it fixes one snapshot of the live tables
    and digests them, writes the replayed rows it is sent, then compares.

    It can run in the replaying process, or in a process of its own so that
    the two halves of the work use two cores.
    """

    def __init__(
        self,
        engine: Engine,
        events_table: str,
        schema: LedgerSchema,
        until: int | None,
        indexed: bool = False,
    ) -> None:
        self.schema = schema
        self.indexed = indexed
        self.snapshot = engine.connect()
        begin_snapshot(self.snapshot)
        head = self.snapshot.exec_driver_sql(f"SELECT max(id) FROM {events_table}")
        head = int(head.scalar() or 0)
        self.position = head if until is None else min(until, head)
        self.at_head = self.position == head
        self.writer = TableWriter(engine, schema)
        self.live: dict[str, str] = {}

    def digest_live(self) -> None:
        for table in compared_tables(LIVE, self.at_head):
            rows = rows_of(self.snapshot, table, self.cut(table))
            self.live[str(table.name)] = table_digest(rows)

    def write(self, name: str, rows: list[tuple]) -> None:
        self.writer.write(name, rows)

    def finish(self, events: int) -> ReplayReport:
        replayed = self.writer.finish(self.indexed)
        with self.writer.engine.connect() as connection:
            report = self.compare(connection, replayed)
        report.events = events
        return report

    def close(self) -> None:
        self.snapshot.close()

    def cut(self, table: Table) -> int | None:
        """History is compared as it stood at the position; state only at
        the head."""
        return self.position if "history" in table.name else None

    def compare(self, replayed: Connection, digests: dict[str, str]) -> ReplayReport:
        report = ReplayReport(0, self.position, "", "")
        pairs = zip(
            compared_tables(LIVE, self.at_head),
            compared_tables(self.schema, self.at_head),
            strict=True,
        )
        ours, theirs = hashlib.sha256(), hashlib.sha256()
        for live_table, replay_table in pairs:
            name = str(live_table.name)
            live_digest, replay_digest = self.live[name], digests[replay_table.name]
            report.tables[name] = {
                "live": live_digest,
                "replayed": replay_digest,
                "matches": live_digest == replay_digest,
            }
            theirs.update(f"{name}:{live_digest};".encode())
            ours.update(f"{name}:{replay_digest};".encode())
            wanted = SHOWN_DIFFERENCES - len(report.differences)
            if live_digest != replay_digest and wanted > 0:
                report.differences += first_differences(
                    name,
                    rows_of(self.snapshot, live_table, self.cut(live_table)),
                    rows_of(replayed, replay_table, None),
                    wanted,
                )
        report.digest, report.live_digest = ours.hexdigest(), theirs.hexdigest()
        return report


def compared_tables(schema: LedgerSchema, at_head: bool) -> list[Table]:
    tables = schema.digest_tables()
    return tables if at_head else [t for t in tables if "history" in t.name]


def replay(
    audit: AuditLog,
    engine: Engine,
    until: int | None = None,
    progress: Callable[[int], None] | None = None,
    keep: bool = False,
    in_process: bool | None = None,
) -> ReplayReport:
    """Rebuild every read model from the log up to `until` (or the head) in
    fresh tables, and compare them with the live ones.

    A long log is verified by a second process while this one replays;
    `in_process` forces one way or the other.
    """
    schema = LedgerSchema(f"replay_{secrets.token_hex(4)}")
    if in_process is None:
        with engine.connect() as connection:
            in_process = audit.head(connection) < SECOND_PROCESS_FROM
    create_tables(engine, schema)
    try:
        if in_process:
            return replay_here(audit, engine, schema, until, progress, keep)
        from projections.verifier_process import VerifierProcess

        events_table = audit.events_table
        with VerifierProcess(engine, events_table, schema, until, keep) as verifier:
            events = rebuild(audit, schema, verifier.position, verifier, progress)
            return verifier.finish(events)
    finally:
        if not keep:
            schema.metadata.drop_all(engine)


def replay_here(
    audit: AuditLog,
    engine: Engine,
    schema: LedgerSchema,
    until: int | None,
    progress: Callable[[int], None] | None,
    keep: bool,
) -> ReplayReport:
    verifier = Verifier(engine, audit.events_table, schema, until, keep)
    try:
        verifier.digest_live()
        events = rebuild(audit, schema, verifier.position, verifier, progress)
        return verifier.finish(events)
    finally:
        verifier.close()


def begin_snapshot(connection: Connection) -> None:
    """One consistent view of the live tables for the whole comparison."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    connection.exec_driver_sql("SELECT 1")  # SQLite fixes its snapshot at the first read


def rows_of(connection: Connection, table: Table, cut: int | None) -> Iterator[tuple]:
    """A table's rows, in no order; history cut at a position when asked."""
    columns = [c for c in table.columns]
    query = select(*columns)
    if cut is not None:
        query = query.where(table.c.from_position <= cut)
    # Streamed: PostgreSQL's driver would otherwise fetch the whole table.
    for row in connection.execute(query.execution_options(yield_per=PAGE)):
        values = tuple(row)
        if cut is not None:
            values = cut_interval(values, [c.name for c in columns], cut)
        yield values


def cut_interval(values: tuple, names: list[str], cut: int) -> tuple:
    """An interval still open at the cut is open as far as the cut can see."""
    end = names.index("to_position")
    if values[end] is not None and values[end] > cut:
        return values[:end] + (None,) + values[end + 1 :]
    return values


class Digest:
    """Order-independent: the sum of the rows' hashes mod 2**128, and the count."""

    def __init__(self) -> None:
        self.total, self.count = 0, 0

    def add(self, values: tuple) -> None:
        # Both sides hold booleans as bool (SQLAlchemy converts on reading),
        # integers as int and text as str, so their reprs agree.
        text = repr(values).encode("utf-8", "surrogatepass")
        row_hash = hashlib.blake2b(text, digest_size=16).digest()
        self.total = (self.total + int.from_bytes(row_hash, "big")) % (1 << 128)
        self.count += 1

    def hex(self) -> str:
        return f"{self.count}:{self.total:032x}"


def table_digest(rows: Iterator[tuple]) -> str:
    digest = Digest()
    for values in rows:
        digest.add(values)
    return digest.hex()


def first_differences(
    name: str, live: Iterator[tuple], replayed: Iterator[tuple], wanted: int
) -> list[dict[str, Any]]:
    """Rows on one side only. Both sides are counted in memory, which is
    done only for a table whose digests already differ."""
    live_rows, replayed_rows = Counter(live), Counter(replayed)
    found = []
    for values in sorted(live_rows - replayed_rows, key=sort_key):
        found.append({"table": name, "only_in": "live", "row": list(values)})
    for values in sorted(replayed_rows - live_rows, key=sort_key):
        found.append({"table": name, "only_in": "replayed", "row": list(values)})
    return found[:wanted]


def sort_key(values: tuple) -> tuple:
    return tuple((v is not None, str(type(v)), v if v is not None else 0) for v in values)


def switch_over(
    ledger: Any, progress: Callable[[int], None] | None = None
) -> dict[str, Any]:
    """Rebuild the read model beside the live one, then swap them atomically.

    The new tables are built from the log while everything runs as usual;
    then, holding the writer turn (writes wait, questions do not), the last
    few events are applied to them, the commit times are copied, and every
    live table is renamed away and its new twin renamed into its place in one
    transaction. No question ever reads a half-built table.
    """
    audit = ledger.audit
    token = secrets.token_hex(4)
    fresh = LedgerSchema(f"rebuilt_{token}")
    with ledger.engine.connect() as connection:
        built_to = audit.head(connection)
    create_tables(ledger.engine, fresh)
    writer = TableWriter(ledger.engine, fresh)
    events = rebuild(audit, fresh, built_to, writer, progress)
    writer.finish()

    with ledger.writer_turn() as session:
        head = audit.head(session.connection())
        rows = audit.rows(built_to, 10**9, until=head)
        LedgerTables(fresh).apply(session, [(audit.decode(r), r.id) for r in rows])
        session.execute(
            fresh.commits.insert().from_select(
                ["position", "committed_at"], select(LIVE.commits)
            )
        )
        LedgerTables(fresh).track(session, head)
        retired = LedgerSchema(f"retired_{token}")
        for live, new, old in zip(
            LIVE.all_tables(), fresh.all_tables(), retired.all_tables(), strict=True
        ):
            session.execute(text(f"ALTER TABLE {live.name} RENAME TO {old.name}"))
            session.execute(text(f"ALTER TABLE {new.name} RENAME TO {live.name}"))

    retired.metadata.drop_all(ledger.engine)
    return {"events": events + len(rows), "position": head}
