"""The event log as auditors read it: one flat record per event.

Records come straight from the event store, decoded by the application's
mapper, in position order. A key's secret or admin token is never in an
event; their hashes are left out of these records too, since nobody reading
an audit needs them.
"""

from __future__ import annotations

import csv
import io
import json
from bisect import bisect_left
from datetime import datetime
from functools import cache
from typing import Any, Callable, Iterator
from uuid import UUID

import orjson
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import resolve_topic
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from domain.rules import text_of
from projections.tables import LIVE, timestamp_of

COLUMNS = ("position", "type", "holder", "at", "actor", "reason", "data")
PAGE = 1000
# The most events one page by actor reads before it answers.
ACTOR_SCAN = 20_000

# Fields every event has; the rest of an event is its data.
ENVELOPE = {
    "originator_id",
    "originator_version",
    "timestamp",
    "actor",
    "reason",
    "originator_topic",
    "secret_hash",
    "token_hash",
}
AGGREGATE_NAMES = {"group": "AccessGroup", "team": "Team", "key": "Key"}


class AuditLog:
    def __init__(
        self,
        app: Any,
        engine: Engine,
        holder_type: Callable[[str], str | None] = lambda _: None,
    ) -> None:
        self.app = app
        self.engine = engine
        self.records = app.recorder.events_record_cls
        self.events_table = str(self.records.__table__.name)
        self.commits = LIVE.commits
        # Events shared by every holder are defined once, on `Holder` or
        # `Principal`; the answer names the holder's own aggregate instead.
        self.holder_type = holder_type

    def rows(
        self, after: int, limit: int, holder: UUID | None = None, until: int | None = None
    ) -> list[Any]:
        """Stored events after a position, oldest first."""
        with self.engine.connect() as connection:
            return list(
                connection.execute(
                    events_after(self.records, after, limit, until, holder)
                )
            )

    def events(
        self, after: int, limit: int, holder: UUID | None = None, until: int | None = None
    ) -> list[dict[str, Any]]:
        rows = self.rows(after, limit, holder, until)
        times = self.commit_times(rows)
        return [self.record(row, times) for row in rows]

    def page(
        self,
        after: int,
        limit: int,
        holder: UUID | None = None,
        until: int | None = None,
        actor: str | None = None,
    ) -> tuple[list[dict[str, Any]], int | None]:
        """A page of events and where the next one starts (None at the end).

        The actor lives inside each event's stored state, where the store
        cannot search, so a page by actor reads the log in order and looks
        at no more than ACTOR_SCAN events: it may hold fewer than `limit`
        events, even none, with a `next_after` to go on from.
        """
        if actor is None:
            items = self.events(after, limit, holder, until)
            return items, items[-1]["position"] if len(items) == limit else None

        found: list[dict[str, Any]] = []
        scanned = 0
        while scanned < ACTOR_SCAN:
            batch = self.events(after, PAGE, holder, until)
            for item in batch:
                after = item["position"]
                if item["actor"] == actor:
                    found.append(item)
                    if len(found) == limit:
                        return found, after
            if len(batch) < PAGE:
                return found, None
            scanned += len(batch)
        return found, after

    def commit_times(self, rows: list[Any]) -> tuple[list[int], list[float]]:
        """When the commands of these events committed, by the store's clock:
        the `at` that an as-of question takes back to exactly this event."""
        if not rows:
            return [], []
        commits = self.commits
        query = (
            select(commits.c.position, commits.c.committed_at)
            .where(commits.c.position >= rows[0].id, commits.c.position <= rows[-1].id)
            .order_by(commits.c.position)
        )
        with self.engine.connect() as connection:
            found = list(connection.execute(query))
            later = connection.execute(
                select(commits.c.position, commits.c.committed_at)
                .where(commits.c.position > rows[-1].id)
                .order_by(commits.c.position)
                .limit(1)
            ).first()
        if later is not None:
            found.append(later)
        return [r.position for r in found], [r.committed_at for r in found]

    def stream(
        self, after: int = 0, until: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every event in the range, a page at a time: memory stays flat."""
        while True:
            page = self.events(after, PAGE, until=until)
            yield from page
            if len(page) < PAGE:
                return
            after = page[-1]["position"]

    def head(self, connection: Any) -> int:
        return int(connection.execute(select(func.max(self.records.id))).scalar() or 0)

    def decode(self, row: Any) -> Any:
        """The domain event of a stored row.

        The library's mapper decodes JSON through an object hook called for
        every object, which is most of what a replay of a long log costs. Our
        events hold plain JSON except their timestamp, so they are read with
        orjson and the timestamp is parsed by hand; anything else (another
        encoded type, an upcast class version) goes through the mapper.
        """
        state = bytes(row.state)
        fields = orjson.loads(state)
        stamp = fields.get("timestamp")
        cls = event_class(row.topic)
        if (
            state.count(b'"_type_"') != 1
            or not isinstance(stamp, dict)
            or stamp.get("_type_") != "datetime_iso"
            or "class_version" in fields
            or getattr(cls, "class_version", 1) != 1
        ):
            return self.decode_by_mapper(row, state)

        fields["timestamp"] = datetime.fromisoformat(stamp["_data_"])
        fields["originator_id"] = row.originator_id
        fields["originator_version"] = row.originator_version
        event = object.__new__(cls)
        object.__setattr__(event, "__dict__", fields)
        return event

    def decode_by_mapper(self, row: Any, state: bytes) -> Any:
        stored = StoredEvent(
            originator_id=row.originator_id,
            originator_version=row.originator_version,
            topic=row.topic,
            state=state,
        )
        return self.app.mapper.to_domain_event(stored)

    def record(self, row: Any, times: tuple[list[int], list[float]]) -> dict[str, Any]:
        event = self.decode(row)
        positions, moments = times
        at = bisect_left(positions, row.id)
        data = {k: plain(v) for k, v in vars(event).items() if k not in ENVELOPE}
        return {
            "position": row.id,
            "type": self.event_type(row.topic, str(row.originator_id)),
            "holder": str(row.originator_id),
            "at": text_of(moments[at]) if at < len(moments) else timestamp_of(event),
            "actor": getattr(event, "actor", None),
            "reason": getattr(event, "reason", None),
            "data": data,
        }

    def event_type(self, topic: str, holder_id: str) -> str:
        """`domain.aggregates:Holder.GrantsAdded` -> `AccessGroup.GrantsAdded`."""
        defined_on, _, name = topic.rpartition(":")[2].partition(".")
        if defined_on in ("Holder", "Principal"):
            defined_on = AGGREGATE_NAMES.get(
                self.holder_type(holder_id) or "", defined_on
            )
        return f"{defined_on}.{name}"


def events_after(
    records: Any,
    after: int,
    limit: int,
    until: int | None = None,
    holder: UUID | None = None,
) -> Any:
    """The query for stored events after a position, oldest first, with the
    columns a domain event is decoded from."""
    query = select(
        records.id,
        records.originator_id,
        records.originator_version,
        records.topic,
        records.state,
    ).where(records.id > after)
    if until is not None:
        query = query.where(records.id <= until)
    if holder is not None:
        query = query.where(records.originator_id == holder)
    return query.order_by(records.id).limit(limit)


@cache
def event_class(topic: str) -> type:
    return resolve_topic(topic)


def plain(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, UUID):
        return str(value)
    return value


def as_jsonl(records: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    for record in records:
        yield (json.dumps(record, ensure_ascii=False, sort_keys=False) + "\n").encode()


def as_csv(records: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    for number, record in enumerate(records):
        row = [record[c] for c in COLUMNS[:-1]]
        writer.writerow(
            [*row, json.dumps(record["data"], ensure_ascii=False, sort_keys=True)]
        )
        if number % 200 == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()
