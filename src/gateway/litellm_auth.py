"""LiteLLM proxy custom auth that asks accessledger about every request.

LiteLLM loads this module itself (`general_settings.custom_auth:
litellm_auth.user_api_key_auth`, with this folder on the proxy's PYTHONPATH),
so it imports only the standard library, httpx and litellm: never the rest of
accessledger, whose dependencies LiteLLM's environment does not have.

It reads these variables:

- `ACCESSLEDGER_URL`: the service's base URL, such as http://127.0.0.1:4000;
- `ACCESSLEDGER_GATEWAY_TOKEN`: a token of the gateway role, sent to `POST /v1/check`;
- `ACCESSLEDGER_TIMEOUT_SECONDS` (optional, default 2): how long to wait.

Nothing is cached: every request is one check, so a revoked key or grant is
refused on the very next call. When the service cannot answer the request is
refused (503), never let through.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

import httpx
from litellm.proxy._types import ProxyException, UserAPIKeyAuth
from litellm.proxy.common_utils.http_parsing_utils import _read_request_body

if TYPE_CHECKING:
    from fastapi import Request

# Routes whose JSON body names the model (with or without a /v1 prefix).
MODEL_BODY_ROUTES = re.compile(
    r"^(/v1)?/(chat/completions|completions|embeddings|responses|messages)$"
)
BODY_METHODS = ("POST", "PUT", "PATCH")
# Azure's and the old engines API put the model in the path.
MODEL_PATH = re.compile(r"^(?:/openai)?/(?:deployments|engines)/([^/]+)/")
# LiteLLM serves an MCP server at /mcp/{name} and at /{name}/mcp.
MCP_PATHS = (re.compile(r"^/mcp/([^/]+)"), re.compile(r"^/([^/]+)/mcp(?:/|$)"))
# Header naming the MCP servers of a call to the shared /mcp route.
MCP_HEADER = "x-mcp-servers"
# Agent-to-agent calls name the agent in the path.
AGENT_PATH = re.compile(r"^(?:/v1)?/a2a/([^/]+)")

# Refusals that mean "this key does not exist"; the others are "not allowed".
UNKNOWN_KEY = {"unknown_key", "key_deleted"}

client: httpx.AsyncClient | None = None


async def user_api_key_auth(request: Request, api_key: str) -> UserAPIKeyAuth:
    """Allow the request only if accessledger allows every resource it names."""
    try:
        return await authorise(request, api_key)
    except ProxyException:
        raise
    except Exception as error:
        # Anything else is a refusal too: LiteLLM's "auto" custom-auth mode
        # would fall back to its own checks on any other exception.
        raise unavailable(f"unexpected {type(error).__name__}") from None


async def authorise(request: Request, api_key: str) -> UserAPIKeyAuth:
    secret = bare_secret(api_key)
    wanted = await requested_resources(request)

    if not wanted:
        await check_key_is_live(secret)
    position = None
    for kind, name in wanted:
        position = await check(secret, kind, name)

    return UserAPIKeyAuth(api_key=secret, metadata={"accessledger_position": position})


def bare_secret(api_key: str | None) -> str:
    secret = (api_key or "").strip()
    if secret.lower().startswith("bearer "):
        secret = secret[len("bearer ") :].strip()
    if not secret:
        raise refusal(401, "send a virtual key as Authorization: Bearer sk-...")
    return secret


async def requested_resources(request: Request) -> list[tuple[str, str]]:
    """The (kind, name) pairs this request would use."""
    path = request.url.path
    named = resources_in_path(path, request.headers.get(MCP_HEADER))

    # Any body that names a model is checked, on routes not listed here too
    # (images, audio, rerank...): a route this module does not know must not
    # become a way around the check.
    model = await model_in_body(request)
    if model is not None:
        named.append(("model", model))
    elif MODEL_BODY_ROUTES.match(path):
        raise refusal(400, "the request names no model")
    return named


async def model_in_body(request: Request) -> str | None:
    if request.method not in BODY_METHODS:
        return None
    body = await _read_request_body(request=request)
    model = body.get("model") if isinstance(body, dict) else None
    return model if isinstance(model, str) and model else None


def resources_in_path(path: str, mcp_header: str | None) -> list[tuple[str, str]]:
    """The resources a route names in its path (or, for MCP, a header)."""
    found = MODEL_PATH.match(path)
    if found:
        return [("model", found.group(1))]
    found = AGENT_PATH.match(path)
    if found:
        return [("agent", found.group(1))]
    for pattern in MCP_PATHS:
        found = pattern.match(path)
        if found and found.group(1) != "mcp":
            return [("mcp_server", found.group(1))]
    if path.rstrip("/") == "/mcp" and mcp_header:
        names = [name.strip() for name in mcp_header.split(",")]
        return [("mcp_server", name) for name in names if name]
    return []


async def check(secret: str, kind: str, name: str) -> int | None:
    """Ask `POST /v1/check`; raise LiteLLM's error when the answer is no."""
    body = {"key": secret, "kind": kind, "name": name}
    answer = await ask("POST", "/v1/check", json=body)
    if answer.status_code in (400, 422):
        # The key or the name cannot be asked about (a control character, an
        # empty or over-long name): the caller's request is at fault.
        raise refusal(400, f"accessledger cannot check this request: {why(answer)}")
    if answer.status_code == 401:
        raise unavailable("accessledger refused ACCESSLEDGER_GATEWAY_TOKEN")
    if answer.status_code != 200:
        raise unavailable(f"accessledger answered {answer.status_code} to a check")

    decision = answer.json()
    if decision.get("allowed") is True:
        return decision.get("position")
    because = decision.get("denied_because") or "no_grant"
    status = 401 if because in UNKNOWN_KEY else 403
    raise refusal(status, f"accessledger denied {kind} {name!r}: {because}")


def why(answer: httpx.Response) -> str:
    """The message of an error in accessledger's shape; never the request."""
    try:
        return str(answer.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return f"status {answer.status_code}"


async def check_key_is_live(secret: str) -> None:
    """A request that names no resource still needs a live key."""
    answer = await ask("GET", "/v1/models", bearer=secret)
    if answer.status_code == 401:
        raise refusal(401, "accessledger denied the request: unknown_key")
    if answer.status_code != 200:
        raise unavailable(f"accessledger answered {answer.status_code} to a key lookup")


async def ask(
    method: str, path: str, json: Any = None, bearer: str | None = None
) -> httpx.Response:
    base, token = settings()
    headers = {"Authorization": f"Bearer {bearer or token}"}
    try:
        return await shared_client().request(
            method, base + path, json=json, headers=headers
        )
    except httpx.HTTPError as error:
        raise unavailable(
            f"accessledger cannot be reached ({type(error).__name__})"
        ) from None


def settings() -> tuple[str, str]:
    base = os.environ.get("ACCESSLEDGER_URL", "").rstrip("/")
    token = os.environ.get("ACCESSLEDGER_GATEWAY_TOKEN", "")
    if not base or not token:
        raise unavailable(
            "set ACCESSLEDGER_URL and ACCESSLEDGER_GATEWAY_TOKEN for the access check"
        )
    return base, token


def shared_client() -> httpx.AsyncClient:
    """One connection pool for every check; it keeps connections, not answers."""
    global client
    if client is None:
        timeout = float(os.environ.get("ACCESSLEDGER_TIMEOUT_SECONDS", "2"))
        client = httpx.AsyncClient(timeout=timeout, trust_env=False)
    return client


def refusal(status: int, message: str) -> ProxyException:
    return ProxyException(message=message, type="auth_error", param=None, code=status)


def unavailable(message: str) -> ProxyException:
    """Fail closed: the request is refused while the answer is unknown."""
    return ProxyException(
        message=f"access check failed, request refused: {message}",
        type="auth_error",
        param=None,
        code=503,
    )
