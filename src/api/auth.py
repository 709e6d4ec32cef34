"""Admin authentication: the master key, compared in constant time.

The master key comes from ACCESSLEDGER_MASTER_KEY, or is generated on first
start and kept beside the database in a file only its owner can read. Only
its SHA-256 stays in memory after start-up.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from domain.errors import Unauthorized

MASTER_KEY_FILE = "accessledger.master-key"
MASTER_ACTOR = "master"


@dataclass(frozen=True)
class AdminTokens:
    master_hash: str

    def actor_for(self, token: str) -> str:
        """The actor name of a valid admin token; Unauthorized otherwise."""
        offered = hashlib.sha256(token.encode("utf-8")).hexdigest()
        if hmac.compare_digest(offered, self.master_hash):
            return MASTER_ACTOR
        raise Unauthorized("unknown admin token")


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise Unauthorized("send an Authorization: Bearer token")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send an Authorization: Bearer token")
    return token.strip()


def load_master_key(folder: Path) -> tuple[str, Path | None]:
    """The master key, and the file it was read from or written to (if any)."""
    from_env = os.environ.get("ACCESSLEDGER_MASTER_KEY")
    if from_env:
        return from_env, None

    path = folder / MASTER_KEY_FILE
    if path.exists():
        return path.read_text(encoding="utf-8").strip(), path

    key = "adm-" + secrets.token_urlsafe(32)
    folder.mkdir(parents=True, exist_ok=True)
    # Created with owner-only permissions, never readable by others even briefly.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(key + "\n")
    return key, path


def admin_tokens(master_key: str) -> AdminTokens:
    return AdminTokens(hashlib.sha256(master_key.encode("utf-8")).hexdigest())
