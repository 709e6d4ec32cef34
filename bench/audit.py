"""The audit's figures on a large store: compliance replay rate and memory,
as-of key access latency over HTTP, and export time and memory.

The large store (about a million events: 100,000 keys up front and 830,000
admin steps from shared/tools/make_org_history.py) takes a quarter of an
hour to build, so it is built once into ACCESSLEDGER_BENCH_DIR (default
~/.cache/accessledger-bench) and reused. --quick measures the org history
instead.
"""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.core import MASTER_KEY, ROOT, Client, Figure, Server, played_history

TOOL = ROOT.parent / "shared" / "tools" / "make_org_history.py"
CACHE = Path(
    os.environ.get(
        "ACCESSLEDGER_BENCH_DIR", Path.home() / ".cache" / "accessledger-bench"
    )
)
LARGE = {"keys": "100000", "ops": "830000", "seed": "11"}


def measured(
    argv: list[str], stdout: int | None = subprocess.DEVNULL
) -> tuple[float, float]:
    """Run `accessledger ARGV` in a fresh process: seconds, and its peak RSS in
    MB, adding the peak of the largest process it started (a replay's
    verifier) as though both peaked at once."""
    runner = (
        "import resource, sys; from api.cli import main; code = main(sys.argv[1:]); "
        "peak = lambda who: resource.getrusage(who).ru_maxrss; "
        "print(peak(resource.RUSAGE_SELF) + peak(resource.RUSAGE_CHILDREN), "
        "file=sys.stderr); sys.exit(code)"
    )
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", runner, *argv],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"accessledger {' '.join(argv)} failed:\n{done.stderr[-2000:]}")
    return elapsed, int(done.stderr.strip().splitlines()[-1]) / 1024


def large_store() -> tuple[str, Path]:
    """The million-event store, built on first use."""
    CACHE.mkdir(parents=True, exist_ok=True)
    history = CACHE / "history-large.jsonl"
    database = CACHE / "large.db"
    url = f"sqlite:///{database}"
    if (CACHE / "large.done").exists():
        return url, history
    for stale in CACHE.glob("large*"):
        stale.unlink()
    with open(history, "w", encoding="utf-8") as out:
        subprocess.run(
            [
                sys.executable,
                str(TOOL),
                *sum(([f"--{k}", v] for k, v in LARGE.items()), []),
            ],
            stdout=out,
            check=True,
        )
    print(
        f"building the large store in {database} (about 15 minutes, once)",
        file=sys.stderr,
    )
    measured(
        [
            "apply",
            str(history),
            "--database",
            url,
            "--no-progress",
            "--refs-out",
            str(CACHE / "large.refs.json"),
            "--secrets-out",
            str(CACHE / "large.secrets.jsonl"),
        ]
    )
    (CACHE / "large.done").write_text("built\n")
    return url, history


def small_store(folder: Path) -> str:
    """The org history's store (36,898 events), for a quick run."""
    played_history(folder / "small.db")
    return f"sqlite:///{folder / 'small.db'}"


def event_count(url: str) -> int:
    import sqlalchemy

    engine = sqlalchemy.create_engine(url)
    with engine.connect() as connection:
        count = connection.exec_driver_sql(
            "SELECT max(id) FROM accessledger_events"
        ).scalar()
    engine.dispose()
    return int(count or 0)


def as_of_latency(url: str, samples: int) -> tuple[float, float, int]:
    """Median ms of as-of key access over HTTP, and the server's start-up time.

    Each question asks about a key at a random position after its creation.
    """
    import sqlalchemy

    engine = sqlalchemy.create_engine(url)
    with engine.connect() as connection:
        keys = list(
            connection.exec_driver_sql(
                "SELECT id, seq FROM ledger_holders WHERE type = 'key'"
            )
        )
        head = connection.exec_driver_sql(
            "SELECT max(position) FROM ledger_commits"
        ).scalar()
    engine.dispose()

    chance = random.Random(5)
    questions = []
    for _ in range(samples):
        key_id, created = chance.choice(keys)
        questions.append(
            f"/v1/keys/{key_id}/access?position={chance.randint(created, head)}"
        )

    started = time.perf_counter()
    server = Server(url)
    start_up = time.perf_counter() - started
    try:
        client = Client(server.port, MASTER_KEY)
        times = [client.timed("GET", path) for path in questions]
        client.close()
    finally:
        server.stop()
    return statistics.median(times) * 1000, start_up, len(times)


def run(quick: bool) -> list[Figure]:
    import tempfile

    figures: list[Figure] = []
    with tempfile.TemporaryDirectory() as folder:
        url = small_store(Path(folder)) if quick else large_store()[0]
        events = event_count(url)
        label = f"{events:,} events"

        seconds, peak = measured(
            ["audit", "replay", "--database", url, "--no-progress", "--verify"]
        )
        rate = events / seconds
        # The target is set for the million-event store; on the small one,
        # starting the two processes is a large share of the time.
        target, met = ("full run", None) if quick else (">= 20000", rate >= 20000)
        figures.append(
            Figure(f"replay with digests, {label}", rate, "events/s", target, met)
        )
        figures.append(
            Figure("replay peak RSS, both processes", peak, "MB", "<= 500", peak <= 500)
        )

        median, start_up, answered = as_of_latency(url, 60 if quick else 300)
        figures.append(
            Figure(
                f"as-of key access median ({answered} asked)",
                median,
                "ms",
                "<= 20",
                median <= 20,
            )
        )
        figures.append(
            Figure(f"server start-up, {label}", start_up, "s", "<= 10", start_up <= 10)
        )

        seconds, peak = measured(["audit", "export", "--database", url])
        figures.append(Figure(f"export, {label}", seconds, "s", "<= 60", seconds <= 60))
        figures.append(Figure("export peak RSS", peak, "MB", "flat", None))
    return figures
