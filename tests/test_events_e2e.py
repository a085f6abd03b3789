"""End to end: pages' `/ws/events/` sockets on a real portal (the production launcher) with
a real agent — a builder sees their launch and an admin's stop live, another builder sees
nothing of it; with Redis, the same across two portal processes."""

from __future__ import annotations

import asyncio
import os

import pytest

from tests.events_client import EventsClient
from tests.harness import Api, Portal, sign_in

pytestmark = pytest.mark.integration

ANN = "ann@example.com"
BEN = "ben@example.com"


def _is_update(workspace_id: str, status: str):
    def check(message: dict) -> bool:
        return (
            message.get("type") == "workspace"
            and message["event"] == "updated"
            and message["workspace"]["id"] == workspace_id
            and message["workspace"]["status"] == status
        )

    return check


async def _launch_then_admin_stop(events_portal: Portal, api_portal: Portal, admin_api: Api):
    """Ann and Ben watch `events_portal`; Ann launches and the admin stops through
    `api_portal`."""
    sessions = sign_in(api_portal, [ANN, BEN])
    ann_api = Api(api_portal.url, api_portal.token_for(ANN))
    ann = await EventsClient.open(events_portal.url, sessions[ANN])
    ben = await EventsClient.open(events_portal.url, sessions[BEN])
    try:
        assert ann.snapshot["workspaces"] == [] and ann.snapshot["unreachable_clusters"] == []
        launched = await asyncio.to_thread(
            ann_api, "POST", "/workspaces", json={"blueprint": "demo", "name": "Live"}
        )
        assert launched.status_code == 201, launched.text
        workspace_id = launched.json()["id"]

        running = await ann.until(_is_update(workspace_id, "running"), timeout=60)
        assert running["workspace"]["owner_email"] == ANN
        assert running["workspace"]["ports"] == [{"port": 3000, "name": "app"}]
        statuses = ann.statuses(workspace_id)
        assert statuses[0] == "deploying" and statuses[-1] == "running", statuses

        stopped = await asyncio.to_thread(
            admin_api, "POST", f"/admin/workspaces/{workspace_id}/stop"
        )
        assert stopped.status_code == 200, stopped.text
        await ann.until(_is_update(workspace_id, "stopped"), timeout=30)
        assert ann.statuses(workspace_id)[-1] == "stopped"

        assert await ben.quiet(1.0) == []
        assert ben.messages == []
    finally:
        await ann.close()
        await ben.close()


async def test_a_builder_sees_their_launch_and_an_admins_stop_live(portal, connected, admin_api):
    await _launch_then_admin_stop(portal, portal, admin_api)


@pytest.mark.skipif(
    not os.environ.get("REDIS_URL"), reason="two portal processes share events through Redis"
)
async def test_events_cross_portal_processes_through_redis(portal, connected, admin_api):
    """The agent's tunnel and the API calls on one process, the pages on the other."""
    other = Portal(var_dir=portal.var_dir)
    other.start()
    try:
        await _launch_then_admin_stop(other, portal, admin_api)
    finally:
        other.stop()
