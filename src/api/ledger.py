"""The application service: every command and question of the ledger.

A command runs in one transaction: it takes the writer turn (one row whose
update serialises writers across processes on both stores), brings the
access index up to the store's head, checks the rules, records the events
through the eventsourcing application and applies them to the factored
tables in the same transaction. Questions compare the index with the store's
head first and catch up when behind, so an answer never predates a write
that has already returned, whichever process made it.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
from collections import OrderedDict
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar
from uuid import UUID

import sqlalchemy.exc
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError
from sqlalchemy import event, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from api.store import FACTORY_TOPIC, LogReader
from domain.aggregates import (
    ROLES,
    AccessGroup,
    AdminToken,
    CatalogResource,
    Change,
    Key,
    NameClaim,
    Team,
    name_claim_id,
    resource_id,
)
from domain.errors import Conflict, InvalidRequest, NotFound, NotReady, VersionMismatch
from domain.resources import (
    GrantMap,
    check_description,
    check_grant_map,
    check_kind,
    check_name,
    check_restriction,
    normalise_name,
)
from domain.rules import canonical_time, check_catalog_selectors
from projections.access_index import AccessIndex, HolderEntry
from projections.audit import AuditLog
from projections.loading import load_index
from projections.tables import LIVE, LedgerTables, control, writer_turn

R = TypeVar("R")

APPLICATION_NAME = "accessledger"
WRITE_ATTEMPTS = 8
REMEMBERED_AGGREGATES = 20_000
CATCH_UP_PAGE = 2000
# Marks a PATCH field the caller left out, as opposed to one set to null.
UNSET: Any = object()
# Any fixed number: it only has to be the same in every process.
SCHEMA_LOCK_ID = 7_355_608


class LedgerApplication(Application[UUID]):
    name = APPLICATION_NAME


def hash_secret(secret: str) -> str:
    # surrogatepass: a malformed secret is simply unknown, never an error.
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def new_key_secret() -> str:
    """`sk-` and 43 URL-safe characters: 256 bits from the OS generator."""
    return "sk-" + secrets.token_urlsafe(32)


class Unit:
    """What one command sees and collects inside its transaction."""

    def __init__(self, ledger: Ledger, change: Change) -> None:
        self.ledger = ledger
        self.index = ledger.index
        self.change = change
        self.pending: dict[UUID, Aggregate] = {}

    def add(self, *aggregates: Aggregate) -> None:
        for aggregate in aggregates:
            self.pending[aggregate.id] = aggregate

    def get(self, aggregate_id: UUID) -> Any:
        if aggregate_id in self.pending:
            return self.pending[aggregate_id]
        aggregate = self.ledger.load(aggregate_id)
        self.pending[aggregate_id] = aggregate
        return aggregate

    def holder(self, type_: str, holder_id: str, if_match: int | None = None) -> Any:
        """A live holder's aggregate, checked against `If-Match` when given."""
        live_holder(self.index, type_, holder_id)
        aggregate = self.get(UUID(holder_id))
        if if_match is not None and aggregate.version != if_match:
            raise VersionMismatch(
                f"{type_} {holder_id} is at version {aggregate.version}, not {if_match}"
            )
        return aggregate

    def claim_name(self, scope: str, name: str, holder_id: UUID) -> None:
        normalised = normalise_name(name)
        try:
            claim = self.get(name_claim_id(scope, normalised))
        except AggregateNotFoundError:
            claim = NameClaim(
                scope=scope,
                normalised_name=normalised,
                actor=self.change.actor,
                reason=self.change.reason,
            )
            self.add(claim)
        claim.claim(str(holder_id), self.change)

    def release_name(self, scope: str, name: str, holder_id: UUID) -> None:
        claim = self.get(name_claim_id(scope, normalise_name(name)))
        claim.release(str(holder_id), self.change)

    def rename(self, scope: str, aggregate: Any, old: str, new: str) -> None:
        if normalise_name(old) != normalise_name(new):
            self.claim_name(scope, new, aggregate.id)
            self.release_name(scope, old, aggregate.id)

    def check_catalog(self, *grant_maps: GrantMap | None) -> None:
        for grant_map in grant_maps:
            if grant_map:
                check_catalog_selectors(grant_map, self.index.resource_status)

    def live_groups(self, group_ids: list[str]) -> list[str]:
        for group_id in group_ids:
            live_holder(self.index, "group", group_id)
        return sorted(set(group_ids))


@dataclass
class Batch:
    """The transaction of a batch, and the last position of each command in it."""

    session: Session
    commits: list[int] = field(default_factory=list)


def live_holder(index: AccessIndex, type_: str, holder_id: str) -> HolderEntry:
    entry = index.holders.get(holder_id) if isinstance(holder_id, str) else None
    if entry is None or entry.type != type_ or entry.deleted:
        raise NotFound(f"no {TYPE_WORDS[type_]} with id {holder_id!r}")
    return entry


TYPE_WORDS = {"group": "access group", "team": "team", "key": "key"}
SCOPES = {"group": "access-group", "team": "team", "admin-token": "admin-token"}
# The master key's actor name: no admin token may take it.
RESERVED_ACTOR = "master"


class Ledger:
    """Commands and questions over one store, shared by every route and the CLI."""

    def __init__(self, database_url: str, with_index: bool = True) -> None:
        """`with_index=False` opens the store alone, for tools that read the
        log (replay, export) and need no read model in memory."""
        self.database_url = database_url
        self.with_index = with_index
        create_private_file(database_url)
        self.types_from_tables: dict[str, str] | None = None
        self.app = LedgerApplication(env=application_env(database_url))
        self.engine: Engine = self.app.recorder.datastore.engine  # type: ignore[attr-defined]
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", tune_sqlite)
        self.events_table = self.app.recorder.events_table_name  # type: ignore[attr-defined]
        self.tables = LedgerTables()
        self.log = LogReader(self.engine, self.app.recorder.events_record_cls)  # type: ignore[attr-defined]
        self.audit = AuditLog(self.app, self.engine, self.holder_type)
        # One writer per process waits for the writer turn at a time, so that
        # writers queueing for it never hold every pooled connection.
        self.write_lock = threading.Lock()
        # Re-entrant: a batch holds it while its writer turn catches up.
        self.catch_up_lock = threading.RLock()
        self.aggregates: OrderedDict[UUID, Any] = OrderedDict()
        self.current_batch: ContextVar[Batch | None] = ContextVar("batch", default=None)
        self.create_schema()
        self.index = AccessIndex()
        if with_index:
            with self.engine.connect() as connection:
                self.index = load_index(connection)
            self.catch_up()

    # -- set-up ----------------------------------------------------------

    def create_schema(self) -> None:
        """Create every table once, even when replicas start together."""
        with self.schema_lock():
            self.app.recorder.create_table()  # type: ignore[attr-defined]
            LIVE.metadata.create_all(self.engine)
            control.create_all(self.engine)
            with self.engine.begin() as connection:
                if connection.execute(select(writer_turn.c.id)).first() is None:
                    connection.execute(writer_turn.insert().values(id=1, turn=0))

    @contextmanager
    def schema_lock(self) -> Iterator[None]:
        if self.engine.dialect.name != "postgresql":
            yield
            return
        with self.engine.connect() as connection:
            connection.execute(text(f"SELECT pg_advisory_lock({SCHEMA_LOCK_ID})"))
            try:
                yield
            finally:
                connection.execute(text(f"SELECT pg_advisory_unlock({SCHEMA_LOCK_ID})"))
                connection.commit()

    def holder_type(self, holder_id: str) -> str | None:
        entry = self.index.holders.get(holder_id)
        if entry is not None or self.with_index:
            return None if entry is None else entry.type
        if self.types_from_tables is None:
            holders = LIVE.holders
            with self.engine.connect() as connection:
                rows = connection.execute(select(holders.c.id, holders.c.type))
                self.types_from_tables = {row.id: row.type for row in rows}
        return self.types_from_tables.get(holder_id)

    def close(self) -> None:
        self.log.close()
        self.app.close()
        self.engine.dispose()

    # -- keeping the index current ---------------------------------------

    def head(self) -> int:
        """The position of the newest committed event (0 on an empty store)."""
        try:
            return self.log.head()
        except Exception as error:
            raise NotReady("the store cannot be reached") from error

    def catch_up(self) -> int:
        """Apply every committed event the index has not seen; answer the head."""
        head = self.head()
        if not self.with_index:
            return head
        if head <= self.index.position:
            return self.index.position
        with self.catch_up_lock, self.index.lock:
            while self.index.position < head:
                rows = self.read_log(self.index.position, head)
                if not rows:
                    break
                self.index.apply((self.audit.decode(row), row.id) for row in rows)
            # Ids may have gaps; the head itself is always a committed event.
            self.index.position = max(self.index.position, head)
        return self.index.position

    def read_log(self, position: int, head: int) -> list[Any]:
        try:
            return self.log.rows_after(position, head, CATCH_UP_PAGE)
        except Exception as error:
            raise NotReady("the store cannot be reached") from error

    def current(self) -> int:
        """Bring the index up to the store's head; answer its position.
        Waiting for a `min_position` ahead is the routes' job (`api.http`),
        which wait without holding a thread."""
        return self.catch_up()

    # -- running a command -----------------------------------------------

    def write(self, change: Change, command: Callable[[Unit], R]) -> tuple[R, int]:
        """Run a command in its own transaction (or the current batch's);
        retry it when a concurrent transaction won."""
        batch = self.current_batch.get()
        if batch is not None:
            result, events = self.run_command(batch.session, change, command)
            self.index.apply(events)
            if events:
                batch.commits.append(events[-1][1])
            return result, self.index.position

        with self.write_lock:
            for _ in range(WRITE_ATTEMPTS):
                try:
                    return self.write_once(change, command)
                except (IntegrityError, sqlalchemy.exc.IntegrityError):
                    continue
        raise Conflict("the change kept conflicting with concurrent changes; try again")

    def write_once(self, change: Change, command: Callable[[Unit], R]) -> tuple[R, int]:
        with self.writer_turn() as session:
            seen = self.index.position
            result, events = self.run_command(session, change, command)
            if events:
                self.tables.commit(session, [events[-1][1]])
        return result, self.applied(events, seen)

    @contextmanager
    def writer_turn(self) -> Iterator[Session]:
        """A write transaction that no other writer, in any process, overlaps,
        with the index brought up to the store's head inside it."""
        with self.app.recorder.transaction(commit=True) as session:  # type: ignore[attr-defined]
            session.execute(update(writer_turn).values(turn=writer_turn.c.turn + 1))
            self.catch_up()
            yield session

    def run_command(
        self, session: Session, change: Change, command: Callable[[Unit], R]
    ) -> tuple[R, list[tuple[Any, int]]]:
        unit = Unit(self, change)
        try:
            result = command(unit)
            recordings = self.app.save(*unit.pending.values())
        except BaseException:
            self.forget(unit)
            raise

        events = [(r.domain_event, r.notification.id) for r in recordings]
        self.tables.apply(session, events)
        for aggregate_id, aggregate in unit.pending.items():
            self.remember(aggregate_id, aggregate)
        return result, events

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Run the commands inside in one transaction, as one writer turn.

        For bulk loading: each command still sees the ones before it (the
        index is updated as they go, under its lock, so no reader sees the
        batch before it commits). A command that raises a rule error records
        nothing and the batch goes on; any other error undoes the whole
        batch, and the index is then reloaded from the committed tables.
        """
        # The catch-up lock before the index's, the order catch_up takes
        # them in: a reader catching up meanwhile would otherwise hold the
        # first and wait for the second while this batch does the opposite.
        with self.write_lock, self.catch_up_lock, self.index.lock:
            try:
                with self.writer_turn() as session:
                    batch = Batch(session)
                    token = self.current_batch.set(batch)
                    try:
                        yield
                    finally:
                        self.current_batch.reset(token)
                    self.tables.commit(session, batch.commits)
            except BaseException:
                self.reload()
                raise

    def reload(self) -> None:
        self.aggregates.clear()
        with self.engine.connect() as connection:
            self.index = load_index(connection)
        self.catch_up()

    def load(self, aggregate_id: UUID) -> Any:
        """An aggregate at its latest version, from memory when that is safe.

        Commands run with the index at the store's head, so a remembered
        aggregate whose version equals the index's is current; anything else
        (name claims, which the index does not follow) is read from the store.
        """
        remembered = self.aggregates.get(aggregate_id)
        if remembered is not None:
            if remembered.version == self.index.version_of(str(aggregate_id)):
                self.aggregates.move_to_end(aggregate_id)
                return remembered
            del self.aggregates[aggregate_id]
        return self.app.repository.get(aggregate_id)

    def remember(self, aggregate_id: UUID, aggregate: Any) -> None:
        self.aggregates[aggregate_id] = aggregate
        if len(self.aggregates) > REMEMBERED_AGGREGATES:
            self.aggregates.popitem(last=False)

    def forget(self, unit: Unit) -> None:
        """A command that raised may have changed aggregates in memory."""
        for aggregate_id in unit.pending:
            self.aggregates.pop(aggregate_id, None)

    def applied(self, events: list[tuple[Any, int]], seen: int) -> int:
        """Put a committed command's own events in the index; answer its position.

        While the command held the writer turn nobody else could commit, so
        the index is either still at `seen` (apply the events here) or has
        already read them from the store.
        """
        if not events:
            return self.catch_up()
        with self.index.lock:
            if self.index.position == seen:
                self.index.apply(events)
        return events[-1][1]

    # -- catalog ---------------------------------------------------------

    def register_resource(
        self, kind: str, name: str, description: str | None, change: Change
    ) -> tuple[bool, int]:
        check_kind(kind)
        check_name(name)
        if description is not None:
            check_description(description)

        def command(unit: Unit) -> bool:
            if unit.index.resources[kind].get(name) is None:
                unit.add(
                    CatalogResource(
                        kind=kind,
                        name=name,
                        description=description or "",
                        actor=change.actor,
                        reason=change.reason,
                    )
                )
                return True
            unit.get(resource_id(kind, name)).register_again(description, change)
            return False

        return self.write(change, command)

    def retire_resource(self, kind: str, name: str, change: Change) -> int:
        check_kind(kind)

        def command(unit: Unit) -> None:
            if unit.index.resources[kind].get(name) is None:
                raise NotFound(f"no {kind} named {name!r} in the catalog")
            unit.get(resource_id(kind, name)).retire(change)

        return self.write(change, command)[1]

    def sync_catalog(
        self, kind: str, names: list[str], retire_missing: bool, change: Change
    ) -> tuple[dict[str, int], int]:
        """Make the active catalog of one kind hold `names`, in one transaction."""
        check_kind(kind)
        wanted = {check_name(name, "name in names") for name in names}

        def command(unit: Unit) -> dict[str, int]:
            counts = {"registered": 0, "retired": 0, "unchanged": 0}
            known = unit.index.resources[kind]
            for name in sorted(wanted):
                entry = known.get(name)
                if entry is not None and entry.active:
                    counts["unchanged"] += 1
                    continue
                counts["registered"] += 1
                if entry is None:
                    unit.add(
                        CatalogResource(
                            kind=kind,
                            name=name,
                            description="",
                            actor=change.actor,
                            reason=change.reason,
                        )
                    )
                else:
                    unit.get(resource_id(kind, name)).register_again(None, change)
            if retire_missing:
                for name, entry in known.items():
                    if entry.active and name not in wanted:
                        counts["retired"] += 1
                        unit.get(resource_id(kind, name)).retire(change)
            return counts

        return self.write(change, command)

    # -- access groups ---------------------------------------------------

    def create_group(
        self, name: str, description: str | None, grants: Any, change: Change
    ) -> tuple[str, int]:
        check_name(name, "name")
        description = check_description(description) if description is not None else ""
        grant_map = check_grant_map(grants)

        def command(unit: Unit) -> str:
            unit.check_catalog(grant_map)
            group = AccessGroup(
                name=name,
                description=description,
                grants=grant_map,
                actor=change.actor,
                reason=change.reason,
            )
            unit.claim_name(SCOPES["group"], name, group.id)
            unit.add(group)
            return str(group.id)

        return self.write(change, command)

    def update_group(
        self,
        group_id: str,
        change: Change,
        name: str | None = None,
        description: str | None = None,
        add: Any = None,
        remove: Any = None,
        if_match: int | None = None,
    ) -> int:
        if name is not None:
            check_name(name, "name")
        if description is not None:
            check_description(description)
        added, removed = check_grant_map(add, "add"), check_grant_map(remove, "remove")

        def command(unit: Unit) -> None:
            group = unit.holder("group", group_id, if_match)
            unit.check_catalog(added)
            if name is not None:
                unit.rename(SCOPES["group"], group, group.name, name)
                group.rename(name, change)
            if description is not None:
                group.describe(description, change)
            group.change_grants(added, removed, change)

        return self.write(change, command)[1]

    def delete_group(
        self, group_id: str, change: Change, if_match: int | None = None
    ) -> int:
        def command(unit: Unit) -> None:
            group = unit.holder("group", group_id, if_match)
            unit.release_name(SCOPES["group"], group.name, group.id)
            group.delete(change)

        return self.write(change, command)[1]

    # -- teams -----------------------------------------------------------

    def create_team(
        self, name: str, access_groups: list[str] | None, grants: Any, change: Change
    ) -> tuple[str, int]:
        check_name(name, "name")
        grant_map = check_grant_map(grants)
        group_ids = check_id_list(access_groups)

        def command(unit: Unit) -> str:
            unit.check_catalog(grant_map)
            team = Team(
                name=name,
                access_groups=unit.live_groups(group_ids),
                grants=grant_map,
                actor=change.actor,
                reason=change.reason,
            )
            unit.claim_name(SCOPES["team"], name, team.id)
            unit.add(team)
            return str(team.id)

        return self.write(change, command)

    def update_team(
        self,
        team_id: str,
        change: Change,
        name: str | None = None,
        add: Any = None,
        remove: Any = None,
        if_match: int | None = None,
    ) -> int:
        if name is not None:
            check_name(name, "name")
        added, removed = check_grant_map(add, "add"), check_grant_map(remove, "remove")

        def command(unit: Unit) -> None:
            team = unit.holder("team", team_id, if_match)
            unit.check_catalog(added)
            if name is not None:
                unit.rename(SCOPES["team"], team, team.name, name)
                team.rename(name, change)
            team.change_grants(added, removed, change)

        return self.write(change, command)[1]

    def delete_team(
        self, team_id: str, change: Change, if_match: int | None = None
    ) -> int:
        """Deleting a team deletes every key of the team, in the same transaction."""

        def command(unit: Unit) -> None:
            team = unit.holder("team", team_id, if_match)
            for key_id in sorted(unit.index.holders[team_id].members):
                unit.get(UUID(key_id)).delete(change)
            unit.release_name(SCOPES["team"], team.name, team.id)
            team.delete(change)

        return self.write(change, command)[1]

    # -- keys ------------------------------------------------------------

    def create_key(
        self,
        alias: str,
        change: Change,
        team_id: str | None = None,
        access_groups: list[str] | None = None,
        grants: Any = None,
        restrict: Any = None,
        expires_at: Any = None,
    ) -> tuple[tuple[str, str], int]:
        check_name(alias, "alias")
        grant_map = check_grant_map(grants)
        restriction = check_restriction(restrict)
        group_ids = check_id_list(access_groups)
        expiry = (
            canonical_time(expires_at, "expires_at") if expires_at is not None else None
        )
        if team_id is not None and not isinstance(team_id, str):
            raise InvalidRequest("team_id must be a string or null")
        secret = new_key_secret()

        def command(unit: Unit) -> str:
            unit.check_catalog(grant_map, restriction)
            if team_id is not None:
                live_holder(unit.index, "team", team_id)
            key = Key(
                alias=alias,
                team_id=team_id,
                access_groups=unit.live_groups(group_ids),
                grants=grant_map,
                restrict=restriction,
                expires_at=expiry,
                secret_hash=hash_secret(secret),
                actor=change.actor,
                reason=change.reason,
            )
            unit.add(key)
            return str(key.id)

        key_id, position = self.write(change, command)
        return (key_id, secret), position

    def update_key(
        self,
        key_id: str,
        change: Change,
        alias: str | None = None,
        add: Any = None,
        remove: Any = None,
        restrict: Any = UNSET,
        expires_at: Any = UNSET,
        if_match: int | None = None,
    ) -> int:
        if alias is not None:
            check_name(alias, "alias")
        added, removed = check_grant_map(add, "add"), check_grant_map(remove, "remove")
        restriction = UNSET if restrict is UNSET else check_restriction(restrict)
        expiry = expires_at
        if expires_at is not UNSET and expires_at is not None:
            expiry = canonical_time(expires_at, "expires_at")

        def command(unit: Unit) -> None:
            key = unit.holder("key", key_id, if_match)
            unit.check_catalog(added, None if restriction is UNSET else restriction)
            if alias is not None:
                key.rename(alias, change)
            key.change_grants(added, removed, change)
            if restriction is not UNSET:
                key.set_restriction(restriction, change)
            if expiry is not UNSET:
                key.set_expiry(expiry, change)

        return self.write(change, command)[1]

    def delete_key(self, key_id: str, change: Change, if_match: int | None = None) -> int:
        def command(unit: Unit) -> None:
            unit.holder("key", key_id, if_match).delete(change)

        return self.write(change, command)[1]

    def rotate_key(
        self, key_id: str, change: Change, if_match: int | None = None
    ) -> tuple[str, int]:
        secret = new_key_secret()

        def command(unit: Unit) -> None:
            unit.holder("key", key_id, if_match).rotate(hash_secret(secret), change)

        return secret, self.write(change, command)[1]

    # -- shared by teams and keys ----------------------------------------

    def set_attachment(
        self,
        type_: str,
        holder_id: str,
        group_id: str,
        attached: bool,
        change: Change,
        if_match: int | None = None,
    ) -> int:
        def command(unit: Unit) -> None:
            principal = unit.holder(type_, holder_id, if_match)
            live_holder(unit.index, "group", group_id)
            if attached:
                principal.attach_group(group_id, change)
            else:
                principal.detach_group(group_id, change)

        return self.write(change, command)[1]

    def set_blocked(
        self,
        type_: str,
        holder_id: str,
        blocked: bool,
        change: Change,
        if_match: int | None = None,
    ) -> int:
        def command(unit: Unit) -> None:
            principal = unit.holder(type_, holder_id, if_match)
            if blocked:
                principal.block(change)
            else:
                principal.unblock(change)

        return self.write(change, command)[1]

    def change_grants(
        self,
        type_: str,
        holder_id: str,
        change: Change,
        add: Any = None,
        remove: Any = None,
    ) -> int:
        """Direct grants on any holder; the history's `grant` and `revoke`."""
        if type_ == "group":
            return self.update_group(holder_id, change, add=add, remove=remove)
        if type_ == "team":
            return self.update_team(holder_id, change, add=add, remove=remove)
        return self.update_key(holder_id, change, add=add, remove=remove)

    # -- admin tokens ----------------------------------------------------

    def issue_admin_token(
        self, name: str, role: str, change: Change
    ) -> tuple[tuple[str, str], int]:
        """A new admin token: its id and the token, which is answered once."""
        check_name(name, "name")
        if normalise_name(name) == RESERVED_ACTOR:
            raise InvalidRequest(f"the name {RESERVED_ACTOR!r} is the master key's")
        if role not in ROLES:
            raise InvalidRequest(f"role must be one of {', '.join(ROLES)}")
        token = "adm-" + secrets.token_urlsafe(32)

        def command(unit: Unit) -> str:
            issued = AdminToken(
                name=name,
                role=role,
                token_hash=hash_secret(token),
                actor=change.actor,
                reason=change.reason,
            )
            unit.claim_name(SCOPES["admin-token"], name, issued.id)
            unit.add(issued)
            return str(issued.id)

        token_id, position = self.write(change, command)
        return (token_id, token), position

    def revoke_admin_token(self, token_id: str, change: Change) -> int:
        """Revoke a token; every replica refuses it from the next request on."""

        def command(unit: Unit) -> None:
            entry = unit.index.admin_tokens.get(token_id)
            if entry is None or entry.revoked:
                raise NotFound(f"no admin token with id {token_id!r}")
            unit.release_name(SCOPES["admin-token"], entry.name, UUID(token_id))
            unit.get(UUID(token_id)).revoke(change)

        return self.write(change, command)[1]


def check_id_list(ids: Any) -> list[str]:
    if ids is None:
        return []
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise InvalidRequest("access_groups must be a list of group ids")
    return ids


def sqlite_path(database_url: str) -> Path | None:
    """The file of a SQLite store; None for an in-memory or another store."""
    prefix = "sqlite:///"
    if not database_url.startswith(prefix) or ":memory:" in database_url:
        return None
    return Path(database_url[len(prefix) :].split("?")[0]).expanduser()


def create_private_file(database_url: str) -> None:
    """Create a new SQLite store readable by its owner only: it holds the
    hashes of key secrets and sessions. (SQLite gives its journal files the
    same mode.) An existing file keeps the mode it has."""
    path = sqlite_path(database_url)
    if path is not None and path.parent.is_dir():
        with suppress(FileExistsError):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def tune_sqlite(connection: Any, _: Any) -> None:
    """WAL with synchronous=NORMAL: a commit survives a crash of the process
    (the case the ledger promises) without an fsync per transaction; only a
    power cut can lose the last transactions. Waits for a busy writer."""
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def application_env(database_url: str) -> dict[str, str]:
    return {
        "PERSISTENCE_MODULE": FACTORY_TOPIC,
        "SQLALCHEMY_URL": database_url,
        # Tables are created once under a lock by Ledger.create_schema.
        "CREATE_TABLE": "n",
    }
