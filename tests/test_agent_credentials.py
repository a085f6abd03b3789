"""End to end: revoking an agent's credential ends its live tunnel at once (real processes).

A real portal (the production launcher) and real agents: rotating a cluster's token or
deleting the cluster through the admin API closes the agent's tunnel within a second
(`TUNNEL_CLOSE_REVOKED`), audits it, and the agent keeps retrying — refused — until it is
restarted with the new token.
"""

from __future__ import annotations

import json

import pytest

from tests.harness import Agent, Api, Portal, portal_db_rows, wait_until

pytestmark = pytest.mark.integration

REFUSED = "the portal rejected the agent token (HTTP 403)"


def revoked(reason: str) -> str:
    return f"the portal revoked the agent token (credentials revoked: {reason})"


def cluster_status(api: Api, name: str) -> str:
    return api("GET", f"/admin/clusters/{name}").json()["status"]


def audited_closes(portal: Portal) -> list[tuple[str, dict]]:
    rows = portal_db_rows(
        portal,
        "SELECT target_id, details FROM audit_auditevent WHERE action = ? ORDER BY id",
        ("cluster.tunnel_closed",),
    )
    return [(target, json.loads(details)) for target, details in rows]


def assert_refused_and_retrying(portal: Portal, agent: Agent, secrets: list[str]) -> None:
    """The old token is refused on the agent's redial, and the agent keeps running."""
    wait_until(lambda: REFUSED in agent.log(), timeout=10, what="the old token refused")
    assert "unknown or missing token" in portal.log()
    assert agent.proc.poll() is None, "the agent gave up"
    for secret in secrets:
        assert secret not in agent.log() and secret not in portal.log()


def test_rotating_the_token_closes_the_tunnel_until_the_agent_restarts_with_it(
    portal, connected, admin_api
):
    agent = connected
    old_token = agent.token

    response = admin_api("POST", "/admin/clusters/local/rotate-token")

    assert response.status_code == 200, response.text
    new_token = response.json()["token"]
    wait_until(
        lambda: revoked("token_rotated") in agent.log(),
        timeout=1.0,
        interval=0.02,
        what="the tunnel closed as revoked",
    )
    wait_until(
        lambda: audited_closes(portal) == [("local", {"reason": "token_rotated"})],
        what="the close audited",
    )
    assert cluster_status(admin_api, "local") == "disconnected"
    assert_refused_and_retrying(portal, agent, [old_token, new_token])

    agent.stop()
    agent.token = new_token
    agent.start()
    wait_until(
        lambda: cluster_status(admin_api, "local") == "connected",
        what="the agent back with its new token",
    )


def test_deleting_the_cluster_closes_its_tunnel_and_refuses_the_agent(portal, admin_api, tmp_path):
    response = admin_api("POST", "/admin/clusters", json={"name": "edge"})
    assert response.status_code == 201, response.text
    token = response.json()["token"]
    agent = Agent(portal.url, token, tmp_path / "edge-agent").start()
    try:
        wait_until(lambda: cluster_status(admin_api, "edge") == "connected", what="edge agent")

        assert admin_api("DELETE", "/admin/clusters/edge").status_code == 204

        wait_until(
            lambda: revoked("cluster_deleted") in agent.log(),
            timeout=1.0,
            interval=0.02,
            what="the tunnel closed as revoked",
        )
        wait_until(
            lambda: audited_closes(portal) == [("edge", {"reason": "cluster_deleted"})],
            what="the close audited",
        )
        assert_refused_and_retrying(portal, agent, [token])
    finally:
        agent.stop()
        agent.kill_workspaces()
