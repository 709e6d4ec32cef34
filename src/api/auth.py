"""Admin authentication: the master key and the admin tokens with roles.

The master key comes from ACCESSLEDGER_MASTER_KEY, or is generated on first
start and kept beside the database in a file only its owner can read. Only
its SHA-256 is kept, in memory and in the store. Admin tokens are issued
through the API and recorded as events holding only their SHA-256; a token
is looked up in the access index after it has caught up with the store's
head, so a revocation holds on every replica from the next request on.

Refused sign-ins are logged (never the token) and, after a few from one
client, answered more and more slowly.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy.exc
from sqlalchemy import insert, select
from sqlalchemy.engine import Engine

from domain.errors import Unauthorized
from projections.tables import settings

MASTER_KEY_FILE = "accessledger.master-key"
MASTER_ACTOR = "master"
MASTER_SETTING = "master_key_sha256"


log = logging.getLogger("accessledger")

# Refused sign-ins one client may make before its answers slow down, how far
# back they count, and the longest wait.
FREE_FAILURES = 5
FAILURE_WINDOW_SECONDS = 300.0
MAX_DELAY_SECONDS = 5.0
# Clients remembered at once; the oldest are forgotten first.
REMEMBERED_CLIENTS = 10_000


@dataclass(frozen=True)
class Caller:
    """Who signed in, and with which role."""

    actor: str
    role: str


@dataclass(frozen=True)
class AdminTokens:
    master_hash: str

    def caller_for(self, token: str, ledger: Any = None) -> Caller:
        """The caller behind a valid admin token; Unauthorized otherwise.

        The master key is compared in constant time. Other tokens are found
        by their SHA-256 in the index, caught up with the store's head first:
        finding a hash by equality reveals nothing useful about the token.
        """
        if ledger is None:
            return self.caller_in(token, None)
        ledger.catch_up()
        return self.caller_in(token, ledger.index)

    def caller_in(self, token: str, index: Any) -> Caller:
        """`caller_for` against an index the caller has just caught up (or
        None: the master key alone)."""
        hashed = digest(token)
        if hmac.compare_digest(hashed, self.master_hash):
            return Caller(MASTER_ACTOR, "admin")
        if index is not None:
            entry = index.admin_token_for(hashed)
            if entry is not None:
                return Caller(entry.name, entry.role)
        raise Unauthorized("unknown admin token")

    def actor_for(self, token: str, ledger: Any = None) -> str:
        """The actor name of a valid admin token; Unauthorized otherwise."""
        return self.caller_for(token, ledger).actor


class SignInGuard:
    """Counts refused sign-ins per client and slows that client down.

    After FREE_FAILURES refusals within FAILURE_WINDOW_SECONDS, every request
    from the client waits before its token is even looked at: 0.25 s, then
    twice as long per further refusal, at most MAX_DELAY_SECONDS.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.failures: OrderedDict[str, list[float]] = OrderedDict()

    def recent(self, client: str) -> int:
        cutoff = time.monotonic() - FAILURE_WINDOW_SECONDS
        with self.lock:
            times = [t for t in self.failures.get(client, ()) if t > cutoff]
            if times:
                self.failures[client] = times
            else:
                self.failures.pop(client, None)
            return len(times)

    def delay(self, client: str) -> float:
        over = self.recent(client) - FREE_FAILURES
        return 0.0 if over < 0 else min(0.25 * 2**over, MAX_DELAY_SECONDS)

    async def wait(self, client: str) -> None:
        pause = self.delay(client)
        if pause:
            await asyncio.sleep(pause)

    def refused(self, client: str, why: str) -> None:
        with self.lock:
            self.failures.setdefault(client, []).append(time.monotonic())
            self.failures.move_to_end(client)
            count = len(self.failures[client])
            while len(self.failures) > REMEMBERED_CLIENTS:
                self.failures.popitem(last=False)
        log.warning(
            "sign-in refused: %s; client %s, %d recent refusals", why, client, count
        )


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise Unauthorized("send an Authorization: Bearer token")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send an Authorization: Bearer token")
    return token.strip()


def master_key_hash(engine: Engine, folder: Path) -> tuple[str, str]:
    """The master key's hash, and a line saying where the key is.

    ACCESSLEDGER_MASTER_KEY wins. Otherwise the first process to start on a
    store generates a key, writes it to `accessledger.master-key` in
    `folder` (owner-only), and records its hash in the store, so that every
    replica of the store accepts the same key. A replica that loses that race
    removes the key file it wrote.
    """
    from_env = os.environ.get("ACCESSLEDGER_MASTER_KEY")
    if from_env:
        return digest(from_env), "master key from ACCESSLEDGER_MASTER_KEY"

    recorded = stored_hash(engine)
    path = folder / MASTER_KEY_FILE
    if recorded is not None:
        if path.exists() and digest(path.read_text(encoding="utf-8").strip()) == recorded:
            return recorded, f"master key in {path} (readable by its owner only)"
        return recorded, (
            "master key: generated by the first process on this store; "
            "this folder has no copy of it"
        )

    key = "adm-" + secrets.token_urlsafe(32)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        # Created with owner-only permissions, never readable by others even briefly.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise SystemExit(
            f"{path} exists but this store does not know it; move it away "
            "or set ACCESSLEDGER_MASTER_KEY"
        ) from None
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(key + "\n")
    try:
        with engine.begin() as connection:
            connection.execute(
                insert(settings).values(name=MASTER_SETTING, value=digest(key))
            )
    except sqlalchemy.exc.IntegrityError:
        path.unlink()
        return master_key_hash(engine, folder)
    return digest(key), f"master key in {path} (readable by its owner only)"


def stored_hash(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return connection.execute(
            select(settings.c.value).where(settings.c.name == MASTER_SETTING)
        ).scalar()


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def admin_tokens(master_key: str) -> AdminTokens:
    return AdminTokens(digest(master_key))
