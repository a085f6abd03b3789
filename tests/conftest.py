"""Fixtures that start real portal and agent processes on loopback."""

from __future__ import annotations

import pytest

from tests.harness import Agent, Api, Portal, wait_until


@pytest.fixture
def portal(tmp_path):
    server = Portal(var_dir=tmp_path / "portal")
    server.prepare()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def agent(portal, tmp_path):
    process = Agent(portal.url, portal.agent_token, tmp_path / "agent").start()
    yield process
    process.stop()
    process.kill_workspaces()


@pytest.fixture
def admin_api(portal) -> Api:
    return Api(portal.url, portal.token_for("admin@portal.localhost"))


@pytest.fixture
def connected(portal, agent, admin_api):
    """The agent is connected: a workspace listing reaches its cluster."""
    wait_until(
        lambda: admin_api("GET", "/workspaces").json()["unreachable_clusters"] == [],
        what="agent connected",
    )
    return agent
