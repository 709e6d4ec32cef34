"""`accessledger serve --workers 2`: two processes on one port, each with its
own read model, answer as one service; a write through one is seen by the
next question, whichever process answers it."""

from __future__ import annotations

import http.client
import json
from typing import Any

import pytest
from bench.core import Server

from conftest import ADMIN, MASTER_KEY


def ask(port: int, method: str, path: str, body: Any = None) -> Any:
    # A new connection each time, so that either worker may take it.
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        payload = None if body is None else json.dumps(body).encode()
        connection.request(method, path, body=payload, headers=ADMIN)
        response = connection.getresponse()
        data = response.read()
        assert response.status < 300, data
        return json.loads(data) if data else None
    finally:
        connection.close()


@pytest.mark.slow
def test_two_workers_answer_as_one_service(sqlite_url: str) -> None:
    server = Server(sqlite_url, MASTER_KEY, workers=2)
    try:
        ask(server.port, "PUT", "/v1/catalog/model/gpt-4o")
        key = ask(server.port, "POST", "/v1/keys", {"alias": "k"})
        path = f"/v1/keys/{key['id']}"
        check = {"key_id": key["id"], "kind": "model", "name": "gpt-4o"}
        for round_number in range(20):
            grants = {"model": ["gpt-4o"]}
            change = {"add": grants} if round_number % 2 == 0 else {"remove": grants}
            ask(server.port, "PATCH", path, change)

            allowed = ask(server.port, "POST", "/v1/check", check)["allowed"]
            assert allowed == (round_number % 2 == 0)
    finally:
        server.stop()
