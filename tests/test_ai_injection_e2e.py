"""End to end: the injected variables reach every process of a workspace, and only its
owner's — through agent restarts, stop/start and a rotated key.

A real portal and agent with sandboxed workspaces; shells are opened like the browser
does (`tests.terminal_client`), and print each variable's SHA-256 prefix rather than the
value, so that no value ever appears in a terminal's output.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import subprocess

import pytest

from tests.harness import Agent, Api, create_blueprint, create_member, wait_until
from tests.terminal_client import TerminalClient, shell_ticket

pytestmark = pytest.mark.integration

ADA = "ada@example.com"
BEN = "ben@example.com"
KEY_ONE = "sk-ant-first-key-000001"
KEY_TWO = "sk-ant-rotated-key-000002"
ADA_TOKEN = "ghp_ada_personal_token_0003"
NAMES = ("ANTHROPIC_API_KEY", "GIT_TOKEN", "BLUEPRINT_CHAT_SYSTEM_PROMPT", "RDE_USER_PROFILE")


def digest(value: str | None) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:12] if value is not None else "unset"


async def _variables(api: Api, portal_url: str, workspace: str) -> dict[str, str]:
    """What a new shell of `workspace` has: name → SHA-256 prefix of the value (or unset)."""
    term = await TerminalClient.open(portal_url, shell_ticket(api, workspace), workspace=workspace)
    script = "; ".join(
        f'printf "VAR {name} %s\\n" "$(if [ -n "${{{name}+x}}" ]; then printf %s "${name}" '
        f'| sha256sum | cut -c1-12; else echo unset; fi)"'
        for name in NAMES
    )
    await term.type(script + "; echo DONE-$((6*7))\n")
    await term.until(rb"DONE-42", timeout=20)
    await term.close()
    text = term.output.decode(errors="replace")
    return dict(re.findall(r"VAR (\w+) (\w+)", text))


def variables(api: Api, portal_url: str, workspace: str) -> dict[str, str]:
    return asyncio.run(_variables(api, portal_url, workspace))


@pytest.mark.timeout(600)
def test_injected_variables_survive_restarts_follow_rotation_and_stay_with_their_owner(
    portal, agent, admin_api, tmp_path
):
    for email in (ADA, BEN):
        create_member(portal, email, "builder-password-1")
    wait_until(
        lambda: admin_api("GET", "/workspaces").json()["unreachable_clusters"] == [],
        what="agent connected",
    )
    create_blueprint(
        admin_api,
        "with-ai",
        name="With AI",
        start_command="exec sleep infinity",
        ports=[],
        chat_system_prompt="Be brief.",
        ai_providers=[{"provider": "anthropic", "api_key": KEY_ONE}],
    )
    ada = Api(portal.url, portal.token_for(ADA))
    ben = Api(portal.url, portal.token_for(BEN))
    assert ada("PUT", "/me/secrets/GIT_TOKEN", json={"value": ADA_TOKEN}).status_code == 200
    mine = ada("POST", "/workspaces", json={"blueprint": "with-ai"}).json()["id"]
    theirs = ben("POST", "/workspaces", json={"blueprint": "with-ai"}).json()["id"]
    ada.wait_status(mine, "running", timeout=60)
    ben.wait_status(theirs, "running", timeout=60)

    expected = variables(ada, portal.url, mine)
    assert expected["ANTHROPIC_API_KEY"] == digest(KEY_ONE)
    assert expected["GIT_TOKEN"] == digest(ADA_TOKEN)
    assert expected["BLUEPRINT_CHAT_SYSTEM_PROMPT"] == digest("Be brief.")
    assert expected["RDE_USER_PROFILE"] != "unset"
    # Another builder's workspace of the same blueprint: the blueprint's key, not Ada's token.
    other = variables(ben, portal.url, theirs)
    assert other["ANTHROPIC_API_KEY"] == digest(KEY_ONE)
    assert other["GIT_TOKEN"] == "unset"

    # Nothing on a command line, inside or outside the sandbox; nothing on disk in clear.
    listing = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert KEY_ONE not in listing and ADA_TOKEN not in listing
    env_dir = agent.data_dir / "environments" / mine
    for path in env_dir.iterdir():
        if path.is_file():
            assert KEY_ONE.encode() not in path.read_bytes(), path
            assert ADA_TOKEN.encode() not in path.read_bytes(), path

    # An agent restart: the running workspace keeps its variables for new shells too.
    agent.stop()
    restarted = Agent(portal.url, portal.agent_token, agent.data_dir).start()
    agent.proc = restarted.proc
    wait_until(
        lambda: admin_api("GET", "/workspaces").json()["unreachable_clusters"] == [],
        what="agent reconnected",
    )
    assert variables(ada, portal.url, mine) == expected

    # Stop and start: the same variables again.
    assert ada("POST", f"/workspaces/{mine}/stop").status_code == 200
    assert ada("POST", f"/workspaces/{mine}/start").status_code == 200
    ada.wait_status(mine, "running", timeout=60)
    assert variables(ada, portal.url, mine) == expected

    # A rotated key: "restart to apply" until the restart, then the new key everywhere.
    before = ada.workspace(mine)["env_digest"]
    patched = admin_api(
        "PATCH",
        "/admin/blueprints/with-ai",
        json={"ai_providers": [{"provider": "anthropic", "api_key": KEY_TWO}]},
    )
    assert patched.status_code == 200, patched.text
    assert ada.workspace(mine)["env_digest"] == before  # still running with the old key
    assert variables(ada, portal.url, mine)["ANTHROPIC_API_KEY"] == digest(KEY_ONE)
    assert ada("POST", f"/workspaces/{mine}/restart").status_code == 200
    ada.wait_status(mine, "running", timeout=60)
    assert ada.workspace(mine)["env_digest"] != before
    assert variables(ada, portal.url, mine)["ANTHROPIC_API_KEY"] == digest(KEY_TWO)

    logs = portal.log() + agent.log()
    for value in (KEY_ONE, KEY_TWO, ADA_TOKEN):
        assert value not in logs
