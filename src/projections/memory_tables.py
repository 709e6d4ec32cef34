"""The factored tables held in memory while a whole log is replayed.

A replay applies the same handlers as the live projection (LedgerTables) to
this sink instead of to SQL, then writes every table in bulk: one statement
per event is what makes a replay slow, not the events. History rows that
close are written out in chunks as they go, so memory holds little more
than the current state.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Connection

from projections.tables import HOLDER_STATE, LedgerSchema

CHUNK = 20_000


class MemoryTable:
    """Rows by key (for history tables: the open rows), with hash indexes on
    the columns that row changes select by."""

    def __init__(self, table: Table, key: tuple[str, ...], indexed: tuple[str, ...] = ()) -> None:
        self.table = table
        self.key = key
        self.columns = [column.name for column in table.columns]
        self.rows: dict[tuple, dict[str, Any]] = {}
        self.indexes: dict[str, dict[Any, set[tuple]]] = {c: {} for c in indexed}

    def add(self, row: dict[str, Any]) -> None:
        full = {column: row.get(column) for column in self.columns}
        key = tuple(full[c] for c in self.key)
        self.rows[key] = full
        for column, index in self.indexes.items():
            index.setdefault(full[column], set()).add(key)

    def remove(self, key: tuple) -> dict[str, Any]:
        row = self.rows.pop(key)
        for column, index in self.indexes.items():
            index[row[column]].discard(key)
        return row

    def matching(self, where: dict[str, Any]) -> list[tuple]:
        if tuple(where) == self.key:
            key = tuple(where[c] for c in self.key)
            return [key] if key in self.rows else []
        column = next((c for c in where if c in self.indexes), None)
        candidates = self.indexes[column].get(where[column], ()) if column else self.rows
        return [k for k in list(candidates)
                if all(self.rows[k][c] == v for c, v in where.items())]


class MemorySink:
    """The Sink of projections.tables, in memory, for one schema."""

    def __init__(self, schema: LedgerSchema, connection: Connection) -> None:
        from projections.replay import Digest

        self.s = schema
        self.connection = connection
        self.written: dict[str, Digest] = {t.name: Digest() for t in schema.digest_tables()}
        self.closed: dict[Table, list[dict[str, Any]]] = {}
        self.tables = {
            t.table.name: t for t in (
                MemoryTable(schema.resources, ("id",)),
                MemoryTable(schema.holders, ("id",)),
                MemoryTable(schema.grants, ("holder_id", "kind", "selector"), ("holder_id",)),
                MemoryTable(schema.attachments, ("holder_id", "group_id"),
                            ("holder_id", "group_id")),
                MemoryTable(schema.holder_history, ("holder_id",)),
                MemoryTable(schema.grant_history, ("holder_id", "kind", "selector"),
                            ("holder_id",)),
                MemoryTable(schema.attachment_history, ("holder_id", "group_id"),
                            ("holder_id", "group_id")),
                MemoryTable(schema.resource_history, ("kind", "name")),
            )
        }

    def of(self, table: Table) -> MemoryTable:
        return self.tables[table.name]

    def insert(self, table: Table, rows: Any) -> None:
        for row in [rows] if isinstance(rows, dict) else rows:
            self.of(table).add(row)

    def update(self, table: Table, where: dict, values: dict) -> None:
        memory = self.of(table)
        for key in memory.matching(where):
            memory.rows[key].update(values)

    def delete(self, table: Table, where: dict) -> None:
        memory = self.of(table)
        for key in memory.matching(where):
            memory.remove(key)

    def close(self, table: Table, position: int, where: dict) -> None:
        memory = self.of(table)
        done = self.closed.setdefault(table, [])
        for key in memory.matching(where):
            row = memory.remove(key)
            row["to_position"] = position
            done.append(row)
        if len(done) >= CHUNK:
            self.write(table, done)
            done.clear()

    def copy_state(self, holder_id: str, position: int) -> None:
        holder = self.of(self.s.holders).rows[(holder_id,)]
        state = {name: holder[name] for name in HOLDER_STATE}
        self.of(self.s.holder_history).add(
            {"holder_id": holder_id, **state, "from_position": position})

    def update_resource(self, resource_id: str, values: dict) -> tuple[str, str]:
        row = self.of(self.s.resources).rows[(resource_id,)]
        row.update(values)
        return row["kind"], row["name"]

    def finish(self) -> None:
        """Write every row still in memory."""
        for table, rows in self.closed.items():
            self.write(table, rows)
        for memory in self.tables.values():
            self.write(memory.table, list(memory.rows.values()))

    def write(self, table: Table, rows: list[dict[str, Any]]) -> None:
        """Insert rows as plain tuples through the driver: building one
        statement per row is most of what a bulk insert costs otherwise."""
        columns = [column.name for column in table.columns]
        values = [tuple(row[c] for c in columns) for row in rows]
        digest = self.written[table.name]
        for row in values:
            digest.add(row)
        marker = "%s" if self.connection.dialect.paramstyle in ("format", "pyformat") else "?"
        statement = (f"INSERT INTO {table.name} ({', '.join(columns)}) "
                     f"VALUES ({', '.join([marker] * len(columns))})")
        for start in range(0, len(values), CHUNK):
            self.connection.exec_driver_sql(statement, values[start:start + CHUNK])

    def digests(self) -> dict[str, str]:
        return {name: digest.hex() for name, digest in self.written.items()}
