"""The factored tables held in memory while a whole log is replayed.

A replay applies the same handlers as the live projection (LedgerTables) to
this sink instead of to SQL, then writes every table in bulk: one statement
per event is what makes a replay slow, not the events. History rows that
close are written out in chunks as they go, so memory holds little more
than the current state: rows are plain lists in column order, and the same
id, kind or selector text is kept once however many rows name it.
"""

from __future__ import annotations

from typing import Any, Iterable

from sqlalchemy import String, Table, Text
from sqlalchemy.engine import Connection

from projections.tables import HOLDER_STATE, LedgerSchema

CHUNK = 20_000


class MemoryTable:
    """Rows by key (for history tables: the open rows), with hash indexes on
    the columns that row changes select by."""

    def __init__(
        self, table: Table, key: tuple[str, ...], indexed: tuple[str, ...] = ()
    ) -> None:
        self.table = table
        self.columns = [column.name for column in table.columns]
        self.at = {name: number for number, name in enumerate(self.columns)}
        self.key = key
        self.key_at = [self.at[c] for c in key]
        # Columns holding ids, kinds, selectors and names: worth keeping once.
        self.text_at = [
            n
            for n, column in enumerate(table.columns)
            if isinstance(column.type, (String, Text))
        ]
        self.rows: dict[tuple, list[Any]] = {}
        self.indexes: dict[int, dict[Any, set[tuple]]] = {self.at[c]: {} for c in indexed}

    def add(self, row: list[Any]) -> None:
        key = tuple(row[n] for n in self.key_at)
        self.rows[key] = row
        for number, index in self.indexes.items():
            index.setdefault(row[number], set()).add(key)

    def remove(self, key: tuple) -> list[Any]:
        row = self.rows.pop(key)
        for number, index in self.indexes.items():
            index[row[number]].discard(key)
        return row

    def matching(self, where: dict[str, Any]) -> list[tuple]:
        if tuple(where) == self.key:
            key = tuple(where[c] for c in self.key)
            return [key] if key in self.rows else []
        wanted = [(self.at[c], v) for c, v in where.items()]
        indexed = next(((n, v) for n, v in wanted if n in self.indexes), None)
        candidates = (
            self.indexes[indexed[0]].get(indexed[1], ()) if indexed else self.rows
        )
        return [
            k for k in list(candidates) if all(self.rows[k][n] == v for n, v in wanted)
        ]


class MemorySink:
    """The Sink of projections.tables, in memory, for one schema."""

    def __init__(self, schema: LedgerSchema, connection: Connection) -> None:
        from projections.replay import Digest

        self.s = schema
        self.connection = connection
        self.texts: dict[str, str] = {}
        self.written: dict[str, Digest] = {
            t.name: Digest() for t in schema.digest_tables()
        }
        self.closed: dict[str, list[list[Any]]] = {}
        self.tables = {
            memory.table.name: memory
            for memory in (
                MemoryTable(schema.resources, ("id",)),
                MemoryTable(schema.holders, ("id",)),
                MemoryTable(
                    schema.grants, ("holder_id", "kind", "selector"), ("holder_id",)
                ),
                MemoryTable(
                    schema.attachments,
                    ("holder_id", "group_id"),
                    ("holder_id", "group_id"),
                ),
                MemoryTable(schema.holder_history, ("holder_id",)),
                MemoryTable(
                    schema.grant_history,
                    ("holder_id", "kind", "selector"),
                    ("holder_id",),
                ),
                MemoryTable(
                    schema.attachment_history,
                    ("holder_id", "group_id"),
                    ("holder_id", "group_id"),
                ),
                MemoryTable(schema.resource_history, ("kind", "name")),
                MemoryTable(schema.admin_tokens, ("id",)),
            )
        }

    def of(self, table: Table) -> MemoryTable:
        return self.tables[table.name]

    def row(self, memory: MemoryTable, values: dict[str, Any]) -> list[Any]:
        """A row in column order, with every text kept once."""
        texts = self.texts
        return [
            texts.setdefault(v, v) if isinstance(v, str) else v
            for v in (values.get(c) for c in memory.columns)
        ]

    def insert(self, table: Table, rows: Any) -> None:
        memory = self.of(table)
        for values in [rows] if isinstance(rows, dict) else rows:
            memory.add(self.row(memory, values))

    def update(self, table: Table, where: dict, values: dict) -> None:
        memory = self.of(table)
        for key in memory.matching(where):
            row = memory.rows[key]
            for column, value in values.items():
                row[memory.at[column]] = value

    def delete(self, table: Table, where: dict) -> None:
        memory = self.of(table)
        for key in memory.matching(where):
            memory.remove(key)

    def close(self, table: Table, position: int, where: dict) -> None:
        memory = self.of(table)
        done = self.closed.setdefault(table.name, [])
        end = memory.at["to_position"]
        for key in memory.matching(where):
            row = memory.remove(key)
            row[end] = position
            done.append(row)
        if len(done) >= CHUNK:
            self.write(memory, done)
            done.clear()

    def copy_state(self, holder_id: str, position: int) -> None:
        holders = self.of(self.s.holders)
        holder = holders.rows[(holder_id,)]
        state = {name: holder[holders.at[name]] for name in HOLDER_STATE}
        history = self.of(self.s.holder_history)
        history.add(
            self.row(
                history, {"holder_id": holder_id, **state, "from_position": position}
            )
        )

    def update_resource(self, resource_id: str, values: dict) -> tuple[str, str]:
        self.update(self.s.resources, {"id": resource_id}, values)
        resources = self.of(self.s.resources)
        row = resources.rows[(resource_id,)]
        return row[resources.at["kind"]], row[resources.at["name"]]

    def finish(self) -> None:
        """Write every row still in memory."""
        for name, rows in self.closed.items():
            self.write(self.tables[name], rows)
        for memory in self.tables.values():
            self.write(memory, memory.rows.values())

    def write(self, memory: MemoryTable, rows: Iterable[list[Any]]) -> None:
        """Insert rows as plain tuples through the driver, a chunk at a time:
        building one statement per row is most of what a bulk insert costs
        otherwise. Each row also goes into the table's digest."""
        digest = self.written[memory.table.name]
        marker = (
            "%s" if self.connection.dialect.paramstyle in ("format", "pyformat") else "?"
        )
        statement = (
            f"INSERT INTO {memory.table.name} ({', '.join(memory.columns)}) "
            f"VALUES ({', '.join([marker] * len(memory.columns))})"
        )
        chunk: list[tuple] = []
        for row in rows:
            values = tuple(row)
            digest.add(values)
            chunk.append(values)
            if len(chunk) == CHUNK:
                self.connection.exec_driver_sql(statement, chunk)
                chunk = []
        if chunk:
            self.connection.exec_driver_sql(statement, chunk)

    def digests(self) -> dict[str, str]:
        return {name: digest.hex() for name, digest in self.written.items()}
