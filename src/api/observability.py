"""Prometheus metrics and one JSON log line per request.

Requests are labelled by their route template (`/v1/keys/{key_id}`), never
by the raw path: ids and names in paths would make a series per holder. The
log line carries the route, never the path or query, and no header: nothing
a caller sends can put a secret or a token into it.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily

from api.ledger import Ledger
from domain.rules import Decision

request_log = logging.getLogger("accessledger.requests")

# Checks answer in about a millisecond; writes and audits take longer.
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
# The label of requests that matched no route (404s, refused URLs).
NO_ROUTE = "unmatched"
# The status recorded for a request whose client left before the answer,
# as some proxies log it; nothing is sent.
CLIENT_GONE = 499


class Metrics:
    """The service's metrics, in a registry of its own per application."""

    def __init__(self, ledger: Ledger) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.latency = Histogram(
            "accessledger_request_duration_seconds",
            "Time to answer an HTTP request, by route template.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.requests = Counter(
            "accessledger_requests",
            "HTTP requests answered, by route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.checks = Counter(
            "accessledger_checks",
            "Access checks answered about now, by outcome and denial reason.",
            ["outcome", "reason"],
            registry=self.registry,
        )
        self.registry.register(ReadModelLag(ledger))
        self.series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def count_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Time and count one answered request. Each label set's two series
        are looked up once: a check is answered in tens of microseconds."""
        series = self.series.get((method, route, status))
        if series is None:
            series = (
                self.latency.labels(method, route),
                self.requests.labels(method, route, str(status)),
            )
            self.series[(method, route, status)] = series
        latency, requests = series
        latency.observe(seconds)
        requests.inc()

    def count_decision(self, decision: Decision) -> None:
        if decision.allowed:
            self.checks.labels("allowed", "").inc()
        else:
            self.checks.labels("denied", decision.denied_because or "").inc()


class ReadModelLag:
    """The events this process has not applied yet, read at scrape time."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Any:
        applied = self.ledger.index.position
        position = GaugeMetricFamily(
            "accessledger_read_model_position",
            "The ledger position this process's access index has applied.",
            value=applied,
        )
        yield position
        try:
            head = self.ledger.log.head()
        except Exception:  # the store is down: report no lag rather than fail
            return
        yield GaugeMetricFamily(
            "accessledger_read_model_lag_events",
            "The store's head position minus the access index's position.",
            value=max(0, head - applied),
        )


class RequestRecorder:
    """Times every request, counts it, and logs one JSON line for it."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        started = time.perf_counter()
        state = scope.setdefault("state", {})
        answered: dict[str, Any] = {"status": None, "position": None}

        async def send_and_note(message: dict) -> None:
            if message["type"] == "http.response.start":
                answered["status"] = message["status"]
                answered["position"] = position_of(message.get("headers", []))
            await send(message)

        failed = True
        try:
            await self.app(scope, receive, send_and_note)
            failed = False
        finally:
            if answered["status"] is None:
                # An error answers 500 from the layer outside this one; an
                # application that returned without answering saw its
                # client go (a body cut off): not a server error.
                answered["status"] = 500 if failed else CLIENT_GONE
            seconds = time.perf_counter() - started
            self.record(scope, state, answered, seconds)

    def record(
        self, scope: dict, state: dict, answered: dict[str, Any], seconds: float
    ) -> None:
        route = getattr(scope.get("route"), "path", None) or NO_ROUTE
        method, status = scope["method"], answered["status"]
        self.metrics.count_request(method, route, status, seconds)
        log_request(
            method, route, status, seconds, state.get("actor"), answered["position"]
        )


def log_request(
    method: str,
    route: str,
    status: int,
    seconds: float,
    actor: str | None,
    position: int | None,
) -> None:
    """The request's one log line, when request logging is on."""
    if not request_log.isEnabledFor(logging.INFO):
        return
    line = {
        "at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        "method": method,
        "route": route,
        "status": status,
        "duration_ms": round(seconds * 1000, 3),
        "actor": actor,
        "position": position,
    }
    request_log.info(orjson.dumps(line).decode())


def position_of(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name.lower() == b"x-ledger-position" and value.isdigit():
            return int(value)
    return None


def add_metrics(app: FastAPI, ledger: Ledger) -> None:
    """Serve /metrics and record every request; outermost, so that requests
    refused before routing are counted too."""
    metrics = Metrics(ledger)
    app.state.metrics = metrics

    @app.get("/metrics", tags=["operations"])
    def prometheus_metrics(request: Request) -> Response:
        """Prometheus metrics of this process, in the text exposition format."""
        body = generate_latest(request.app.state.metrics.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(RequestRecorder, metrics=metrics)
