"""Measure one engine in this process and print its figures as JSON.

python -m bench.peers.measure ENGINE FOLDER [--quick]: FOLDER holds the
store (`org.db`), the resolved state and the workload that the suite made.
Each engine runs in its own process, so its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

from bench.peers.state import OUR_ANSWERS, OrgState, Workload, load_workload

ENGINES = ("ours", "http", "spicedb", "casbin", "openfga")


def open_engine(name: str, folder: Path) -> Any:
    url = f"sqlite:///{folder / 'engine.db'}"
    if name == "ours":
        from bench.peers.ours import InProcess

        return InProcess(url)
    if name == "http":
        from bench.peers.ours import OverHTTP

        return OverHTTP(url)
    if name == "spicedb":
        from bench.peers.spicedb import SpiceDB

        return SpiceDB()
    from bench.peers.casbin_rbac import Casbin

    return Casbin()


def latency(call: Callable[[Any], Any], items: list[Any], runs: int = 3) -> tuple:
    """Median and p99 in ms: the median over `runs` runs of each run's figure."""
    medians, p99s = [], []
    for _ in range(runs):
        samples = []
        for item in items:
            started = time.perf_counter()
            call(item)
            samples.append(time.perf_counter() - started)
        samples.sort()
        medians.append(statistics.median(samples) * 1000)
        p99s.append(samples[max(0, int(len(samples) * 0.99) - 1)] * 1000)
    return statistics.median(medians), statistics.median(p99s)


def checks_per_second(engine: Any, checks: list, seconds: float, threads: int) -> float:
    """Checks answered by `threads` threads in `seconds`, per second."""
    counts = [0] * threads
    stop = time.monotonic() + seconds

    def work(slot: int) -> None:
        position = slot * 97
        while time.monotonic() < stop:
            engine.check(*checks[position % len(checks)])
            position += 1
            counts[slot] += 1

    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return sum(counts) / seconds


def http_checks_per_second(port: int, seconds: float, folder: Path) -> float:
    """Two client processes of four threads each: one Python client process
    cannot keep two server workers busy."""
    command = [sys.executable, "-m", "bench.peers.load", str(port), str(seconds)]
    clients = [
        subprocess.Popen([*command, str(folder)], stdout=subprocess.PIPE)
        for _ in range(2)
    ]
    return sum(float(c.communicate()[0]) for c in clients)


def write_to_visible(engine: Any, workload: Workload, rounds: int) -> float:
    """Median ms from the start of a grant to a group until a check of one of
    the group's keys is allowed."""
    samples = []
    for name in workload.fresh_models[:rounds]:
        started = time.perf_counter()
        engine.grant_to_group(workload.fan_group, name)
        while not engine.check(workload.fan_key, "model", name):
            pass
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def measure(name: str, folder: Path, quick: bool) -> dict[str, Any]:
    workload = load_workload(folder / "workload.json")
    if name == "openfga":
        # A batch runner is asked a whole file of questions at once, not one
        # question at a time: it has its own path.
        from bench.peers import openfga

        expected = json.loads((folder / OUR_ANSWERS).read_text())
        return openfga.measure(folder, workload, expected, quick)
    started = time.perf_counter()
    engine = open_engine(name, folder)
    if name in ("spicedb", "casbin"):
        engine.load(OrgState.load(folder / "state.json"))
    figures: dict[str, Any] = {"engine": engine.name}
    figures["load_s"] = time.perf_counter() - started
    try:
        figures.update(questions(name, engine, workload, folder, quick))
    finally:
        if name == "http":
            figures["rss_mb"] = engine.peak_rss_mb()
        engine.close()
    if name != "http":
        figures["rss_mb"] = peak_rss_mb()
    return figures


def questions(
    name: str, engine: Any, workload: Workload, folder: Path, quick: bool
) -> dict[str, Any]:
    checks = [tuple(c) for c in workload.checks]
    figures: dict[str, Any] = {}
    # casbin matches a request against every policy line in turn (tens of
    # ms a check here): it answers and is timed on a smaller sample.
    slow = name == "casbin"
    compared = checks[: 100 if quick else 1000] if slow else checks
    figures["answers"] = [engine.check(*c) for c in compared]
    timed = checks[: 300 if quick else 1000]
    if slow:
        timed = timed[: 30 if quick else 100]
    figures["check_median_ms"], figures["check_p99_ms"] = latency(
        lambda c: engine.check(*c), timed
    )
    if name == "http":
        figures["floor_ms"], _ = latency(lambda _: engine.floor(), timed)
        figures["standard_check_ms"], _ = latency(
            lambda c: engine.check_with_http_client(*c), timed
        )
        figures["standard_floor_ms"], _ = latency(
            lambda _: engine.floor_with_http_client(), timed
        )
    seconds = 3 if quick else 10
    if name == "http":
        figures["checks_per_s"] = http_checks_per_second(engine.port, seconds, folder)
    else:
        # pycasbin is not safe to call from several threads (its expression
        # parser fails under CPython 3.11), and one interpreter lock bounds it.
        threads = 1 if slow else 4
        figures["checks_per_s"] = checks_per_second(engine, checks, seconds, threads)

    runs = [None] * (3 if quick else 20)
    figures["models_count"] = engine.models_of(workload.busy_key)
    figures["models_ms"], _ = latency(lambda _: engine.models_of(workload.busy_key), runs)
    if not slow:  # casbin's reverse look-up runs a whole check per subject
        figures["keys_count"] = engine.keys_of(workload.popular_model)
        keys_of = engine.keys_of
        figures["keys_ms"], _ = latency(lambda _: keys_of(workload.popular_model), runs)
    if hasattr(engine, "models_with_reasons"):  # our lists can carry every reason
        with_reasons = engine.models_with_reasons
        figures["models_reasons_ms"], _ = latency(
            lambda _: with_reasons(workload.busy_key), runs
        )
        with_reasons = engine.keys_with_reasons
        figures["keys_reasons_ms"], _ = latency(
            lambda _: with_reasons(workload.popular_model), runs
        )
    bulk = checks[: 100 if slow else 1000]
    figures["bulk_ms"], _ = latency(lambda _: engine.bulk(bulk), runs)
    rounds = 3 if slow else (10 if quick else 30)
    figures["write_visible_ms"] = write_to_visible(engine, workload, rounds)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.peers.measure")
    parser.add_argument("engine", choices=ENGINES)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(json.dumps(measure(args.engine, args.folder, args.quick)))


if __name__ == "__main__":
    main()
