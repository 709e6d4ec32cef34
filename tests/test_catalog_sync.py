"""`POST /v1/catalog/sync`: a gateway pushes its whole model list at once."""

from __future__ import annotations

from typing import Any

from api.ledger import Ledger
from conftest import event_count

NAMES = [f"provider-{i % 40}/model-{i}" for i in range(5000)]


def sync(client: Any, names: list[str], retire_missing: bool = False) -> dict:
    body = {"kind": "model", "names": names, "retire_missing": retire_missing}
    response = client.post("/v1/catalog/sync", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["X-Ledger-Position"] == str(response.json()["position"])
    return response.json()  # type: ignore[no-any-return]


def committed_times(client: Any, after: int) -> set[str]:
    """The commit times of the events after a position."""
    times, cursor = set(), after
    while cursor is not None:
        page = client.get(f"/v1/audit/events?after={cursor}&limit=1000").json()
        times |= {item["at"] for item in page["items"]}
        cursor = page["next_after"]
    return times


def test_thousands_of_names_in_one_transaction(client: Any, ledger: Ledger) -> None:
    answer = sync(client, NAMES)

    assert answer == {
        "registered": 5000,
        "retired": 0,
        "unchanged": 0,
        "position": answer["position"],
    }
    # An event's time is when its command committed: one time, one commit.
    assert len(committed_times(client, 0)) == 1
    assert event_count(ledger) == 5000


def test_the_same_list_again_changes_nothing(client: Any, ledger: Ledger) -> None:
    first = sync(client, NAMES)

    again = sync(client, list(reversed(NAMES)) + NAMES[:10])

    assert again == {**first, "registered": 0, "unchanged": 5000}
    assert event_count(ledger) == 5000


def test_names_missing_from_the_list_are_retired_on_request(client: Any) -> None:
    first = sync(client, NAMES)

    kept = sync(client, NAMES[:4000])
    retired = sync(client, NAMES[:4000], retire_missing=True)

    assert kept["unchanged"] == 4000 and kept["retired"] == 0
    assert retired["retired"] == 1000 and retired["unchanged"] == 4000
    assert len(committed_times(client, first["position"])) == 1
    listed = client.get("/v1/catalog?kind=model&status=retired&limit=1000").json()
    assert sorted(item["name"] for item in listed["items"]) == sorted(NAMES[4000:])
