"""The admin UI end to end, in Debian's Chromium driven by Playwright, against
a real server started here on 127.0.0.1 over the real catalog (6,360 names).

Screenshots of each page at 1280 and 390 px go to tests/artifacts/.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from playwright import sync_api

from conftest import MASTER_KEY, SHARED

CHROMIUM = "/usr/bin/chromium"
# No outside network here: without these Chromium keeps calling home.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-proxy-server",
]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
WIDTHS = (1280, 390)
MODELS = ("gmi/openai/gpt-4o", "gmi/openai/gpt-4o-mini")
MCP_SERVER = "github"
AGENT = "a2a_agentspace_integration"

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def catalog_names(kind_file: str) -> list[str]:
    lines = (SHARED / "data" / "catalog" / kind_file).read_text().splitlines()
    return [json.loads(line)["name"] for line in lines if line.strip()]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """`accessledger serve` on a fresh SQLite store, with the catalog loaded."""
    port = free_port()
    command = [
        str(Path(sys.executable).with_name("accessledger")),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--database",
        f"sqlite:///{tmp_path / 'ledger.db'}",
    ]
    env = {**os.environ, "ACCESSLEDGER_MASTER_KEY": MASTER_KEY}
    process = subprocess.Popen(command, env=env, cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base, process)
        load_catalog(base)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=20)


def wait_until_up(base: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    with httpx.Client(base_url=base, trust_env=False) as client:
        while time.monotonic() < deadline:
            assert process.poll() is None, "the server exited"
            try:
                if client.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
    pytest.fail("the server did not start in 30 s")


def load_catalog(base: str) -> None:
    headers = {"Authorization": f"Bearer {MASTER_KEY}"}
    files = {"model": "models.jsonl", "mcp_server": "mcp_servers.jsonl"}
    files["agent"] = "agents.jsonl"
    with httpx.Client(base_url=base, headers=headers, trust_env=False) as client:
        for kind, file in files.items():
            body = {"kind": kind, "names": catalog_names(file)}
            client.post("/v1/catalog/sync", json=body, timeout=120).raise_for_status()


@pytest.fixture
def browser_page(server: str) -> Iterator[tuple[object, list[str], list[str]]]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        elsewhere: list[str] = []
        problems: list[str] = []
        page.on(
            "request",
            lambda r: None if r.url.startswith(server) else elsewhere.append(r.url),
        )
        page.on(
            "console",
            lambda m: problems.append(m.text) if m.type == "error" else None,
        )
        page.on("pageerror", lambda e: problems.append(str(e)))
        try:
            yield page, elsewhere, problems
        finally:
            browser.close()


# Controls a person cannot name: no label, no aria-label.
UNLABELLED = """() => [...document.querySelectorAll(
    'input:not([type=hidden]), select, textarea, button')]
  .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
    && !(e.tagName === 'BUTTON' && e.textContent.trim()))
  .map(e => e.outerHTML.slice(0, 80))"""
# Whether the page is wider than the window: a sideways scroll at 390 px.
OVERFLOWS = "() => document.documentElement.scrollWidth > window.innerWidth + 1"


def shoot(page, name: str, ours: bool = True) -> None:  # type: ignore[no-untyped-def]
    """The page at both widths, full length; on our own pages, every control
    labelled and nothing wider than the window (Swagger UI is not ours)."""
    assert not ours or page.evaluate(UNLABELLED) == [], name
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        too_wide = ours and page.evaluate(OVERFLOWS)
        assert not too_wide, f"{name} is wider than {width} px"
        page.screenshot(path=str(ARTIFACTS / f"{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})


def pick(page, kind: str, query: str, name: str) -> None:  # type: ignore[no-untyped-def]
    """Search one tab of the picker and add one name from the results."""
    page.get_by_role("tab", name=tab_name(kind)).click()
    page.locator(f"#search-{kind}").fill(query)
    button = page.locator(f"#results-{kind} button[data-name='{name}']")
    button.click()
    page.locator(f"ul.picked[data-field='{kind}'] input[value='{name}']").wait_for(
        state="attached"
    )


def tab_name(kind: str) -> str:
    return {"model": "Models", "mcp_server": "MCP servers", "agent": "Agents"}[kind]


def test_group_key_access_and_delete_in_a_browser(server: str, browser_page) -> None:
    page, elsewhere, problems = browser_page
    expect = sync_api.expect

    # Signing in: the first page asks for the token.
    page.goto(f"{server}/ui/groups")
    expect(page).to_have_url(f"{server}/ui/sign-in")
    shoot(page, "01-sign-in")
    page.get_by_label("Admin token").fill(MASTER_KEY)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Access groups")).to_be_visible()

    # A group with two models, one MCP server and one agent, from the three tabs.
    page.get_by_role("link", name="New group").click()
    page.get_by_label("Name", exact=True).fill("Research")
    pick(page, "model", "gmi/openai/gpt-4o", MODELS[0])
    pick(page, "model", "gpt-4o-mini", MODELS[1])
    page.locator("#search-model").fill("gmi/openai/*")
    expect(page.locator("#results-model .pattern-note")).to_contain_text("matches")
    shoot(page, "02-group-form-models")
    pick(page, "mcp_server", "git", MCP_SERVER)
    # The agent by keyboard alone: arrow to its tab, type, Enter adds the match.
    page.get_by_role("tab", name="MCP servers").focus()
    page.keyboard.press("ArrowRight")
    expect(page.get_by_role("tab", name="Agents")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.locator("#search-agent")).to_be_focused()
    page.keyboard.type("agentspace_integration")
    page.locator(f"#results-agent button[data-name='{AGENT}']").wait_for()
    page.keyboard.press("Enter")
    expect(
        page.locator(f"ul.picked[data-field='agent'] input[value='{AGENT}']")
    ).to_have_count(1)
    shoot(page, "03-group-form-agents")
    page.get_by_role("button", name="Create group").click()
    expect(page.get_by_role("heading", name="Research")).to_be_visible()
    for name in (*MODELS, MCP_SERVER, AGENT):
        expect(page.locator("main code", has_text=name).first).to_be_visible()
    shoot(page, "04-group-detail")

    # A key with that group, from Optional settings; the secret shown once.
    page.get_by_role("link", name="Keys", exact=True).click()
    page.get_by_role("link", name="New key").click()
    page.get_by_label("Alias").fill("research-gateway")
    page.get_by_text("Optional settings").click()
    page.get_by_label("Research").check()
    shoot(page, "05-key-form")
    page.get_by_role("button", name="Create key").click()
    secret = page.get_by_label("Secret").input_value()
    assert secret.startswith("sk-") and len(secret) == 46
    shoot(page, "06-key-secret")

    # The key's access: the four resources, each with the group as its reason.
    page.get_by_role("link", name="Open the key").click()
    access = page.locator("#access-kinds")
    for name in (*MODELS, MCP_SERVER, AGENT):
        item = access.locator(
            "ul.access > li", has=page.locator(f"code:text-is('{name}')")
        )
        expect(item).to_contain_text("group on the key")
        expect(item.get_by_role("link", name="Research")).to_be_visible()
    assert page.content().count(secret) == 0
    shoot(page, "07-key-detail")

    # The group list searches as you type, without a page load.
    key_url = page.url
    page.get_by_role("link", name="Access groups").click()
    page.get_by_label("Search by name").fill("zzz")
    expect(page.locator("#group-rows")).to_contain_text("No access groups")
    page.get_by_label("Search by name").fill("resea")
    row = page.locator("#group-rows tr", has_text="Research")
    expect(row).to_contain_text("2")
    shoot(page, "04-group-list")
    page.get_by_role("link", name="Keys", exact=True).click()
    shoot(page, "07-key-list")
    page.goto(key_url)

    # Deleting the group: the impact first, then the key's access is empty.
    page.get_by_role("link", name="Research").first.click()
    page.get_by_role("link", name="Delete…").click()
    impact = page.locator("table.impact")
    expect(impact).to_contain_text("research-gateway")
    for name in (*MODELS, MCP_SERVER, AGENT):
        expect(impact).to_contain_text(name)
    shoot(page, "08-group-delete")
    page.get_by_role("button", name="Delete the group").click()
    expect(page.get_by_role("heading", name="Access groups")).to_be_visible()
    page.goto(key_url)
    expect(access.locator("ul.access > li.hint")).to_have_count(3)
    shoot(page, "09-key-after-delete")

    # The other pages, for the record at both widths.
    for section in ("catalog", "audit", "teams"):
        page.goto(f"{server}/ui/{section}")
        shoot(page, f"10-{section}")
    page.get_by_label("Name", exact=True).fill("Platform")
    page.get_by_role("button", name="Create team").click()
    expect(page.get_by_role("heading", name="Platform")).to_be_visible()
    shoot(page, "10-team-detail")

    # Swagger UI from the packaged assets alone.
    page.goto(f"{server}/docs")
    expect(page.locator(".swagger-ui .title")).to_contain_text("accessledger")
    expect(page.get_by_text("/v1/check").first).to_be_visible()
    shoot(page, "11-docs", ours=False)

    # Signing out ends the session: the pages ask for the token again.
    page.goto(f"{server}/ui/teams")
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{server}/ui/sign-in")
    page.goto(f"{server}/ui/keys")
    expect(page).to_have_url(f"{server}/ui/sign-in")

    assert elsewhere == [], f"requests left 127.0.0.1: {elsewhere[:5]}"
    assert problems == [], f"browser errors: {problems[:5]}"
