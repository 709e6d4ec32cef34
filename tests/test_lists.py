"""The two long lists, a key's resources and a resource's keys, with and
without their reasons."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def keys(client: Any) -> list[dict[str, Any]]:
    for name in ("openai/gpt-4o", "openai/o1", "anthropic/claude"):
        client.put(f"/v1/catalog/model/{name}")
    group = client.post(
        "/v1/access-groups", json={"name": "g", "grants": {"model": ["openai/*"]}}
    ).json()
    team = client.post("/v1/teams", json={"name": "t", "access_groups": [group["id"]]})
    made = [
        client.post(
            "/v1/keys", json={"alias": "direct", "grants": {"model": ["openai/o1"]}}
        ),
        client.post(
            "/v1/keys", json={"alias": "grouped", "access_groups": [group["id"]]}
        ),
        client.post("/v1/keys", json={"alias": "teamed", "team_id": team.json()["id"]}),
    ]
    return [response.json() for response in made]


def without_reasons(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in item.items() if k != "reasons"} for item in items]


def test_who_can_use_without_reasons_lists_the_same_keys(client: Any, keys: list) -> None:
    asked = "/v1/who-can-use?kind=model&name=openai/o1&limit=2"
    full = client.get(asked).json()
    bare = client.get(asked + "&reasons=false").json()

    assert [k["alias"] for k in full["keys"]] == ["direct", "grouped"]
    assert bare == {**full, "keys": without_reasons(full["keys"])}
    after = f"&cursor={bare['next_cursor']}"
    assert (
        without_reasons(client.get(asked + after).json()["keys"])
        == (client.get(asked + after + "&reasons=false").json()["keys"])
    )


def test_a_keys_access_without_reasons_lists_the_same_names(
    client: Any, keys: list
) -> None:
    path = f"/v1/keys/{keys[2]['id']}/access"
    position = client.get(path).json()["as_of"]
    client.delete("/v1/catalog/model/openai/o1")

    for query in ("", f"&position={position}"):
        full = client.get(f"{path}?kind=model{query}").json()
        bare = client.get(f"{path}?kind=model&reasons=false{query}").json()
        assert bare["resources"]["model"] == without_reasons(full["resources"]["model"])
    then = client.get(f"{path}?reasons=false&position={position}").json()
    assert then["resources"]["model"] == [
        {"name": "openai/gpt-4o"},
        {"name": "openai/o1"},
    ]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/who-can-use?kind=model&name=openai/o1&reasons=maybe",
        "/v1/keys/{id}/access?reasons=2",
    ],
)
def test_reasons_takes_only_true_or_false(client: Any, keys: list, path: str) -> None:
    answer = client.get(path.format(id=keys[0]["id"]))

    assert answer.status_code == 400
    assert "reasons" in answer.json()["error"]["message"]


def test_every_kind_at_once_gives_each_kinds_own_reasons(client: Any) -> None:
    """Each kind's reasons are made apart: none may turn up under another.
    (Reasons once shared their JSON by object id without keeping the object:
    with these counts, a later kind's new reasons took the ids of a freed
    kind's and showed its selectors.)"""
    grants: dict[str, list[str]] = {}
    for kind, count in (("model", 300), ("mcp_server", 5), ("agent", 30)):
        grants[kind] = [f"{kind}-{n}" for n in range(count)]
        client.post("/v1/catalog/sync", json={"kind": kind, "names": grants[kind]})
    group = client.post("/v1/access-groups", json={"name": "all", "grants": grants})
    key = client.post(
        "/v1/keys",
        json={"alias": "k", "grants": grants, "access_groups": [group.json()["id"]]},
    ).json()
    path = f"/v1/keys/{key['id']}/access"
    position = client.get(path).json()["as_of"]

    for query in ("", f"position={position}"):
        together = client.get(f"{path}?{query}").json()["resources"]
        for kind in grants:
            alone = client.get(f"{path}?kind={kind}&{query}").json()["resources"]
            assert together[kind] == alone[kind]
            selectors = {r["selector"] for item in alone[kind] for r in item["reasons"]}
            assert selectors == set(grants[kind])


@pytest.mark.parametrize("asked", ["position=1", "at=2026-01-01T00:00:00Z", "position=x"])
def test_who_can_use_refuses_a_question_about_the_past(
    client: Any, keys: list, asked: str
) -> None:
    answer = client.get(f"/v1/who-can-use?kind=model&name=openai/o1&{asked}")

    assert answer.status_code == 400
    assert "/v1/audit/grants" in answer.json()["error"]["message"]
