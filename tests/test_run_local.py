"""`make run`'s script for real: the layout and modes of what it creates, and its Ctrl-C."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.harness import ROOT, base_env, free_port, wait_until

pytestmark = pytest.mark.integration


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_run_local_keeps_the_agent_beside_var_private_and_says_what_ctrl_c_leaves(tmp_path):
    var = tmp_path / "var"
    agent_dir = tmp_path / "var-agent"
    # A checkout from before the agent had its own directory.
    (var / "agent" / "environments").mkdir(parents=True)
    (var / "agent.token").write_text("enca_from-an-older-checkout")
    port = free_port()
    env = base_env(var, PY=sys.executable, HOST="127.0.0.1", PORT=str(port))
    proc = subprocess.Popen(
        ["bin/run-local"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        wait_until(lambda: "tunnel connected" in "".join(output), timeout=60, what="agent up")
        assert f"runs workspaces under {agent_dir}/" in "".join(output)
        assert not (var / "agent").exists() and (agent_dir / "environments").is_dir()
        assert not (var / "agent.token").exists()
        assert mode(var) == mode(agent_dir) == 0o700
        for private in (
            agent_dir / "agent.token",
            var / "portal.sqlite3",
            var / "encryption.key",
            var / "secret_key",
        ):
            assert mode(private) == 0o600, private
        assert (agent_dir / "agent.token").read_text().startswith("enca_")
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        reader.join(timeout=5)
    text = "".join(output)
    assert "Workspaces keep running" in text
    assert "the agent adopts them again at the next `make run`" in text
    token = (agent_dir / "agent.token").read_text()
    assert token not in text
