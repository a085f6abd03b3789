"""The AI tools for real, in headless Chromium: OpenCode in the Chat tab and Claude Code in
a terminal, each talking to a test-owned LLM provider (tests/fake_llm.py).

A real portal and agent with sandboxed workspaces and the pinned tools (`make setup`
installs them into tools/). The fake providers run *inside* the workspace (its setup
script writes tests/fake_llm.py, its start command runs two of them on the workspace's
own loopback), which is where a company's LLM gateway would be reached from: the
workspace, never the portal. They record every request in the workspace home, so the
test can check what the tools really sent — the injected key, the blueprint's system
prompt — and that none of it, nor the conversation, ever reached the portal's database
or logs. Screenshots: `var/test-artifacts/ai-*.png`.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from tests import browser
from tests.fake_llm import ANSWER
from tests.harness import Api, Portal, create_blueprint, create_member, setup_script_writing

pytestmark = [pytest.mark.integration, pytest.mark.browser]

ADA = "ada@example.com"
PASSWORD = "builder-password-1"
CUSTOM_KEY = "sk-custom-KEY-CANARY-7f3a"
ANTHROPIC_KEY = "sk-ant-KEY-CANARY-91bc"
SYSTEM_PROMPT = "SYSTEM-CANARY-31: answer in one short sentence."
CHAT_PROMPT = "Hello assistant PROMPT-CANARY-72"
CLAUDE_PROMPT = "Hello Claude PROMPT-CANARY-88"
FAKE_LLM = (Path(__file__).parent / "fake_llm.py").read_text()
RECORDS = ".fake-llm"


@pytest.fixture
def portal(tmp_path):
    server = Portal(var_dir=tmp_path / "portal")
    server.env_extra["PORTAL_URL"] = f"http://portal.localhost:{server.port}"
    server.prepare()
    create_member(server, ADA, PASSWORD)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def chromium():
    with sync_playwright() as playwright:
        launched = browser.launch(playwright)
        yield launched
        launched.close()


def _ai_blueprint(admin_api: Api) -> dict:
    start = (
        f"mkdir -p {RECORDS}; "
        f"python3 fake_llm.py 9111 {RECORDS}/openai.jsonl & "
        f"python3 fake_llm.py 9112 {RECORDS}/anthropic.jsonl & "
        'exec python3 -m http.server "$PORT" --bind 127.0.0.1'
    )
    return create_blueprint(
        admin_api,
        "ai-test",
        name="AI test",
        setup_script=setup_script_writing("fake_llm.py", FAKE_LLM),
        start_command=start,
        chat_system_prompt=SYSTEM_PROMPT,
        opencode_default_model="custom-llm/fake-model",
        layout={
            "tabs": [
                {"kind": "chat", "title": "Chat"},
                {"kind": "claude", "title": "Claude Code"},
                {"kind": "terminal", "title": "Terminal"},
            ],
            "locked": False,
            "preview": True,
            "path_bar": True,
        },
        ai_providers=[
            {
                "provider": "custom",
                "endpoint_url": "http://127.0.0.1:9111/v1",
                "model": "fake-model",
                "api_key": CUSTOM_KEY,
            },
            {
                "provider": "anthropic",
                "endpoint_url": "http://127.0.0.1:9112",
                "model": "claude-sonnet-4-6",
                "api_key": ANTHROPIC_KEY,
            },
        ],
    )


def _records(home: Path, name: str) -> list[dict]:
    path = home / RECORDS / name
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _database_dump(portal: Portal) -> str:
    with sqlite3.connect(portal.var_dir / "portal.sqlite3", timeout=10) as db:
        return "\n".join(db.iterdump())


@pytest.mark.timeout(900)
def test_chat_and_claude_code_talk_to_the_provider_from_the_workspace_only(
    portal, connected, admin_api, chromium: Browser
):
    _ai_blueprint(admin_api)
    ada = Api(portal.url, portal.token_for(ADA))
    launched = ada("POST", "/workspaces", json={"blueprint": "ai-test", "name": "AI demo"})
    assert launched.status_code == 201, launched.text
    workspace_id = launched.json()["id"]
    ada.wait_status(workspace_id, "running", timeout=120)
    home = connected.data_dir / "environments" / workspace_id / "home"
    origin = f"http://portal.localhost:{portal.port}"

    context = browser.new_context(chromium)
    page = context.new_page()
    browser.sign_in(page, origin, ADA, PASSWORD)
    page.goto(f"{origin}/workspaces/{workspace_id}/")

    # The Chat tab: OpenCode's own web UI, served from inside the workspace.
    page.get_by_role("tab", name="Chat").click()
    chat = page.get_by_role("tabpanel", name="Chat")
    frame = chat.frame_locator("iframe[title='AI chat']")
    prompt = frame.get_by_role("textbox", name="Prompt")
    expect(prompt).to_be_visible(timeout=90_000)
    expect(chat.get_by_role("status")).to_be_hidden()
    browser.screenshot(page, "ai-chat-ready")
    prompt.click()
    prompt.press_sequentially(CHAT_PROMPT)
    prompt.press("Enter")
    expect(frame.get_by_text(ANSWER).first).to_be_visible(timeout=60_000)
    browser.screenshot(page, "ai-chat-answered")

    chats = [
        r
        for r in _records(home, "openai.jsonl")
        if r["method"] == "POST" and CHAT_PROMPT in json.dumps(r["body"])
    ]
    assert chats, "the fake provider never saw the builder's prompt"
    assert chats[0]["headers"]["authorization"] == f"Bearer {CUSTOM_KEY}"
    assert SYSTEM_PROMPT in json.dumps(chats[0]["body"])  # AGENTS.md, from the blueprint

    # Claude Code in a terminal of the same workspace, against the Anthropic gateway.
    page.get_by_role("tab", name="Terminal", exact=True).click()
    terminal = page.get_by_role("tabpanel", name="Terminal", exact=True).get_by_label(
        "Terminal", exact=True
    )
    browser.run_in_terminal(page, terminal, f'claude -p "{CLAUDE_PROMPT}"', "ANSWER-CANARY")
    # Keys are in the environment, never on a command line (here: inside the sandbox).
    browser.run_in_terminal(
        page,
        terminal,
        "ps -eo args | python3 -c \"import os,sys; t=sys.stdin.read(); print('IN'+'-PS', "
        "sum(os.environ[k] in t for k in ('CUSTOM_LLM_API_KEY','ANTHROPIC_API_KEY')))\"",
        "IN-PS 0",
    )
    browser.screenshot(page, "ai-claude-print")
    asked = [
        r
        for r in _records(home, "anthropic.jsonl")
        if r["method"] == "POST" and CLAUDE_PROMPT in json.dumps(r["body"])
    ]
    assert asked, "Claude Code never reached the Anthropic gateway"
    assert asked[0]["headers"]["x-api-key"] == ANTHROPIC_KEY
    assert SYSTEM_PROMPT in json.dumps(asked[0]["body"])  # CLAUDE.md, from the blueprint

    # The Claude Code tab opens Claude Code itself, at its prompt: no first-start wizard,
    # no "trust this folder?", no "use this API key?" — the blueprint decided those.
    page.get_by_role("tab", name="Claude Code").click()
    claude = page.get_by_role("tabpanel", name="Claude Code").get_by_label("Terminal", exact=True)
    rows = browser.terminal_rows(claude)
    expect(rows).to_contain_text("Claude Code v", timeout=60_000)
    expect(rows).not_to_contain_text("trust this folder")
    expect(rows).not_to_contain_text("use this API key")
    # Its prompt takes input once its status line shows (whichever permission mode it has).
    expect(rows).to_contain_text(re.compile(r"for shortcuts|shift\+tab to cycle"), timeout=60_000)
    claude.click()
    page.keyboard.type(f"{CLAUDE_PROMPT} from the tab")
    expect(rows).to_contain_text("from the tab")  # typed into its prompt, then sent
    page.keyboard.press("Enter")
    expect(rows).to_contain_text("ANSWER-CANARY", timeout=90_000)
    browser.screenshot(page, "ai-claude-tab")
    assert any("from the tab" in json.dumps(r["body"]) for r in _records(home, "anthropic.jsonl"))
    context.close()

    # Nothing of the conversation, and no key, ever reached the portal.
    dump = _database_dump(portal)
    logs = portal.log() + connected.log()
    for canary in (CHAT_PROMPT, CLAUDE_PROMPT, "ANSWER-CANARY", CUSTOM_KEY, ANTHROPIC_KEY):
        assert canary not in dump, f"{canary} is in the portal database"
        assert canary not in logs, f"{canary} is in the portal or agent logs"
    assert (home / "AGENTS.md").read_text().count(SYSTEM_PROMPT) == 1
    assert "AGENTS.md" in (home / ".gitignore").read_text().splitlines()


@pytest.mark.timeout(300)
def test_without_a_provider_the_chat_tab_says_whom_to_ask(
    portal, connected, admin_api, chromium: Browser
):
    create_blueprint(
        admin_api,
        "no-ai",
        name="No AI",
        start_command='exec python3 -m http.server "$PORT" --bind 127.0.0.1',
        layout={
            "tabs": [{"kind": "chat", "title": "Chat"}, {"kind": "terminal", "title": "Terminal"}],
            "locked": False,
            "preview": True,
            "path_bar": True,
        },
    )
    ada = Api(portal.url, portal.token_for(ADA))
    workspace_id = ada("POST", "/workspaces", json={"blueprint": "no-ai"}).json()["id"]
    ada.wait_status(workspace_id, "running", timeout=120)
    origin = f"http://portal.localhost:{portal.port}"
    context = browser.new_context(chromium)
    page = context.new_page()
    browser.sign_in(page, origin, ADA, PASSWORD)
    page.goto(f"{origin}/workspaces/{workspace_id}/")
    page.get_by_role("tab", name="Chat").click()
    expect(page.get_by_role("tabpanel", name="Chat")).to_contain_text(
        "No AI provider is configured for this blueprint — ask your administrator."
    )
    browser.screenshot(page, "ai-chat-no-provider")
    context.close()
