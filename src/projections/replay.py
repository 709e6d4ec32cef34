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

import hashlib
import secrets
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from sqlalchemy import Table, select, text
from sqlalchemy.engine import Connection, Engine

from projections.audit import AuditLog
from projections.memory_tables import MemorySink
from projections.tables import LIVE, LedgerSchema, LedgerTables

PAGE = 5000
SHOWN_DIFFERENCES = 20


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
    engine: Engine,
    schema: LedgerSchema,
    until: int,
    progress: Callable[[int], None] | None = None,
) -> tuple[int, dict[str, str]]:
    """Apply every event up to `until` to fresh tables; answer how many, and
    each table's digest (taken from the rows as they are written)."""
    schema.metadata.drop_all(engine)
    schema.metadata.create_all(engine)
    tables = LedgerTables(schema)
    applied, after = 0, 0
    with engine.begin() as connection:
        sink = MemorySink(schema, connection)
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
    return applied, sink.digests()


def replay(
    audit: AuditLog,
    engine: Engine,
    until: int | None = None,
    progress: Callable[[int], None] | None = None,
    keep: bool = False,
) -> ReplayReport:
    schema = LedgerSchema(f"replay_{secrets.token_hex(4)}")
    with engine.connect() as snapshot:
        begin_snapshot(snapshot)
        head = audit.head(snapshot)
        position = head if until is None else min(until, head)
        events, digests = rebuild(audit, engine, schema, position, progress)
        try:
            with engine.connect() as replayed:
                report = compare(
                    snapshot,
                    replayed,
                    schema,
                    digests,
                    position,
                    at_head=position == head,
                )
        finally:
            if not keep:
                schema.metadata.drop_all(engine)
    report.events = events
    return report


def begin_snapshot(connection: Connection) -> None:
    """One consistent view of the live tables for the whole comparison."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    connection.exec_driver_sql("SELECT 1")  # SQLite fixes its snapshot at the first read


def compare(
    live: Connection,
    replayed: Connection,
    schema: LedgerSchema,
    digests: dict[str, str],
    position: int,
    at_head: bool,
) -> ReplayReport:
    report = ReplayReport(0, position, "", "")
    pairs = list(zip(LIVE.digest_tables(), schema.digest_tables(), strict=True))
    if not at_head:
        pairs = [(live, new) for live, new in pairs if "history" in live.name]

    ours, theirs = hashlib.sha256(), hashlib.sha256()
    for live_table, replay_table in pairs:
        cut = position if "history" in live_table.name else None
        live_digest = table_digest(rows_of(live, live_table, cut))
        replay_digest = digests[replay_table.name]
        name = str(live_table.name)
        report.tables[name] = {
            "live": live_digest,
            "replayed": replay_digest,
            "matches": live_digest == replay_digest,
        }
        theirs.update(f"{name}:{live_digest};".encode())
        ours.update(f"{name}:{replay_digest};".encode())
        if live_digest != replay_digest and len(report.differences) < SHOWN_DIFFERENCES:
            report.differences += first_differences(
                name,
                rows_of(live, live_table, cut),
                rows_of(replayed, replay_table, None),
                SHOWN_DIFFERENCES - len(report.differences),
            )
    report.digest, report.live_digest = ours.hexdigest(), theirs.hexdigest()
    return report


def rows_of(connection: Connection, table: Table, cut: int | None) -> Iterator[tuple]:
    """A table's rows, in no order; history cut at a position when asked."""
    columns = [c for c in table.columns]
    query = select(*columns)
    if cut is not None:
        query = query.where(table.c.from_position <= cut)
    for row in connection.execute(query):
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
    events, _ = rebuild(audit, ledger.engine, fresh, built_to, progress)

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
