"""Admin sessions of the web UI: a random id in the cookie, the rest in memory.

Sessions live in the memory of one process: a restart signs everyone out,
and each replica knows only the sessions it started.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass

COOKIE = "accessledger_session"
# A working day; after that the admin signs in again.
LIFETIME_SECONDS = 8 * 3600
# Sessions kept per process; the oldest go first when more sign in.
MAX_SESSIONS = 10_000


@dataclass(frozen=True)
class Session:
    id: str
    actor: str
    csrf: str
    expires: float


class Sessions:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_id: dict[str, Session] = {}

    def start(self, actor: str) -> Session:
        """A new session for an actor whose token was just accepted."""
        session = Session(
            id=secrets.token_urlsafe(32),
            actor=actor,
            csrf=secrets.token_urlsafe(32),
            expires=time.time() + LIFETIME_SECONDS,
        )
        with self.lock:
            self.forget_expired()
            if len(self.by_id) >= MAX_SESSIONS:
                del self.by_id[next(iter(self.by_id))]
            self.by_id[session.id] = session
        return session

    def find(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        with self.lock:
            session = self.by_id.get(session_id)
        if session is None or session.expires <= time.time():
            return None
        return session

    def end(self, session_id: str | None) -> None:
        with self.lock:
            self.by_id.pop(session_id or "", None)

    def forget_expired(self) -> None:
        moment = time.time()
        for session_id in [s.id for s in self.by_id.values() if s.expires <= moment]:
            del self.by_id[session_id]
