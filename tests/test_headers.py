"""Security headers on every kind of answer, and a nonce on the docs page."""

from __future__ import annotations

import re
from typing import Any

import pytest

ALWAYS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/healthz", 200),
        ("GET", "/v1/keys", 200),
        ("GET", "/v1/keys/nope", 404),
        ("GET", "/nowhere", 404),
        ("POST", "/v1/check", 400),
        ("GET", "/openapi.json", 200),
    ],
)
def test_every_answer_carries_the_headers(
    client: Any, method: str, path: str, status: int
) -> None:
    answer = client.request(method, path)
    assert answer.status_code == status
    for name, value in ALWAYS.items():
        assert answer.headers[name] == value
    assert answer.headers["content-security-policy"].startswith("default-src 'none'")


def test_refusals_before_routing_carry_them_too(client: Any) -> None:
    answer = client.post("/v1/keys", content=b"x" * (5 * 1024 * 1024))
    assert answer.status_code == 413
    assert answer.headers["x-frame-options"] == "DENY"
    unsigned = client.get("/v1/keys", headers={"Authorization": ""})
    assert unsigned.status_code == 401
    assert unsigned.headers["x-content-type-options"] == "nosniff"


def test_the_docs_page_runs_only_scripts_with_its_nonce(client: Any) -> None:
    pages = [client.get("/docs") for _ in range(2)]
    nonces = []
    for page in pages:
        assert page.status_code == 200
        policy = page.headers["content-security-policy"]
        nonce = re.search(r"'nonce-([^']+)'", policy).group(1)
        nonces.append(nonce)
        tags = re.findall(r"<script([^>]*)>", page.text)
        inline = [attrs for attrs in tags if "src=" not in attrs]
        assert inline and all(f'nonce="{nonce}"' in attrs for attrs in inline)
        assert "'unsafe-inline'" not in policy and "frame-ancestors 'none'" in policy
        assert page.headers["x-frame-options"] == "DENY"
    assert nonces[0] != nonces[1]
    assert "http" not in policy
    assert not re.search(r'(src|href)="https?:', pages[0].text)
    assert '"validatorUrl": null' in pages[0].text


@pytest.mark.parametrize(
    ("asset", "kind"),
    [("swagger-ui-bundle.js", "javascript"), ("swagger-ui.css", "text/css")],
)
def test_the_docs_assets_are_served_here(client: Any, asset: str, kind: str) -> None:
    answer = client.get(f"/docs/assets/{asset}")
    assert answer.status_code == 200
    assert kind in answer.headers["content-type"]
    assert answer.headers["x-content-type-options"] == "nosniff"
