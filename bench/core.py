"""The core service's figures: apply rate, check and model-list latency over
HTTP, and the server's memory with the whole org history loaded."""

from __future__ import annotations

import http.client
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import sqlalchemy
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
HISTORY = ROOT.parent / "shared" / "data" / "org" / "history.jsonl"
POSTGRES_ADMIN_URL = os.environ.get(
    "ACCESSLEDGER_BENCH_POSTGRES_ADMIN",
    "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
)
BENCH_DATABASE = os.environ.get(
    "ACCESSLEDGER_BENCH_POSTGRES_DATABASE", "accessledger_bench"
)
MASTER_KEY = "bench-master-key"


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    target: str
    met: bool | None = None


# The org history played into SQLite, kept for the rest of this run: core
# measures the play, and the audit and peers suites copy its store instead
# of playing the history again (about 20 s a play).
PLAYED: dict[str, Any] = {}


def keep_played(database: Path) -> None:
    if "folder" not in PLAYED:
        PLAYED["folder"] = tempfile.TemporaryDirectory(prefix="bench-played-")
    kept = Path(PLAYED["folder"].name) / "played.db"
    shutil.copy(database, kept)
    PLAYED["database"] = kept


def played_history(target: Path) -> None:
    """The org history played into a SQLite store at `target`: a copy of
    this run's first play, or a play of its own."""
    if "database" in PLAYED:
        shutil.copy(PLAYED["database"], target)
        return
    apply_history(f"sqlite:///{target}", HISTORY.read_text(encoding="utf-8").splitlines())
    keep_played(target)


def apply_history(
    url: str, lines: list[str]
) -> tuple[float, dict[str, str], dict[str, str]]:
    """Play operations in-process, as `accessledger apply` does; ops/s, refs, secrets."""
    from api.cli import play_all
    from api.history import HistoryPlayer, LocalBackend
    from api.ledger import Ledger
    from domain.aggregates import Change

    ledger = Ledger(url)
    player = HistoryPlayer(LocalBackend(ledger, Change("bench")))
    started = time.perf_counter()
    failure = play_all(player, lines, show_progress=False)
    elapsed = time.perf_counter() - started
    ledger.close()
    if failure is not None:
        raise SystemExit(
            f"the history failed to apply at line {failure[0]}: {failure[1]}"
        )
    return len(lines) / elapsed, player.refs, player.secrets


def fresh_postgres_url() -> str:
    engine = sqlalchemy.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {BENCH_DATABASE} WITH (FORCE)"))
        connection.execute(text(f"CREATE DATABASE {BENCH_DATABASE}"))
    engine.dispose()
    return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{BENCH_DATABASE}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """`accessledger serve` in its own process, on 127.0.0.1."""

    def __init__(self, url: str, master_key: str = MASTER_KEY, workers: int = 1) -> None:
        self.port = free_port()
        environment = {**os.environ, "ACCESSLEDGER_MASTER_KEY": master_key}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "api.cli",
                "serve",
                "--port",
                str(self.port),
                "--database",
                url,
                "--workers",
                str(workers),
            ],
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.wait_until_up()

    def wait_until_up(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
            try:
                connection.request("GET", "/healthz")
                if connection.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.1)
            finally:
                connection.close()
        self.stop()
        raise SystemExit("the server did not start within 60 s")

    def memory_kib(self, field: str) -> int:
        """VmRSS (now) or VmHWM (peak) of the server process."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        return 0

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


class Client:
    """One keep-alive connection with http.client: as light as a client gets."""

    def __init__(self, port: int, token: str) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port)
        self.headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
        }

    def timed(
        self, method: str, path: str, body: Any = None, token: str | None = None
    ) -> float:
        headers = dict(self.headers)
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        payload = json.dumps(body).encode() if body is not None else None
        started = time.perf_counter()
        self.connection.request(method, path, body=payload, headers=headers)
        response = self.connection.getresponse()
        response.read()
        elapsed = time.perf_counter() - started
        if response.status != 200:
            raise SystemExit(f"{method} {path} answered {response.status}")
        return elapsed

    def close(self) -> None:
        self.connection.close()


def latency_runs(
    run: Callable[[], float], count: int, runs: int = 3
) -> tuple[float, float]:
    """Median and p99 in ms: the median over `runs` runs of each run's figure."""
    medians, p99s = [], []
    for _ in range(runs):
        samples = sorted(run() for _ in range(count))
        medians.append(statistics.median(samples) * 1000)
        p99s.append(samples[int(len(samples) * 0.99) - 1] * 1000)
    return statistics.median(medians), statistics.median(p99s)


def key_with_models(url: str, wanted: int) -> tuple[str, int]:
    """The key whose model count is nearest to `wanted` (at least `wanted`)."""
    from api.ledger import Ledger

    ledger = Ledger(url)
    now = time.time()
    best, best_count = "", 0
    for key in ledger.index.iter_holders("key"):
        count = len(ledger.index.access(key, "model", now))
        if count >= wanted and (not best or count < best_count):
            best, best_count = key.id, count
    ledger.close()
    return best, best_count


def measure_server(
    url: str, refs: dict[str, str], secrets: dict[str, str], count: int, label: str
) -> list[Figure]:
    models = [
        json.loads(line)["name"]
        for line in HISTORY.read_text().splitlines()[:4877]
        if '"kind": "model"' in line
    ]
    key_ids = [refs[ref] for ref in secrets if ref in refs]
    chance = random.Random(7)
    checks = [
        {"key_id": chance.choice(key_ids), "kind": "model", "name": chance.choice(models)}
        for _ in range(count)
    ]
    busy_key, model_count = key_with_models(url, 500)
    busy_secret = next(
        secrets[r] for r, i in refs.items() if i == busy_key and r in secrets
    )

    server = Server(url)
    try:
        client = Client(server.port, MASTER_KEY)
        for item in checks[:200]:
            client.timed("POST", "/v1/check", item)
        items = iter(checks * 3)
        floor, _ = latency_runs(lambda: client.timed("GET", "/healthz"), count)
        check_median, check_p99 = latency_runs(
            lambda: client.timed("POST", "/v1/check", next(items)), count
        )
        models_median, _ = latency_runs(
            lambda: client.timed("GET", "/v1/models", token=busy_secret),
            max(50, count // 20),
        )
        client.close()
        rss = server.memory_kib("VmHWM") / 1024
    finally:
        server.stop()

    return [
        Figure(f"{label}: no-op route median (floor)", floor, "ms", "-"),
        Figure(
            f"{label}: POST /v1/check median",
            check_median,
            "ms",
            "<= 1",
            check_median <= 1.0,
        ),
        Figure(f"{label}: POST /v1/check p99", check_p99, "ms", "<= 5", check_p99 <= 5.0),
        Figure(
            f"{label}: GET /v1/models median ({model_count} models)",
            models_median,
            "ms",
            "<= 5",
            models_median <= 5.0,
        ),
        Figure(
            f"{label}: server peak RSS, history loaded", rss, "MB", "<= 300", rss <= 300
        ),
    ]


def run(quick: bool) -> list[Figure]:
    lines = HISTORY.read_text(encoding="utf-8").splitlines()
    figures: list[Figure] = []
    count = 1000 if quick else 3000

    with tempfile.TemporaryDirectory() as folder:
        sqlite_url = f"sqlite:///{folder}/bench.db"
        rate, refs, secrets = apply_history(sqlite_url, lines)
        keep_played(Path(folder) / "bench.db")
        figures.append(
            Figure("apply org history, SQLite", rate, "ops/s", ">= 1000", rate >= 1000)
        )

        postgres_url = fresh_postgres_url()
        postgres_lines = lines[:8000] if quick else lines
        pg_rate, pg_refs, pg_secrets = apply_history(postgres_url, postgres_lines)
        scope = "first 8,000 ops" if quick else "whole history"
        figures.append(
            Figure(
                f"apply org history, PostgreSQL ({scope})",
                pg_rate,
                "ops/s",
                ">= 500",
                pg_rate >= 500,
            )
        )

        figures += measure_server(sqlite_url, refs, secrets, count, "SQLite")
        if not quick:
            figures += measure_server(
                postgres_url, pg_refs, pg_secrets, count, "PostgreSQL"
            )
    return figures


def print_table(figures: list[Figure]) -> None:
    width = max(len(f.name) for f in figures)
    print(f"{'measure'.ljust(width)}  {'value':>10}  unit    target     met")
    for figure in figures:
        met = "-" if figure.met is None else ("yes" if figure.met else "NO")
        print(
            f"{figure.name.ljust(width)}  {figure.value:10.3f}  {figure.unit:<6}  "
            f"{figure.target:<9}  {met}"
        )
