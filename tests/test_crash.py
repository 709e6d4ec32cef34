"""Crash safety: SIGKILL the server while `apply --server` streams the org
history through it and other writers race it, restart it on the same store,
then check that replay matches the live read models, that every write
answered 2xx is in the log, and that no unanswered write is half-applied."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import SHARED

MASTER = "crash-test-master-key"
HEADERS = {"Authorization": f"Bearer {MASTER}"}
# Enough history that the kill lands mid-stream, past the catalog.
HISTORY_LINES = 9_000
WRITER_THREADS = 4
# Kill once the stream has created this many keys (it creates about 2,600).
KILL_AFTER_KEYS = 300
STREAM_TIMEOUT_SECONDS = 120


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def environment() -> dict[str, str]:
    source = Path(__file__).resolve().parent.parent / "src"
    return {
        **os.environ,
        "ACCESSLEDGER_MASTER_KEY": MASTER,
        "ACCESSLEDGER_TOKEN": MASTER,
        "PYTHONPATH": str(source),
    }


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "api.cli", *args]


class Server:
    """`accessledger serve` in its own process, on 127.0.0.1."""

    def __init__(self, folder: Path, url: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            command(
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--database",
                url,
            ),
            cwd=folder,
            env=environment(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError("the server did not start")

    def kill(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()


class Writer(threading.Thread):
    """Creates groups one after another, noting what was answered."""

    def __init__(self, base: str, number: int) -> None:
        super().__init__(daemon=True)
        self.base = base
        self.number = number
        self.answered: dict[str, str] = {}
        self.unanswered: list[str] = []

    def run(self) -> None:
        with httpx.Client(base_url=self.base, headers=HEADERS, timeout=10) as client:
            for n in range(100_000):
                name = f"racer {self.number}-{n}"
                try:
                    answer = client.post("/v1/access-groups", json={"name": name})
                except httpx.TransportError:
                    self.unanswered.append(name)
                    return
                if answer.status_code == 201:
                    self.answered[name] = answer.json()["id"]


@pytest.mark.slow
def test_a_killed_server_loses_no_answered_write(
    tmp_path: Path, database_url: str
) -> None:
    folder, url = tmp_path, database_url
    lines = (SHARED / "data/org/history.jsonl").read_text().splitlines()
    catalog_end = next(n for n, line in enumerate(lines) if '"register"' not in line)
    catalog, history = folder / "catalog.jsonl", folder / "history.jsonl"
    catalog.write_text("\n".join(lines[:catalog_end]) + "\n")
    history.write_text("\n".join(lines[catalog_end:HISTORY_LINES]) + "\n")
    # The catalog the history starts with, in-process: only its speed differs.
    subprocess.run(
        command("apply", str(catalog), "--database", url, "--no-progress"),
        cwd=folder,
        env=environment(),
        check=True,
        capture_output=True,
    )

    server = Server(folder, url)
    apply = None
    try:
        apply = subprocess.Popen(
            command("apply", str(history), "--server", server.base, "--no-progress"),
            cwd=folder,
            env=environment(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        writers = [Writer(server.base, n) for n in range(WRITER_THREADS)]
        for writer in writers:
            writer.start()
        position = wait_for_keys(server.base, KILL_AFTER_KEYS)
        server.kill()
        for writer in writers:
            writer.join(timeout=30)
        assert apply.wait(timeout=30) != 0, "apply finished before the kill"
    finally:
        server.kill()
        if apply is not None and apply.poll() is None:
            os.kill(apply.pid, signal.SIGKILL)
            apply.wait()

    restarted = Server(folder, url)
    try:
        verify(restarted.base, folder, writers, position)
    finally:
        restarted.kill()


def wait_for_keys(base: str, count: int) -> int:
    """Wait until the store holds `count` keys; answer its position then."""
    deadline = time.monotonic() + STREAM_TIMEOUT_SECONDS
    with httpx.Client(base_url=base, headers=HEADERS, timeout=5) as client:
        while time.monotonic() < deadline:
            keys = client.get("/v1/keys", params={"limit": count})
            if len(keys.json()["items"]) >= count:
                return int(keys.headers["X-Ledger-Position"])
            time.sleep(0.05)
    raise AssertionError(f"the stream did not create {count} keys in time")


def verify(base: str, folder: Path, writers: list[Writer], position: int) -> None:
    with httpx.Client(base_url=base, headers=HEADERS, timeout=120) as client:
        replay = client.post("/v1/audit/replay", json={}).json()
        assert replay["matches"], replay["differences"]
        assert replay["events"] >= position

        answered = {n: i for w in writers for n, i in w.answered.items()}
        assert len(answered) > 20
        for name, group_id in answered.items():
            group = client.get(f"/v1/access-groups/{group_id}")
            assert group.status_code == 200 and group.json()["name"] == name

        for name in (n for w in writers for n in w.unanswered):
            assert_whole_or_absent(client, name)

        refs = json.loads((folder / "history.refs.json").read_text())
        holders = [v for k, v in refs.items() if not k.startswith("checkpoint")]
        assert len(holders) > KILL_AFTER_KEYS
        for holder_id in holders:
            events = client.get("/v1/audit/events", params={"holder": holder_id})
            assert events.json()["items"], holder_id


def assert_whole_or_absent(client: Any, name: str) -> None:
    """An unanswered creation either happened entirely (the group and its
    name claim) or not at all (the name is free)."""
    found = client.get("/v1/access-groups", params={"q": name}).json()["items"]
    exact = [g for g in found if g["name"] == name]
    again = client.post("/v1/access-groups", json={"name": name})
    if exact:
        assert again.status_code == 409
    else:
        assert again.status_code == 201
