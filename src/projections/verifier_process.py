"""A replay's verifier in a process of its own.

The replaying process runs the projection handlers over the log; the
verifier digests the live tables, writes and digests the replayed rows, and
compares the two. On a long log each is a large share of the work, so on
two cores they run side by side.

The verifier is a plain child interpreter (`python -m
projections.verifier_process`), not a multiprocessing worker, so that it
never re-imports the parent's main module. Chunks of rows go to it pickled
through its stdin, and its answers come back through its stdout: private
pipes between two processes of the same program. A full pipe holds the
replay back when the verifier falls behind, so nothing queues up in memory.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import traceback
from typing import IO, Any

import sqlalchemy
from sqlalchemy.engine import Engine

from projections.replay import ReplayReport, Verifier
from projections.tables import LedgerSchema


class VerifierProcess:
    """The replaying side's handle: `position` to replay to, `write` for each
    chunk of rows, `finish` for the report."""

    def __init__(
        self,
        engine: Engine,
        events_table: str,
        schema: LedgerSchema,
        until: int | None,
        indexed: bool,
    ) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "projections.verifier_process"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        url = engine.url.render_as_string(hide_password=False)
        self.send((url, events_table, schema.prefix, until, indexed))
        self.position: int = self.receive()

    def __enter__(self) -> VerifierProcess:
        return self

    def __exit__(self, *failure: Any) -> None:
        if failure[0] is not None:
            self.process.kill()
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()
        self.process.wait()

    def write(self, name: str, rows: list[tuple]) -> None:
        self.send((name, rows))

    def finish(self, events: int) -> ReplayReport:
        self.send((None, events))
        return self.receive()

    def send(self, message: Any) -> None:
        try:
            pickle.dump(message, self.process.stdin, pickle.HIGHEST_PROTOCOL)
            self.process.stdin.flush()  # type: ignore[union-attr]
        except BrokenPipeError:
            self.receive()  # raises the verifier's own account of its failure
            raise self.gone() from None

    def receive(self) -> Any:
        try:
            outcome, value = pickle.load(self.process.stdout)  # type: ignore[arg-type]
        except EOFError:
            raise self.gone() from None
        if outcome == "failed":
            raise RuntimeError(f"the replay's verifier failed:\n{value}")
        return value

    def gone(self) -> RuntimeError:
        code = self.process.wait()
        return RuntimeError(f"the replay's verifier stopped (exit code {code})")


def verify(requests: IO[bytes], answers: IO[bytes]) -> None:
    """The verifier's side: take the work, answer the position to replay
    to, write what arrives, answer the report."""

    def answer(outcome: str, value: Any) -> None:
        pickle.dump((outcome, value), answers, pickle.HIGHEST_PROTOCOL)
        answers.flush()

    try:
        url, events_table, prefix, until, indexed = pickle.load(requests)
        # SQLite: wait for the service's own writers rather than fail at once.
        connect_args = {"timeout": 10} if url.startswith("sqlite") else {}
        engine = sqlalchemy.create_engine(url, connect_args=connect_args)
        schema = LedgerSchema(prefix)
        verifier = Verifier(engine, events_table, schema, until, indexed)
        answer("position", verifier.position)

        verifier.digest_live()
        while True:
            name, chunk = pickle.load(requests)
            if name is None:
                break
            verifier.write(name, chunk)

        report = verifier.finish(events=chunk)
        verifier.close()
        engine.dispose()
        answer("report", report)
    except Exception:
        answer("failed", traceback.format_exc())


if __name__ == "__main__":
    verify(sys.stdin.buffer, sys.stdout.buffer)
