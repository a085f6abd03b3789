"""End to end: the Files tab's API on a real portal and a real agent, into a real sandbox."""

from __future__ import annotations

import os

import pytest

from agent.protocol import MAX_FILE_BYTES
from tests.harness import Api, Portal, PreviewClient, manage, wait_until
from tests.test_workspace_lifecycle import _CREATE_MEMBER

pytestmark = pytest.mark.integration

PAGE = "<!doctype html><h1>Saved from the Files tab</h1>\n"


def _preview(portal, api: Api, workspace_id: str, path: str):
    """A page of the workspace's app, through its preview (the only way into the sandbox)."""
    ticket = api("POST", f"/workspaces/{workspace_id}/preview-ticket", json={"port": 3000})
    assert ticket.status_code == 201, ticket.text
    return PreviewClient.from_ticket_url(portal, ticket.json()["url"]).get(path)


def test_a_file_saved_through_the_api_is_the_workspaces_own(portal, connected, admin_api):
    agent = connected
    workspace_id = admin_api("POST", "/workspaces", json={"blueprint": "demo"}).json()["id"]
    admin_api.wait_status(workspace_id, "running")
    files = f"/workspaces/{workspace_id}/files"
    home = agent.data_dir / "environments" / workspace_id / "home"

    before = admin_api("GET", f"{files}/content", params={"path": "index.html"}).json()
    saved = admin_api(
        "PUT",
        f"{files}/content",
        json={"path": "index.html", "content": PAGE, "base_version": before["version"]},
    )
    assert saved.status_code == 200, saved.text
    read = admin_api("GET", f"{files}/content", params={"path": "index.html"}).json()
    assert (read["content"], read["version"]) == (PAGE, saved.json()["version"])

    # Inside the sandbox: the workspace's own app serves what was saved.
    served = wait_until(
        lambda: (r := _preview(portal, admin_api, workspace_id, "/")).ok and PAGE in r.text,
        what="the app serving the saved page",
    )
    assert served
    # On the host: in the workspace's home, owned by its sandbox's uid.
    assert (home / "index.html").read_text() == PAGE
    owner = agent.environment(workspace_id)["sandbox_uid"] if os.geteuid() == 0 else os.getuid()
    assert (home / "index.html").stat().st_uid == owner

    stale = admin_api(
        "PUT",
        f"{files}/content",
        json={"path": "index.html", "content": "lost", "base_version": before["version"]},
    )
    assert (stale.status_code, stale.json()["code"]) == (409, "file_conflict")
    escape = admin_api("GET", f"{files}/content", params={"path": "../environment.json"})
    assert (escape.status_code, escape.json()["code"]) == (400, "path_invalid")

    manage(portal.var_dir, "shell", "-c", _CREATE_MEMBER, env=portal.env)
    other = Api(portal.url, portal.token_for("other@example.com"))
    hijack = other("PUT", f"{files}/content", json={"path": "index.html", "content": "x"})
    assert (hijack.status_code, hijack.json()["code"]) == (404, "not_found")
    assert (home / "index.html").read_text() == PAGE


def _five_mib() -> str:
    line = 'const label = "five mebibytes \\\\ through the tunnel";\t// ✓\n'
    count = MAX_FILE_BYTES // len(line.encode())
    text = line * count + "/" * (MAX_FILE_BYTES - count * len(line.encode()))
    assert len(text.encode()) == MAX_FILE_BYTES
    return text


def test_five_mib_round_trip_through_the_tunnel(portal, connected, admin_api):
    workspace_id = admin_api("POST", "/workspaces", json={"blueprint": "demo"}).json()["id"]
    admin_api.wait_status(workspace_id, "running")
    files = f"/workspaces/{workspace_id}/files"
    text = _five_mib()

    saved = admin_api("PUT", f"{files}/content", json={"path": "big/data.js", "content": text})
    assert saved.status_code == 200, saved.text
    assert saved.json()["size"] == MAX_FILE_BYTES
    read = admin_api("GET", f"{files}/content", params={"path": "big/data.js"})
    assert read.status_code == 200
    assert read.json()["content"] == text
    served = _preview(portal, admin_api, workspace_id, "/big/data.js")
    assert served.ok and len(served.content) == MAX_FILE_BYTES

    over = admin_api("PUT", f"{files}/content", json={"path": "big/x.js", "content": text + "/"})
    assert (over.status_code, over.json()["code"]) == (413, "file_too_large")

    assert admin_api("POST", f"/workspaces/{workspace_id}/stop").status_code == 200
    admin_api.wait_status(workspace_id, "stopped")
    listing = admin_api("GET", files, params={"path": "big"}).json()
    assert [(e["name"], e["size"]) for e in listing["entries"]] == [("data.js", MAX_FILE_BYTES)]
    moved = admin_api("POST", f"{files}/rename", json={"from": "big", "to": "assets"})
    assert moved.status_code == 200, moved.text
    deleted = admin_api("DELETE", files, params={"path": "assets", "recursive": "true"})
    assert deleted.status_code == 204
    names = [e["name"] for e in admin_api("GET", files).json()["entries"]]
    assert "assets" not in names and "index.html" in names


@pytest.mark.skipif(
    not os.environ.get("REDIS_URL"), reason="two portal processes reach one tunnel through Redis"
)
def test_five_mib_round_trip_from_a_portal_process_without_the_tunnel(portal, connected, admin_api):
    """The agent's tunnel on one process, the API calls on the other: the content crosses
    the channel layer both ways, under its flow control."""
    workspace_id = admin_api("POST", "/workspaces", json={"blueprint": "demo"}).json()["id"]
    admin_api.wait_status(workspace_id, "running")
    other = Portal(var_dir=portal.var_dir)
    other.start()
    try:
        api = Api(other.url, portal.token_for("admin@portal.localhost"))
        files = f"/workspaces/{workspace_id}/files"
        text = _five_mib()
        saved = api("PUT", f"{files}/content", json={"path": "far.js", "content": text})
        assert saved.status_code == 200, saved.text
        read = api("GET", f"{files}/content", params={"path": "far.js"})
        assert read.status_code == 200, read.text
        assert (read.json()["content"], read.json()["version"]) == (text, saved.json()["version"])
    finally:
        other.stop()
