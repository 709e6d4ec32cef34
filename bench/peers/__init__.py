"""The peers suite: the same final state of the org history in this service
and in other authorization engines, the same questions asked of each, the
answers compared on a sample, and the figures side by side."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.core import Figure, played_history
from bench.peers.state import OUR_ANSWERS, make_workload, resolve, save_workload

# SpiceDB's library reports usage to its vendor by default (an hour's
# interval, first after a random delay). The benchmark sends nothing off
# this machine: its HTTP client is pointed at a closed local port.
NO_TELEMETRY = {
    name: "http://127.0.0.1:9"
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy")
}
ROWS = (
    ("check median (sequential)", "check_median_ms", "ms"),
    ("check p99 (sequential)", "check_p99_ms", "ms"),
    ("checks/s (concurrent, 2 cores)", "checks_per_s", "/s"),
    ("bulk check of 1,000 items (casbin: 100)", "bulk_ms", "ms"),
    ("list a key's models (names)", "models_ms", "ms"),
    ("list the keys of a model (ids)", "keys_ms", "ms"),
    ("list a key's models, with reasons", "models_reasons_ms", "ms"),
    ("list the keys of a model, with reasons", "keys_reasons_ms", "ms"),
    ("write-to-visible", "write_visible_ms", "ms"),
    ("peak RSS of the process", "rss_mb", "MB"),
)
COLUMNS = (("ours", "ours in-process"), ("http", "ours HTTP"), ("spicedb", "SpiceDB"))
RESULTS: dict[str, Any] = {}


# casbin and OpenFGA take most of a run (tens of ms a check, seconds a
# batch): a quick run compares with SpiceDB alone, the yardstick.
FULL_RUN_ONLY = ("casbin", "openfga")


def run(quick: bool) -> list[Figure]:
    engines = ["ours", "http", *available_peers()]
    if quick:
        left = [e for e in engines if e in FULL_RUN_ONLY]
        engines = [e for e in engines if e not in FULL_RUN_ONLY]
        if left:
            print(f"peers: {', '.join(left)} only in a full run", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="perf-peers-") as name:
        folder = Path(name)
        prepare(folder, checks=1000 if quick else 3000)
        for engine in engines:
            print(f"peers: measuring {engine}", file=sys.stderr, flush=True)
            shutil.copy(folder / "org.db", folder / "engine.db")
            RESULTS[engine] = measure(engine, folder, quick)
            if engine == "ours":
                answers = json.dumps(RESULTS[engine]["answers"])
                (folder / OUR_ANSWERS).write_text(answers)
    return []


def available_peers() -> list[str]:
    found = []
    try:
        import spicedb_embedded  # noqa: F401

        if os.environ.get("SPICEDB_LIBRARY_PATH"):
            found.append("spicedb")
    except ImportError:
        pass
    try:
        import casbin  # noqa: F401

        found.append("casbin")
    except ImportError:
        pass
    from bench.peers.openfga import fga_binary

    if fga_binary().exists():
        found.append("openfga")
    if "spicedb" not in found:
        print(
            "peers: SpiceDB is not installed; see bench/install-peers.sh", file=sys.stderr
        )
    return found


def prepare(folder: Path, checks: int) -> None:
    """Play the org history into a store, resolve its final state, pick the
    questions."""
    from api.ledger import Ledger

    played_history(folder / "org.db")
    ledger = Ledger(f"sqlite:///{folder / 'org.db'}")
    with ledger.index.lock:
        state = resolve(ledger.index, time.time())
        workload = make_workload(ledger.index, checks)
    ledger.close()
    state.save(folder / "state.json")
    save_workload(workload, folder / "workload.json")
    RESULTS["state"] = {
        "relationships": state.relationship_count(),
        "usable_keys": len(state.key_grants),
        "models": workload.busy_key_models,
        "keys": workload.popular_model_keys,
    }


def measure(engine: str, folder: Path, quick: bool) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.peers.measure", engine, str(folder)]
    quiet = engine in ("spicedb", "openfga")
    environment = {**os.environ, **(NO_TELEMETRY if quiet else {})}
    done = subprocess.run(
        [*command, *(["--quick"] if quick else [])],
        env=environment,
        stdout=subprocess.PIPE,
        check=True,
    )
    return json.loads(done.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def print_comparison() -> None:
    """The side-by-side table; its last line is the check median ratio of
    this service over HTTP to SpiceDB in-process."""
    state = RESULTS["state"]
    columns = [(k, title) for k, title in COLUMNS if k in RESULTS]
    if "casbin" in RESULTS:
        columns.append(("casbin", "casbin"))
    if "openfga" in RESULTS:
        columns.append(("openfga", "OpenFGA"))
    print()
    print(
        f"Peers on the org history's final state: {state['usable_keys']:,} usable "
        f"keys, {state['relationships']:,} relationships in SpiceDB's terms."
    )
    agreement = [agreement_line(k, title) for k, title in columns if k != "ours"]
    print("; ".join(agreement) + ".")
    print_rows(columns)
    if "openfga" in RESULTS:
        print_openfga_note(RESULTS["openfga"], state["models"])
    spicedb = RESULTS.get("spicedb")
    if spicedb is None:
        print("check median ratio vs SpiceDB: n/a (SpiceDB not installed)")
        return
    in_process = RESULTS["ours"]["check_median_ms"] / spicedb["check_median_ms"]
    print(f"in-process check median ratio vs SpiceDB: {in_process:.4f}")
    http = RESULTS["http"]
    print(
        "HTTP no-op route median (floor of the HTTP figures): "
        f"{http['floor_ms']:.3f} ms with the lean client"
    )
    standard = http["standard_check_ms"] / spicedb["check_median_ms"]
    print(
        f"with http.client instead: check median {http['standard_check_ms']:.3f} ms "
        f"(ratio vs SpiceDB {standard:.2f}), "
        f"no-op route {http['standard_floor_ms']:.3f} ms"
    )
    ratio = http["check_median_ms"] / spicedb["check_median_ms"]
    print(f"check median ratio vs SpiceDB: {ratio:.2f}")


def agreement_line(engine: str, title: str) -> str:
    ours, theirs = RESULTS["ours"]["answers"], RESULTS[engine]["answers"]
    differ = sum(a != b for a, b in zip(ours[: len(theirs)], theirs, strict=True))
    return f"{title}: {differ} of {len(theirs):,} answers differ from ours"


def print_rows(columns: list[tuple[str, str]]) -> None:
    width = max(len(row[0]) for row in ROWS) + 5
    ratios = ["ours in-proc / SpiceDB", "ours HTTP / SpiceDB"]
    head = [title for _, title in columns]
    if "spicedb" in RESULTS:
        head += ratios
    print("measure".ljust(width) + "".join(f"{h:>24}" for h in head))
    for label, field, unit in ROWS:
        cells = [cell(RESULTS[k].get(field), unit) for k, _ in columns]
        if "spicedb" in RESULTS:
            base = RESULTS["spicedb"].get(field)
            cells += [ratio(RESULTS[k].get(field), base) for k in ("ours", "http")]
        print(f"{label} ({unit})".ljust(width) + "".join(f"{c:>24}" for c in cells))
    counts = [
        f"{title} lists {RESULTS[k]['models_count']} models and "
        f"{RESULTS[k].get('keys_count', '-')} keys"
        for k, title in columns
    ]
    print("; ".join(counts) + ".")


def print_openfga_note(openfga: dict[str, Any], our_models: int) -> None:
    """OpenFGA's figures are of another kind: say so under the table."""
    print(
        f"OpenFGA: `fga model test` v{openfga['version']}, an in-memory store of "
        f"{openfga['tuples']:,} tuples loaded in {openfga['load_s']:.2f} s a run;"
    )
    print(
        "its check and list figures are means amortised over batch runs "
        "((run with N questions - run with none) / N), its bulk figure the "
        "1,000 checks' share of a run, its RSS the run's that answered the checks "
        f"(the run of ListUsers peaked at {openfga['rss_by_file_mb']['keys']:.0f} MB)."
    )
    if openfga["models_count"] < our_models:
        # Its ListObjects returns what it found when its deadline (3 s by
        # default, which `fga model test` cannot change) runs out.
        print(
            f"OpenFGA's ListObjects listed {openfga['models_count']} of the key's "
            f"{our_models} models: it stopped at its deadline."
        )


def cell(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "ms" and value < 0.1:
        return f"{value * 1000:.1f} us"
    return f"{value:,.0f}" if value >= 100 else f"{value:.3f}"


def ratio(value: float | None, base: float | None) -> str:
    if value is None or not base:
        return "-"
    return f"{value / base:.4f}"
