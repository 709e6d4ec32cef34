"""Fan-out: one model added to (then removed from) a group that 100,000 keys
use, half directly and half through teams, made on one replica and watched
from another process on the same store.

The watcher asks the other replica, over HTTP, bulk checks of a sample of
the group's keys (both kinds of path) in a tight loop. The figure is the
time from the write's return to the first answer that sees it; every answer
must be all allowed or all denied (a bulk check is answered from one state)
and, once one answer has seen the change, no later answer may miss it.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from bench.core import MASTER_KEY, Figure, Server

TEAMS = 50
BATCH = 1000
SAMPLE = 200
MODEL = "fanout/model-a"


@dataclass
class Store:
    """Ids of the fan-out set-up in a store."""

    group: str
    direct_keys: list[str]
    team_keys: list[str]


def build(ledger: Any, keys: int) -> Store:
    """A group attached to `keys / 2` keys and to TEAMS teams holding the
    other half; the catalog holds the model the fan-out grants."""
    from domain.aggregates import Change

    change = Change("fanout")
    ledger.register_resource("model", MODEL, None, change)
    group, _ = ledger.create_group("fan-out group", None, {}, change)
    teams = [
        ledger.create_team(f"fan-out team {n}", [group], None, change)[0]
        for n in range(TEAMS)
    ]
    direct: list[str] = []
    via_teams: list[str] = []
    for start in range(0, keys, BATCH):
        with ledger.batch():
            for n in range(start, min(keys, start + BATCH)):
                if n % 2:
                    team = teams[n % TEAMS]
                    (key, _), _ = ledger.create_key(f"k{n}", change, team_id=team)
                    via_teams.append(key)
                else:
                    (key, _), _ = ledger.create_key(
                        f"k{n}", change, access_groups=[group]
                    )
                    direct.append(key)
    return Store(group, direct, via_teams)


@dataclass
class Watch:
    """What the watcher saw: answers as (time, allowed count) pairs."""

    answers: list[tuple[float, int]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)


def watch(port: int, keys: list[str], seen: Watch) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        ask_until_stopped(connection, keys, seen)
    except (OSError, ValueError) as error:
        seen.errors.append(repr(error))
    finally:
        connection.close()


def ask_until_stopped(connection: Any, keys: list[str], seen: Watch) -> None:
    checks = [{"key_id": k, "kind": "model", "name": MODEL} for k in keys]
    body = json.dumps({"checks": checks}).encode()
    headers = {"Authorization": f"Bearer {MASTER_KEY}"}
    while not seen.stop.is_set():
        connection.request("POST", "/v1/check/bulk", body=body, headers=headers)
        response = connection.getresponse()
        answer = json.loads(response.read())
        if response.status != 200:
            seen.errors.append(f"status {response.status}")
            return
        allowed = sum(result["allowed"] for result in answer["results"])
        seen.answers.append((time.perf_counter(), allowed))


def visible_after(ledger: Any, store: Store, port: int, add: bool) -> tuple[float, Watch]:
    """Seconds from the write's return until the other replica shows it."""
    from domain.aggregates import Change

    sample = store.direct_keys[: SAMPLE // 2] + store.team_keys[: SAMPLE // 2]
    seen = Watch()
    watcher = threading.Thread(target=watch, args=(port, sample, seen))
    watcher.start()
    time.sleep(0.3)
    grants = {"model": [MODEL]}
    change = Change("fanout")
    if add:
        ledger.update_group(store.group, change, add=grants)
    else:
        ledger.update_group(store.group, change, remove=grants)
    returned = time.perf_counter()
    wanted = len(sample) if add else 0
    deadline = returned + 10
    while time.perf_counter() < deadline and not seen.errors:
        if any(t > returned and n == wanted for t, n in seen.answers[-3:]):
            break
        time.sleep(0.001)
    time.sleep(0.2)
    seen.stop.set()
    watcher.join()
    first = next((t for t, n in seen.answers if t > returned and n == wanted), None)
    return (float("inf") if first is None else first - returned), seen


def half_visible(seen: Watch, size: int) -> list[tuple[float, int]]:
    """Answers that saw part of the change, or went back after seeing it."""
    answers = seen.answers
    partial = [(t, n) for t, n in answers if n not in (0, size)]
    changes = [
        answers[i] for i in range(1, len(answers)) if answers[i][1] != answers[i - 1][1]
    ]
    return partial or changes[1:]


def measure(url: str, keys: int, label: str, limit_s: float) -> list[Figure]:
    from api.ledger import Ledger

    ledger = Ledger(url)
    started = time.perf_counter()
    store = build(ledger, keys)
    built = time.perf_counter() - started
    replica = Server(url)
    try:
        figures = [Figure(f"{label}: build {keys:,} keys", built, "s", "-")]
        for add, word in ((True, "grant"), (False, "revoke")):
            delay, seen = visible_after(ledger, store, replica.port, add)
            wrong = half_visible(seen, SAMPLE)
            figures.append(
                Figure(
                    f"{label}: {word} to {keys:,} keys, visible on the other replica",
                    delay,
                    "s",
                    f"<= {limit_s:g}",
                    delay <= limit_s and not wrong and not seen.errors,
                )
            )
            figures.append(
                Figure(f"{label}: {word}, answers seeing half of it", len(wrong), "", "0")
            )
    finally:
        replica.stop()
        ledger.close()
    return figures


def run(quick: bool) -> list[Figure]:
    """100,000 keys on SQLite and PostgreSQL (10,000 with --quick)."""
    import tempfile

    from bench.core import fresh_postgres_url

    keys = 10_000 if quick else 100_000
    with tempfile.TemporaryDirectory(prefix="perf-fanout-") as folder:
        figures = measure(f"sqlite:///{folder}/fanout.db", keys, "SQLite", 1.0)
    return figures + measure(fresh_postgres_url(), keys, "PostgreSQL", 2.0)
