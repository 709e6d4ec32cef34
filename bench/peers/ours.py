"""This service, asked the same questions two ways: in-process through the
access index (the same kind of call as an embedded peer's) and over HTTP
from another process (the figure a gateway sees)."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from bench.core import MASTER_KEY, free_port
from bench.peers.lean_http import LeanConnection
from bench.peers.state import OrgState


class InProcess:
    """The access index of a Ledger in this process; the store's head is not
    read, so this is the cost of the index alone."""

    name = "ours, in-process"

    def __init__(self, url: str) -> None:
        from api.ledger import Ledger

        self.ledger = Ledger(url)
        self.index = self.ledger.index

    def load(self, state: OrgState) -> None:
        """The store is already there; the state was read from it."""

    def check(self, key_id: str, kind: str, name: str) -> bool:
        index = self.index
        with index.lock:
            return index.check(index.key(key_id), kind, name, time.time()).allowed

    def bulk(self, checks: list) -> list[bool]:
        index, moment = self.index, time.time()
        with index.lock:
            return [
                index.check(index.key(k), kind, n, moment).allowed
                for k, kind, n in checks
            ]

    def models_of(self, key_id: str) -> int:
        with self.index.lock:
            return len(self.index.access(self.index.key(key_id), "model", time.time()))

    def keys_of(self, name: str) -> int:
        with self.index.lock:
            return len(self.index.users_of("model", name, time.time()))

    def grant_to_group(self, group_id: str, name: str) -> None:
        from domain.aggregates import Change

        self.ledger.update_group(group_id, Change("bench"), add={"model": [name]})

    def close(self) -> None:
        self.ledger.close()


class OverHTTP:
    """`accessledger serve --workers 2` in other processes, asked through one
    keep-alive connection of the lean client (`lean_http`); the check and
    the no-op route are also timed through http.client, for comparison."""

    name = "ours, HTTP"

    def __init__(self, url: str, workers: int = 2) -> None:
        self.port = free_port()
        environment = {**os.environ, "ACCESSLEDGER_MASTER_KEY": MASTER_KEY}
        command = [sys.executable, "-m", "api.cli", "serve", "--port", str(self.port)]
        command += ["--database", url, "--workers", str(workers)]
        self.process = subprocess.Popen(
            command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.standard = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        self.connection = self.wait_until_up()

    def wait_until_up(self) -> LeanConnection:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                connection = connect(self.port)
                ask(connection, "GET", "/healthz", None)
                return connection
            except OSError:
                time.sleep(0.1)
        self.close()
        raise SystemExit("the server did not start within 120 s")

    def load(self, state: OrgState) -> None:
        """The store is already there; the state was read from it."""

    def ask(self, method: str, path: str, body: Any = None) -> Any:
        try:
            return ask(self.connection, method, path, body)
        except ConnectionError:
            # The server closes a keep-alive connection idle for 5 s (while
            # the load phase runs, say); every question here may be asked again.
            self.connection.close()
            self.connection = connect(self.port)
            return ask(self.connection, method, path, body)

    def check(self, key_id: str, kind: str, name: str) -> bool:
        item = {"key_id": key_id, "kind": kind, "name": name}
        return bool(self.ask("POST", "/v1/check", item)["allowed"])

    def check_with_http_client(self, key_id: str, kind: str, name: str) -> bool:
        item = {"key_id": key_id, "kind": kind, "name": name}
        body = json.dumps(item).encode()
        self.standard.request("POST", "/v1/check", body=body, headers=HEADERS)
        return bool(json.loads(self.standard.getresponse().read())["allowed"])

    def floor_with_http_client(self) -> None:
        self.standard.request("GET", "/healthz", headers=HEADERS)
        self.standard.getresponse().read()

    def bulk(self, checks: list) -> list[bool]:
        items = [{"key_id": k, "kind": kind, "name": n} for k, kind, n in checks]
        answer = self.ask("POST", "/v1/check/bulk", {"checks": items})
        return [result["allowed"] for result in answer["results"]]

    def floor(self) -> None:
        self.ask("GET", "/healthz")

    def models_of(self, key_id: str, reasons: bool = False) -> int:
        """Names only by default: what SpiceDB's lookup answers."""
        path = f"/v1/keys/{key_id}/access?kind=model&reasons={str(reasons).lower()}"
        answer = self.ask("GET", path)
        return len(answer["resources"].get("model", []))

    def keys_of(self, name: str, reasons: bool = False) -> int:
        count, cursor = 0, ""
        asked = f"/v1/who-can-use?kind=model&name={quote(name, safe='')}&limit=1000"
        asked += f"&reasons={str(reasons).lower()}"
        while True:
            page = self.ask("GET", asked + (f"&cursor={cursor}" if cursor else ""))
            count += len(page["keys"])
            cursor = page["next_cursor"]
            if cursor is None:
                return count

    def models_with_reasons(self, key_id: str) -> int:
        return self.models_of(key_id, reasons=True)

    def keys_with_reasons(self, name: str) -> int:
        return self.keys_of(name, reasons=True)

    def grant_to_group(self, group_id: str, name: str) -> None:
        self.ask("PATCH", f"/v1/access-groups/{group_id}", {"add": {"model": [name]}})

    def peak_rss_mb(self) -> float:
        """The largest VmHWM among the server's processes (each worker's own)."""
        peaks = [0]
        for pid in [self.process.pid, *children(self.process.pid)]:
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]))
        return max(peaks) / 1024

    def close(self) -> None:
        if hasattr(self, "connection"):
            self.connection.close()
        self.standard.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def connect(port: int) -> LeanConnection:
    return LeanConnection(port)


HEADERS = {"Authorization": f"Bearer {MASTER_KEY}", "Content-Type": "application/json"}
HEADER_LINES = b"".join(f"{k}: {v}\r\n".encode() for k, v in HEADERS.items())


def ask(connection: LeanConnection, method: str, path: str, body: Any) -> Any:
    payload = json.dumps(body).encode() if body is not None else None
    status, data = connection.request(method, path, payload, HEADER_LINES)
    if status >= 300:
        raise SystemExit(f"{method} {path} answered {status}: {data[:200]!r}")
    return json.loads(data) if data else None


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]
