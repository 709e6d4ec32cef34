"""/metrics, /healthz, /readyz and the JSON line logged for every request."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from api.ledger import Ledger
from conftest import MASTER_KEY
from domain.aggregates import Change


def samples(client: Any) -> dict[tuple[str, frozenset], float]:
    """Every sample of /metrics, asked without a token, by name and labels."""
    response = client.get("/metrics", headers={"Authorization": ""})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(found: dict, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def keyed(client: Any) -> dict[str, Any]:
    client.put("/v1/catalog/model/openai/gpt-4o")
    client.put("/v1/catalog/model/other")
    group = client.post(
        "/v1/access-groups", json={"name": "g", "grants": {"model": ["openai/*"]}}
    ).json()
    return client.post(
        "/v1/keys", json={"alias": "k", "access_groups": [group["id"]]}
    ).json()


def test_latency_is_labelled_by_route_template(client: Any, keyed: dict) -> None:
    client.get(f"/v1/keys/{keyed['id']}")
    client.get("/v1/catalog/model/openai/gpt-4o")
    client.get("/no/such/path")

    found = samples(client)

    template = {"method": "GET", "route": "/v1/keys/{key_id}"}
    assert value(found, "accessledger_request_duration_seconds_count", **template) == 1
    by_status = {**template, "status": "200"}
    assert value(found, "accessledger_requests_total", **by_status) == 1
    catalog = {"method": "GET", "route": "/v1/catalog/{kind}/{name:path}"}
    assert value(found, "accessledger_request_duration_seconds_count", **catalog) == 1
    unmatched = {"method": "GET", "route": "unmatched", "status": "404"}
    assert value(found, "accessledger_requests_total", **unmatched) == 1
    exposition = client.get("/metrics").text
    assert keyed["id"] not in exposition and "gpt-4o" not in exposition


def test_checks_are_counted_by_outcome_and_reason(client: Any, keyed: dict) -> None:
    asked = [
        {"key_id": keyed["id"], "kind": "model", "name": "openai/gpt-4o"},
        {"key_id": keyed["id"], "kind": "model", "name": "other"},
        {"key_id": keyed["id"], "kind": "model", "name": "missing"},
        {"key": "sk-nobody", "kind": "model", "name": "other"},
    ]
    for body in asked:
        assert client.post("/v1/check", json=body).status_code == 200
    client.post("/v1/check/bulk", json={"checks": asked[:2]})

    found = samples(client)

    assert value(found, "accessledger_checks_total", outcome="allowed", reason="") == 2
    for reason, count in (("no_grant", 2), ("unknown_resource", 1), ("unknown_key", 1)):
        assert (
            value(found, "accessledger_checks_total", outcome="denied", reason=reason)
            == count
        )


def test_lag_counts_the_events_another_process_wrote(
    client: Any, ledger: Ledger, database_url: str
) -> None:
    other = Ledger(database_url)
    try:
        for name in ("a", "b", "c"):
            other.register_resource("model", name, None, Change("other", None))
        head = other.current()
    finally:
        other.close()

    assert value(samples(client), "accessledger_read_model_lag_events") == 3

    ready = client.get("/readyz")
    assert ready.json() == {"status": "ready", "position": head}
    found = samples(client)
    assert value(found, "accessledger_read_model_lag_events") == 0
    assert value(found, "accessledger_read_model_position") == head


def test_health_needs_no_token(client: Any) -> None:
    response = client.get("/healthz", headers={"Authorization": ""})
    assert response.json() == {"status": "ok"}
    assert client.get("/readyz", headers={"Authorization": ""}).status_code == 200


def test_a_store_that_cannot_answer_is_not_ready(client: Any, ledger: Ledger) -> None:
    # The event log vanishing is the store failure a test can cause on a real
    # server without stopping it for everyone else.
    with ledger.engine.begin() as connection:
        connection.execute(text(f"DROP TABLE {ledger.events_table}"))

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "not_ready"
    assert client.get("/healthz").status_code == 200
    found = samples(client)
    assert ("accessledger_read_model_lag_events", frozenset()) not in found


def test_one_json_line_per_request_and_never_a_secret(
    client: Any, keyed: dict, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secrets = [keyed["secret"], MASTER_KEY]
    created = client.post(
        "/v1/keys", json={"alias": "second", "access_groups": []}
    ).json()
    rotated = client.post(f"/v1/keys/{created['id']}/rotate").json()
    secrets += [created["secret"], rotated["secret"]]
    as_key = {"Authorization": f"Bearer {keyed['secret']}"}
    client.get("/v1/models", headers=as_key)
    client.get("/v1/models/openai/gpt-4o", headers=as_key)
    client.get("/v1/models", headers={"Authorization": f"Bearer {created['secret']}"})
    client.post(
        "/v1/check", json={"key": rotated["secret"], "kind": "model", "name": "x"}
    )
    client.get(
        "/v1/access-groups", headers={"Authorization": f"Bearer {keyed['secret']}"}
    )

    lines = [
        json.loads(r.getMessage())
        for r in caplog.records
        if r.name == "accessledger.requests"
    ]

    assert [(line["route"], line["status"], line["actor"]) for line in lines] == [
        ("/v1/keys", 201, "master"),
        ("/v1/keys/{key_id}/rotate", 200, "master"),
        ("/v1/models", 200, f"key:{keyed['id']}"),
        ("/v1/models/{model_id:path}", 200, f"key:{keyed['id']}"),
        ("/v1/models", 401, None),
        ("/v1/check", 200, "master"),
        ("/v1/access-groups", 401, None),
    ]
    assert lines[1]["position"] == rotated["position"]
    assert all(line["duration_ms"] >= 0 for line in lines)
    every_line = caplog.text + "".join(r.getMessage() for r in caplog.records)
    for secret in secrets:
        assert secret not in every_line


def test_a_client_gone_mid_body_is_not_counted_as_a_server_error(
    live_url: str,
) -> None:
    import http.client
    import socket
    import time
    from urllib.parse import urlparse

    address = urlparse(live_url)
    for path in ("/v1/check", "/v1/check/bulk"):
        request = (
            f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {MASTER_KEY}\r\n"
            "Content-Length: 100\r\n\r\n{}"
        )
        with socket.create_connection((address.hostname, address.port)) as gone:
            gone.sendall(request.encode())

    # The server notices each departure on its own time: ask until it has.
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
    gone = {"method": "POST", "route": "unmatched", "status": "499"}
    deadline = time.monotonic() + 5
    while True:
        connection.request("GET", "/metrics")
        exposition = connection.getresponse().read().decode()
        found = {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(exposition)
            for sample in family.samples
        }
        counted = value(found, "accessledger_requests_total", **gone)
        if counted >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    connection.close()

    assert counted == 2
    failed = {"method": "POST", "route": "unmatched", "status": "500"}
    assert value(found, "accessledger_requests_total", **failed) == 0
