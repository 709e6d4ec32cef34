"""Idempotent retries: a write sent again with the same `Idempotency-Key`
gets the first answer back and records nothing.

A route marked `@idempotent` runs, when the header is given, inside one held
writer turn: the stored answers are looked up, the command runs, its answer
is made from the index (which already holds the command's events), and the
answer is stored in the same transaction as the events. A crash therefore
keeps both or neither. The answer is stored without any secret: a replayed
key creation or rotation leaves the secret out, since it is shown once.

Only answers with a 2xx status are kept: a refused write recorded nothing,
so sending it again is harmless and may succeed once the cause is fixed.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import time
import typing
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import orjson
from fastapi import Depends, Header, Request
from fastapi.responses import Response
from sqlalchemy import insert, select

from api.http import POSITION_HEADER, JSONAnswer, caller
from api.ledger import Batch, Ledger
from domain.errors import IdempotencyMismatch, InvalidRequest
from projections.tables import MAX_IDEMPOTENCY_KEY_LENGTH as MAX_KEY_LENGTH
from projections.tables import idempotent_answers as answers

REPLAYED_HEADER = "Idempotent-Replayed"
# Fields of an answer that are shown once and never stored.
SECRET_FIELDS = ("secret", "token")


@dataclass(frozen=True)
class Retry:
    """What an idempotent request is: the caller's key and its fingerprint."""

    actor: str
    key: str
    fingerprint: str


async def retry_of(
    request: Request,
    idempotency_key: str | None = Header(
        None,
        description="Send the write again with the same key: the first answer "
        "comes back and nothing is recorded twice.",
    ),
    signed_in: Any = Depends(caller),
) -> Retry | None:
    if idempotency_key is None:
        return None
    key = idempotency_key.strip()
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise InvalidRequest(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable ASCII characters"
        )
    body = await request.body()
    fingerprint = hashlib.sha256(
        b"\0".join(
            [
                request.method.encode(),
                request.url.path.encode("utf-8", "surrogateescape"),
                request.url.query.encode("utf-8", "surrogateescape"),
                body,
            ]
        )
    ).hexdigest()
    return Retry(signed_in.actor, key, fingerprint)


def idempotent(endpoint: Callable[..., Response]) -> Callable[..., Response]:
    """Mark a write route: it honours `Idempotency-Key`."""

    @functools.wraps(endpoint)
    def run(*args: Any, idempotent_retry: Retry | None, **kwargs: Any) -> Response:
        if idempotent_retry is None:
            return endpoint(*args, **kwargs)
        ledger: Ledger = kwargs["ledger"]
        with answered_once(ledger, idempotent_retry) as kept:
            if kept.answer is not None:
                return kept.answer
            response = endpoint(*args, **kwargs)
            kept.store(response)
        return response

    # FastAPI reads the parameters from the signature: the endpoint's own,
    # with their annotations resolved in the endpoint's module, plus the retry.
    hints = typing.get_type_hints(endpoint)
    own = [
        p.replace(annotation=hints.get(name, p.annotation))
        for name, p in inspect.signature(endpoint).parameters.items()
    ]
    retry = inspect.Parameter(
        "idempotent_retry",
        inspect.Parameter.KEYWORD_ONLY,
        default=Depends(retry_of),
        annotation=Retry | None,
    )
    run.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [*own, retry], return_annotation=Response
    )
    return run


class Kept:
    """The stored answer to a retry, or where to store the first answer."""

    def __init__(self, batch: Batch, retry: Retry, answer: Response | None) -> None:
        self.batch = batch
        self.retry = retry
        self.answer = answer

    def store(self, response: Response) -> None:
        if not 200 <= response.status_code < 300:
            return
        body = bytes(response.body) if response.body else b""
        position = int(response.headers.get(POSITION_HEADER, "0"))
        self.batch.session.execute(
            insert(answers).values(
                actor=self.retry.actor,
                idempotency_key=self.retry.key,
                fingerprint=self.retry.fingerprint,
                status=response.status_code,
                body=without_secrets(body),
                position=position,
                stored_at=time.time(),
            )
        )


@contextmanager
def answered_once(ledger: Ledger, retry: Retry) -> Iterator[Kept]:
    """One writer turn for the whole request, with the index lock held from
    the command to the commit, so that the answer made from the index is the
    one committed (as `Ledger.batch` does for bulk loading). The turn is
    taken before the index lock: taking the turn catches up, which takes the
    index lock after the catch-up lock, and the two must never cross."""
    with ledger.write_lock:
        batch = None
        try:
            with ledger.writer_turn() as session, ledger.index.lock:
                batch = Batch(session)
                token = ledger.current_batch.set(batch)
                try:
                    yield Kept(batch, retry, stored_answer(session, retry))
                finally:
                    ledger.current_batch.reset(token)
                ledger.tables.commit(session, batch.commits)
        except BaseException:
            # Events already in the index but not committed: start again
            # from the committed tables.
            if batch is not None and batch.commits:
                ledger.reload()
            raise


def stored_answer(session: Any, retry: Retry) -> Response | None:
    row = session.execute(
        select(answers).where(
            answers.c.actor == retry.actor, answers.c.idempotency_key == retry.key
        )
    ).first()
    if row is None:
        return None
    if row.fingerprint != retry.fingerprint:
        raise IdempotencyMismatch(
            "this Idempotency-Key was used with another request; use a new key"
        )
    headers = {POSITION_HEADER: str(row.position), REPLAYED_HEADER: "true"}
    if not row.body:
        return Response(status_code=row.status, headers=headers)
    return JSONAnswer(orjson.loads(row.body), status_code=row.status, headers=headers)


def without_secrets(body: bytes) -> str | None:
    if not body:
        return None
    answer = orjson.loads(body)
    if isinstance(answer, dict):
        for field in SECRET_FIELDS:
            answer.pop(field, None)
    return orjson.dumps(answer).decode()
