"""OpenAI's model list and model object, read through the official client."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from conftest import ADMIN


def admin_client(url: str) -> Any:
    import httpx

    return httpx.Client(base_url=url, headers=ADMIN, timeout=10)


@pytest.fixture
def gateway_world(live_url: str) -> dict[str, Any]:
    """Three models in the catalog; a key whose group holds two of them."""
    with admin_client(live_url) as admin:
        for name in ("openai/gpt-4o", "anthropic/claude-opus-5", "local-llama"):
            assert admin.put(f"/v1/catalog/model/{name}").status_code == 201
        group = admin.post(
            "/v1/access-groups",
            json={"name": "chat", "grants": {"model": ["openai/*", "local-llama"]}},
        ).json()
        key = admin.post(
            "/v1/keys", json={"alias": "app", "access_groups": [group["id"]]}
        ).json()
    return {"url": live_url, "key": key, "group": group}


def openai_client(world: dict[str, Any], secret: str) -> openai.OpenAI:
    return openai.OpenAI(
        api_key=secret, base_url=f"{world['url']}/v1", max_retries=0, timeout=10
    )


def test_the_list_is_the_models_check_allows_sorted(gateway_world: dict) -> None:
    client = openai_client(gateway_world, gateway_world["key"]["secret"])

    models = list(client.models.list())

    assert [m.id for m in models] == ["local-llama", "openai/gpt-4o"]
    assert {m.object for m in models} == {"model"}
    assert [m.owned_by for m in models] == ["accessledger", "openai"]
    assert all(isinstance(m.created, int) and m.created > 1_700_000_000 for m in models)


def test_one_model_is_the_same_object_as_in_the_list(gateway_world: dict) -> None:
    client = openai_client(gateway_world, gateway_world["key"]["secret"])

    model = client.models.retrieve("openai/gpt-4o")

    listed = {m.id: m for m in client.models.list()}
    assert model == listed["openai/gpt-4o"]


def test_a_model_outside_the_key_is_not_found(gateway_world: dict) -> None:
    client = openai_client(gateway_world, gateway_world["key"]["secret"])

    for name in ("anthropic/claude-opus-5", "no/such-model"):
        with pytest.raises(openai.NotFoundError) as raised:
            client.models.retrieve(name)
        error = raised.value.body
        assert error["code"] == "not_found"
        assert error["type"] == "invalid_request_error"


def test_a_revoked_model_leaves_the_list_at_once(gateway_world: dict) -> None:
    client = openai_client(gateway_world, gateway_world["key"]["secret"])
    group_id = gateway_world["group"]["id"]

    with admin_client(gateway_world["url"]) as admin:
        response = admin.patch(
            f"/v1/access-groups/{group_id}", json={"remove": {"model": ["openai/*"]}}
        )
        assert response.status_code == 200

    assert [m.id for m in client.models.list()] == ["local-llama"]
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("openai/gpt-4o")


def test_a_blocked_key_sees_an_empty_list(gateway_world: dict) -> None:
    client = openai_client(gateway_world, gateway_world["key"]["secret"])
    key_id = gateway_world["key"]["id"]

    with admin_client(gateway_world["url"]) as admin:
        assert admin.post(f"/v1/keys/{key_id}/block").status_code == 200

    assert list(client.models.list()) == []
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("local-llama")


def test_only_a_live_key_secret_is_let_in(gateway_world: dict) -> None:
    for secret in ("sk-unknown", "test-master-key"):
        client = openai_client(gateway_world, secret)
        with pytest.raises(openai.AuthenticationError):
            client.models.list()
        with pytest.raises(openai.AuthenticationError):
            client.models.retrieve("local-llama")
