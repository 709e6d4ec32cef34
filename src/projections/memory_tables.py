"""The factored tables held in memory while a whole log is replayed.

A replay applies the same handlers as the live projection (LedgerTables) to
this sink instead of to SQL, then writes every table in bulk: one statement
per event is what makes a replay slow, not the events. History rows that
close are written out in chunks as they go, so memory holds little more
than the current state: rows are plain lists in column order, and the same
id, kind or selector text is kept once however many rows name it.
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any, Iterable

from sqlalchemy import Table

from projections.tables import HOLDER_STATE, LedgerSchema

CHUNK = 5_000
# Up to this many keys of one value are kept in a list rather than a set.
FEW = 16


SHARED_TEXT = {"id", "holder_id", "group_id", "team_id", "type", "kind", "selector"}


class KeyIndex:
    """The keys of the rows holding each value of one column.

    Most values (a holder's id, say) are held by one row or a few, so a lone
    key is stored as itself, a few keys as a list, and a set is made only
    past that: a hundred thousand small sets would cost more than the rows
    they index.
    """

    def __init__(self) -> None:
        self.keys: dict[Any, Any] = {}

    def add(self, value: Any, key: Any) -> None:
        held = self.keys.get(value)
        if held is None:
            self.keys[value] = key
        elif isinstance(held, set):
            held.add(key)
        elif not isinstance(held, list):
            self.keys[value] = [held, key]
        elif len(held) < FEW:
            held.append(key)
        else:
            self.keys[value] = {*held, key}

    def discard(self, value: Any, key: Any) -> None:
        held = self.keys.get(value)
        if isinstance(held, set):
            held.discard(key)
        elif isinstance(held, list):
            if key in held:
                held.remove(key)
        elif held == key:
            del self.keys[value]

    def get(self, value: Any) -> Iterable[Any]:
        held = self.keys.get(value)
        if held is None:
            return ()
        return held if isinstance(held, (set, list)) else (held,)


class MemoryTable:
    """Rows by key (for history tables: the open rows), with hash indexes on
    the columns that row changes select by. A history table whose open rows
    always have the same keys as a table of current state (a grant's open
    interval, say, and the grant) borrows that table's indexes instead of
    keeping a copy."""

    def __init__(
        self,
        table: Table,
        key: tuple[str, ...],
        indexed: tuple[str, ...] = (),
        borrowed_from: MemoryTable | None = None,
    ) -> None:
        self.table = table
        self.columns = [column.name for column in table.columns]
        self.at = {name: number for number, name in enumerate(self.columns)}
        self.key = key
        # A one-column key is the value itself, not a one-element tuple.
        self.key_of_row = itemgetter(*[self.at[c] for c in key])
        self.key_of_where = itemgetter(*key)
        # Ids, kinds, selectors and names repeat from row to row and table to
        # table: worth keeping once. Times and hashes are unique to their row.
        self.shared_at = [n for n, c in enumerate(self.columns) if c in SHARED_TEXT]
        self.rows: dict[Any, list[Any]] = {}
        self.indexes: dict[int, KeyIndex] = {self.at[c]: KeyIndex() for c in indexed}
        self.lookups = borrowed_from.indexes if borrowed_from else self.indexes

    def add(self, row: list[Any]) -> None:
        key = self.key_of_row(row)
        self.rows[key] = row
        for number, index in self.indexes.items():
            index.add(row[number], key)

    def remove(self, key: Any) -> list[Any]:
        row = self.rows.pop(key)
        for number, index in self.indexes.items():
            index.discard(row[number], key)
        return row

    def matching(self, where: dict[str, Any]) -> list[Any]:
        if tuple(where) == self.key:
            key = self.key_of_where(where)
            return [key] if key in self.rows else []
        wanted = [(self.at[c], v) for c, v in where.items()]
        indexed = next(((n, v) for n, v in wanted if n in self.lookups), None)
        candidates = self.lookups[indexed[0]].get(indexed[1]) if indexed else self.rows
        rows = self.rows
        return [
            k
            for k in list(candidates)
            if k in rows and all(rows[k][n] == v for n, v in wanted)
        ]

    def open_rows(self) -> Iterable[list[Any]]:
        return self.rows.values()


class OpenHolderIntervals:
    """The open rows of holder history, kept as where each one started.

    An open interval's state is always the holder's current state (the
    projection closes an interval before it changes the holder, and starts
    the next from the changed row), so the row itself is rebuilt from the
    holder's row when it closes or is written: two hundred thousand copies
    of every holder's state would be most of a replay's memory otherwise.
    """

    def __init__(self, table: Table, holders: MemoryTable) -> None:
        self.table = table
        self.columns = [column.name for column in table.columns]
        self.at = {name: number for number, name in enumerate(self.columns)}
        self.holders = holders
        self.started: dict[str, int] = {}
        # Of the rows given to `add`, only the holder's id is kept.
        self.shared_at = [self.at["holder_id"]]

    def add(self, row: list[Any]) -> None:
        self.started[row[self.at["holder_id"]]] = row[self.at["from_position"]]

    def remove(self, holder_id: str) -> list[Any]:
        return self.row_of(holder_id, self.started.pop(holder_id))

    def matching(self, where: dict[str, Any]) -> list[str]:
        holder_id = where["holder_id"]
        return [holder_id] if holder_id in self.started else []

    def open_rows(self) -> Iterable[list[Any]]:
        return (self.row_of(h, start) for h, start in self.started.items())

    def row_of(self, holder_id: str, start: int) -> list[Any]:
        holder = self.holders.rows[holder_id]
        at = self.holders.at
        values = {
            "holder_id": holder_id,
            **{name: holder[at[name]] for name in HOLDER_STATE},
            "from_position": start,
            "to_position": None,
        }
        return [values[c] for c in self.columns]


class MemorySink:
    """The Sink of projections.tables, in memory, for one schema. Rows leave
    it as tuples, a chunk at a time, through `writer.write(table, rows)`."""

    def __init__(self, schema: LedgerSchema, writer: Any) -> None:
        self.s = schema
        self.writer = writer
        self.texts: dict[str, str] = {}
        self.closed: dict[str, list[list[Any]]] = {}
        holders = MemoryTable(schema.holders, ("id",))
        grants = MemoryTable(
            schema.grants, ("holder_id", "kind", "selector"), ("holder_id",)
        )
        attachments = MemoryTable(
            schema.attachments, ("holder_id", "group_id"), ("holder_id", "group_id")
        )
        self.tables: dict[str, MemoryTable | OpenHolderIntervals] = {
            memory.table.name: memory
            for memory in (
                MemoryTable(schema.resources, ("id",)),
                holders,
                grants,
                attachments,
                OpenHolderIntervals(schema.holder_history, holders),
                MemoryTable(
                    schema.grant_history,
                    ("holder_id", "kind", "selector"),
                    borrowed_from=grants,
                ),
                MemoryTable(
                    schema.attachment_history,
                    ("holder_id", "group_id"),
                    borrowed_from=attachments,
                ),
                MemoryTable(schema.resource_history, ("kind", "name")),
                MemoryTable(schema.admin_tokens, ("id",)),
            )
        }

    def of(self, table: Table) -> Any:
        return self.tables[table.name]

    def row(self, memory: Any, values: dict[str, Any]) -> list[Any]:
        """A row in column order, with every text kept once."""
        row = [values.get(c) for c in memory.columns]
        texts = self.texts
        for n in memory.shared_at:
            if row[n] is not None:
                row[n] = texts.setdefault(row[n], row[n])
        return row

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
        holder = holders.rows[holder_id]
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
        row = resources.rows[resource_id]
        return row[resources.at["kind"]], row[resources.at["name"]]

    def finish(self) -> None:
        """Write every row still in memory."""
        for name, rows in self.closed.items():
            self.write(self.tables[name], rows)
        for memory in self.tables.values():
            self.write(memory, memory.open_rows())

    def write(self, memory: Any, rows: Iterable[list[Any]]) -> None:
        name = str(memory.table.name)
        chunk: list[tuple] = []
        for row in rows:
            chunk.append(tuple(row))
            if len(chunk) == CHUNK:
                self.writer.write(name, chunk)
                chunk = []
        if chunk:
            self.writer.write(name, chunk)
