"""A real LiteLLM proxy, with accessledger's plug-in as its custom auth.

The proxy runs from its own environment (`.venv-litellm`, made by `.ci/run`;
LiteLLM pins its own web stack) as a subprocess on 127.0.0.1, with no
database, its telemetry vetoed and every remote file it could fetch read
from its package instead. Its models answer with `mock_response`, so no
provider is called.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import openai
import pytest
import yaml

from conftest import ADMIN, LiveServer

ROOT = Path(__file__).resolve().parent.parent
LITELLM = ROOT / ".venv-litellm" / "bin" / "litellm"
PLUGIN_FOLDER = ROOT / "src" / "gateway"
START_SECONDS = 180
# Where any request LiteLLM tried to send to the internet would go: nothing
# listens there, so a call home fails at once instead of leaving the machine.
NOWHERE = "http://127.0.0.1:9"

OFFLINE = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS": "True",
    "LITELLM_LOCAL_BLOG_POSTS": "True",
    "LITELLM_LOCAL_POLICY_TEMPLATES": "True",
    "LITELLM_LOCAL_AUTOROUTER_PRESETS": "True",
    "LITELLM_TELEMETRY_DISABLED": "True",
    "HTTP_PROXY": NOWHERE,
    "HTTPS_PROXY": NOWHERE,
    "ALL_PROXY": NOWHERE,
    "NO_PROXY": "127.0.0.1,localhost",
}

pytestmark = [pytest.mark.slow]


def proxy_config(models: list[str]) -> dict[str, Any]:
    return {
        "model_list": [
            {
                "model_name": name,
                "litellm_params": {
                    "model": "openai/mock",
                    "api_key": "not-used",
                    "mock_response": f"hello from {name}",
                },
            }
            for name in models
        ],
        "general_settings": {
            "custom_auth": "litellm_auth.user_api_key_auth",
            # LiteLLM refuses to start without one; accessledger's check runs
            # first, so this key is never the one that lets a request in.
            "master_key": "sk-" + secrets.token_urlsafe(32),
        },
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def gateway_token(url: str) -> str:
    issued = httpx.post(
        f"{url}/v1/admin-tokens",
        json={"name": "litellm", "role": "gateway"},
        headers=ADMIN,
    )
    assert issued.status_code == 201, issued.text
    return str(issued.json()["token"])


@pytest.fixture
def litellm_proxy(live_server: LiveServer, tmp_path: Path) -> Iterator[str]:
    """A LiteLLM proxy that asks the live accessledger about every request."""
    if not LITELLM.exists():
        pytest.fail(
            f"{LITELLM} is missing: python3 -m venv .venv-litellm && "
            ".venv-litellm/bin/pip install 'litellm[proxy]==1.108.7'"
        )
    config = tmp_path / "litellm.yaml"
    config.write_text(yaml.safe_dump(proxy_config(["chat-fast", "chat-big"])))
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "PYTHONPATH": str(PLUGIN_FOLDER),
        "ACCESSLEDGER_URL": live_server.url,
        # The least the plug-in needs: a token of the gateway role.
        "ACCESSLEDGER_GATEWAY_TOKEN": gateway_token(live_server.url),
        **OFFLINE,
    }
    log = (tmp_path / "litellm.log").open("wb")
    command = [str(LITELLM), "--config", str(config), "--host", "127.0.0.1"]
    proxy = subprocess.Popen(
        [*command, "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(proxy, url, tmp_path / "litellm.log")
        yield url
    finally:
        stop(proxy)
        log.close()


def stop(proxy: subprocess.Popen) -> None:
    """End the proxy and the workers it started (its own process group)."""
    if proxy.poll() is not None:
        return
    os.killpg(proxy.pid, signal.SIGTERM)
    try:
        proxy.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proxy.pid, signal.SIGKILL)
        proxy.wait(10)


def wait_until_up(proxy: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if proxy.poll() is not None:
            pytest.fail(f"LiteLLM exited with {proxy.returncode}:\n{tail(log)}")
        try:
            if httpx.get(f"{url}/health/liveliness", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    pytest.fail(f"LiteLLM did not answer within {START_SECONDS} s:\n{tail(log)}")


def tail(log: Path) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-40:])


def chat(url: str, secret: str, model: str) -> str:
    client = openai.OpenAI(api_key=secret, base_url=url, max_retries=0, timeout=30)
    reply = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}]
    )
    return reply.choices[0].message.content or ""


def test_litellm_asks_accessledger_on_every_request(
    live_server: LiveServer, litellm_proxy: str
) -> None:
    with httpx.Client(base_url=live_server.url, headers=ADMIN) as admin:
        for name in ("chat-fast", "chat-big"):
            admin.put(f"/v1/catalog/model/{name}").raise_for_status()
        group = admin.post(
            "/v1/access-groups", json={"name": "fast", "grants": {"model": ["chat-fast"]}}
        ).json()
        key = admin.post(
            "/v1/keys", json={"alias": "app", "access_groups": [group["id"]]}
        ).json()

        assert chat(litellm_proxy, key["secret"], "chat-fast") == "hello from chat-fast"

        with pytest.raises(openai.PermissionDeniedError) as outside:
            chat(litellm_proxy, key["secret"], "chat-big")
        assert "no_grant" in outside.value.message

        # A route the plug-in does not list is still checked by its body's model.
        other_route = post(
            litellm_proxy, "/v1/moderations", key["secret"], {"model": "chat-big"}
        )
        assert other_route.status_code == 403
        assert "accessledger denied model 'chat-big': no_grant" in other_route.text

        with pytest.raises(openai.AuthenticationError) as unknown:
            chat(litellm_proxy, "sk-" + "x" * 43, "chat-fast")
        assert "unknown_key" in unknown.value.message

        admin.patch(
            f"/v1/access-groups/{group['id']}", json={"remove": {"model": ["chat-fast"]}}
        ).raise_for_status()
        with pytest.raises(openai.PermissionDeniedError) as revoked:
            chat(litellm_proxy, key["secret"], "chat-fast")
        assert "no_grant" in revoked.value.message

    # With accessledger gone, nothing gets through.
    live_server.stop()
    with pytest.raises(openai.APIStatusError) as unreachable:
        chat(litellm_proxy, key["secret"], "chat-fast")
    assert unreachable.value.status_code == 503
    assert "cannot be reached" in unreachable.value.message


def post(url: str, path: str, secret: str, body: dict) -> httpx.Response:
    headers = {"Authorization": f"Bearer {secret}", "Accept": "application/json"}
    return httpx.post(url + path, json=body, headers=headers, timeout=30)


def test_agent_and_mcp_routes_are_checked_by_name(
    live_server: LiveServer, litellm_proxy: str
) -> None:
    with httpx.Client(base_url=live_server.url, headers=ADMIN) as admin:
        for kind, name in [("agent", "analytics"), ("agent", "billing")]:
            admin.put(f"/v1/catalog/{kind}/{name}").raise_for_status()
        for name in ("github", "jira"):
            admin.put(f"/v1/catalog/mcp_server/{name}").raise_for_status()
        grants = {"agent": ["analytics"], "mcp_server": ["github"]}
        key = admin.post("/v1/keys", json={"alias": "agents", "grants": grants}).json()

    message = {"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": {}}
    refused = post(litellm_proxy, "/a2a/billing/message/send", key["secret"], message)
    assert refused.status_code == 403
    assert "accessledger denied agent 'billing': no_grant" in refused.text
    # Allowed through; the proxy itself then has no such agent configured.
    passed = post(litellm_proxy, "/a2a/analytics/message/send", key["secret"], message)
    assert passed.status_code == 404 and "Agent 'analytics' not found" in passed.text

    listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    refused = post(litellm_proxy, "/mcp/jira", key["secret"], listing)
    assert refused.status_code == 403
    assert "accessledger denied mcp_server 'jira': no_grant" in refused.text
    passed = post(litellm_proxy, "/mcp/github", key["secret"], listing)
    assert passed.status_code not in (401, 403, 503), passed.text

    # The shared /mcp route names its servers in a header.
    refused = post_to_mcp(litellm_proxy, key["secret"], listing, "github,jira")
    assert refused.status_code == 403
    assert "accessledger denied mcp_server 'jira': no_grant" in refused.text
    passed = post_to_mcp(litellm_proxy, key["secret"], listing, "github")
    assert passed.status_code not in (401, 403, 503), passed.text


def post_to_mcp(url: str, secret: str, body: dict, servers: str) -> httpx.Response:
    headers = {
        "Authorization": f"Bearer {secret}",
        "Accept": "application/json, text/event-stream",
        "x-mcp-servers": servers,
    }
    return httpx.post(url + "/mcp", json=body, headers=headers, timeout=30)


ROUTES = [
    ("/openai/deployments/gpt-4o/chat/completions", None, [["model", "gpt-4o"]]),
    ("/engines/davinci/completions", None, [["model", "davinci"]]),
    ("/a2a/analytics", None, [["agent", "analytics"]]),
    ("/v1/a2a/analytics/message/send", None, [["agent", "analytics"]]),
    ("/mcp/github/tools/list", None, [["mcp_server", "github"]]),
    ("/github/mcp", None, [["mcp_server", "github"]]),
    ("/mcp", "github, jira", [["mcp_server", "github"], ["mcp_server", "jira"]]),
    ("/mcp", None, []),
    ("/v1/chat/completions", None, []),
]


def test_routes_name_their_resources(tmp_path: Path) -> None:
    """The plug-in's reading of paths, run in LiteLLM's own environment."""
    script = (
        "import json, sys; from litellm_auth import resources_in_path; "
        "print(json.dumps([resources_in_path(p, h) for p, h, _ in json.load(sys.stdin)]))"
    )
    done = subprocess.run(
        [str(LITELLM.parent / "python"), "-c", script],
        input=json.dumps(ROUTES),
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(PLUGIN_FOLDER), "HOME": str(tmp_path), **OFFLINE},
        timeout=120,
    )

    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found == [expected for _, _, expected in ROUTES]
