"""End to end: a real portal (the production launcher) and a real agent run the demo blueprint."""

from __future__ import annotations

import os
import signal

import pytest

from tests.harness import Api, Portal, PreviewClient, manage, wait_until

pytestmark = pytest.mark.integration


def _app_answers(portal: Portal, api: Api, workspace_id: str) -> bool:
    """The app, reached the only way there is: through its preview (it runs in a sandbox
    with a network of its own, so nothing on the host's loopback reaches it)."""
    ticket = api("POST", f"/workspaces/{workspace_id}/preview-ticket", json={"port": 3000})
    if ticket.status_code not in (200, 201):
        return False
    response = PreviewClient.from_ticket_url(portal, ticket.json()["url"]).get("/")
    return response.ok and "Hello from your Enclave workspace" in response.text


def test_launch_run_stop_start_delete(portal, connected, admin_api):
    agent = connected
    response = admin_api("POST", "/workspaces", json={"blueprint": "demo", "name": "Shop"})
    assert response.status_code == 201, response.text
    workspace = response.json()
    assert workspace["blueprint"] == "demo"
    assert workspace["owner_email"] == "admin@portal.localhost"
    assert workspace["name"] == "Shop"
    assert workspace["ports"] == [{"port": 3000, "name": "app"}]
    workspace_id = workspace["id"]

    admin_api.wait_status(workspace_id, "running")
    answers = lambda: _app_answers(portal, admin_api, workspace_id)  # noqa: E731
    assert wait_until(answers, what="demo app answering")
    metadata = agent.environment(workspace_id)["metadata"]
    assert metadata["BLUEPRINT_KEY"] == "demo"
    assert metadata["RDE_OWNER_EMAIL"] == "admin@portal.localhost"
    assert metadata["RDE_DISPLAY_NAME"] == "Shop"
    assert metadata["BLUEPRINT_PROJECT_ID"]

    assert admin_api("POST", f"/workspaces/{workspace_id}/stop").status_code == 200
    admin_api.wait_status(workspace_id, "stopped")
    assert admin_api("POST", f"/workspaces/{workspace_id}/start").status_code == 200
    admin_api.wait_status(workspace_id, "running")
    assert wait_until(answers, what="app back after start")

    logs = admin_api("GET", f"/workspaces/{workspace_id}/logs", params={"tail": 50})
    assert logs.status_code == 200 and isinstance(logs.json()["lines"], list)

    assert admin_api("DELETE", f"/workspaces/{workspace_id}").status_code == 204
    assert admin_api("GET", f"/workspaces/{workspace_id}").status_code == 404
    assert not (agent.data_dir / "environments" / workspace_id).exists()


def test_someone_elses_workspace_is_404_and_untouched(portal, connected, admin_api):
    workspace_id = admin_api("POST", "/workspaces", json={"blueprint": "demo"}).json()["id"]
    admin_api.wait_status(workspace_id, "running")
    manage(portal.var_dir, "shell", "-c", _CREATE_MEMBER, env=portal.env)
    other = Api(portal.url, portal.token_for("other@example.com"))
    calls = [("GET", ""), ("PATCH", ""), ("DELETE", ""), ("POST", "/stop"), ("POST", "/start")]
    calls += [("POST", "/restart"), ("GET", "/logs"), ("PUT", "/tags")]
    for method, path in calls:
        body = {"name": "x", "tags": []}
        response = other(method, f"/workspaces/{workspace_id}{path}", json=body)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["code"] == "not_found"
    assert other("GET", "/workspaces").json()["results"] == []
    workspace = admin_api.workspace(workspace_id)
    assert workspace["status"] == "running" and workspace["name"] != "x"


_CREATE_MEMBER = (
    "from accounts.models import User; "
    "User.objects.filter(email='other@example.com').exists() or "
    "User.objects.create_user('other@example.com', 'x-unused-password-1')"
)


def test_agent_restart_keeps_workspaces(portal, connected, admin_api):
    agent = connected
    workspace_id = admin_api("POST", "/workspaces", json={"blueprint": "demo"}).json()["id"]
    admin_api.wait_status(workspace_id, "running")
    agent.stop()
    agent.start()
    wait_until(
        lambda: (
            [w["id"] for w in admin_api("GET", "/workspaces").json()["results"]] == [workspace_id]
        ),
        what="workspace listed after agent restart",
    )
    assert admin_api.workspace(workspace_id)["status"] == "running"
    assert _app_answers(portal, admin_api, workspace_id)


def test_killed_agent_shows_unreachable_then_portal_restart_reconnects(
    portal, connected, admin_api
):
    agent = connected
    os.kill(agent.proc.pid, signal.SIGKILL)
    agent.proc.wait()
    listing = wait_until(
        lambda: (body := admin_api("GET", "/workspaces").json())["unreachable_clusters"] and body,
        timeout=45,
        what="cluster reported unreachable",
    )
    assert listing["unreachable_clusters"] == ["local"]
    clusters = admin_api("GET", "/admin/clusters").json()
    clusters = clusters.get("results", clusters) if isinstance(clusters, dict) else clusters
    assert [c["status"] for c in clusters if c["name"] == "local"] == ["disconnected"]
    launch = admin_api("POST", "/workspaces", json={"blueprint": "demo"})
    assert launch.status_code == 503 and launch.json()["code"] == "cluster_unavailable"

    agent.start()
    wait_until(
        lambda: admin_api("GET", "/workspaces").json()["unreachable_clusters"] == [],
        what="agent reconnected",
    )
    portal.stop()
    portal.start()
    wait_until(
        lambda: admin_api("GET", "/workspaces").json()["unreachable_clusters"] == [],
        timeout=40,
        what="agent reconnected by itself after the portal restarted",
    )


@pytest.mark.skipif(
    not os.environ.get("REDIS_URL"), reason="two portal processes share state through Redis"
)
def test_two_portals_share_the_tunnel_through_redis(tmp_path, portal, connected, admin_api):
    other = Portal(var_dir=portal.var_dir)
    other.start()
    try:
        api_b = Api(other.url, portal.token_for("admin@portal.localhost"))
        response = api_b("POST", "/workspaces", json={"blueprint": "demo", "name": "Remote"})
        assert response.status_code == 201, response.text
        workspace_id = response.json()["id"]
        api_b.wait_status(workspace_id, "running")
        assert [w["id"] for w in api_b("GET", "/workspaces").json()["results"]] == [workspace_id]
        assert api_b("POST", f"/workspaces/{workspace_id}/stop").status_code == 200
        api_b.wait_status(workspace_id, "stopped")
        assert api_b("DELETE", f"/workspaces/{workspace_id}").status_code == 204
    finally:
        other.stop()
