"""Input limits and hostile bytes: each is refused with a 4xx in the error
shape, never a 5xx, and records nothing."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import event_count

DEEP = 100_000
# (what, body bytes, expected status)
BODIES: list[tuple[str, bytes, int]] = [
    ("nested arrays", b"[" * DEEP + b"]" * DEEP, 400),
    ("nested objects", b'{"name":' + b'{"a":' * DEEP + b"1" + b"}" * DEEP + b"}", 400),
    ("invalid UTF-8", b'{"name": "\xff\xfe"}', 400),
    ("raw control character", b'{"name": "a\x01b"}', 400),
    ("escaped NUL", b'{"name": "a\\u0000b"}', 422),
    ("lone surrogate", b'{"name": "\\ud800"}', 422),
    ("huge exponent", b"1e999999", 400),
    ("name too long", b'{"name": "' + b"a" * 3000 + b'"}', 422),
    (
        "too many selectors",
        b'{"name": "g", "grants": {"model": [%s]}}'
        % b",".join(b'"m-%d/*"' % n for n in range(1001)),
        400,
    ),
    ("too large", b'{"name": "' + b"a" * (5 * 1024 * 1024) + b'"}', 413),
    ("not JSON", b"name=g", 400),
    ("unknown field", b'{"name": "g", "owner": "x"}', 400),
]


@pytest.mark.parametrize(("what", "body", "status"), BODIES, ids=[b[0] for b in BODIES])
def test_hostile_bodies_are_refused(
    client: Any, what: str, body: bytes, status: int
) -> None:
    before = event_count(client.app.state.ledger)
    answer = client.post("/v1/access-groups", content=body)
    assert answer.status_code == status, answer.text
    assert set(answer.json()["error"]) == {"code", "message"}
    assert event_count(client.app.state.ledger) == before


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("/v1/access-groups?limit=1001", 400),
        ("/v1/access-groups?limit=0", 400),
        ("/v1/keys?cursor=-1", 400),
        ("/v1/access-groups?q=%ff", 400),
        ("/v1/audit/events?after=99999999999999999999", 400),
        ("/v1/catalog/model/%C0%AF", 400),
    ],
)
def test_hostile_urls_are_refused(client: Any, url: str, status: int) -> None:
    answer = client.get(url)
    assert answer.status_code == status, answer.text


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"X-Change-Reason": b"a\x7fb"}, 400),
        ({"X-Change-Reason": b"r" * 1001}, 400),
        ({"Idempotency-Key": b"k" * 256}, 400),
    ],
)
def test_hostile_headers_are_refused(client: Any, headers: dict, status: int) -> None:
    before = event_count(client.app.state.ledger)
    answer = client.post("/v1/access-groups", json={"name": "g"}, headers=headers)
    assert answer.status_code == status, answer.text
    assert event_count(client.app.state.ledger) == before
