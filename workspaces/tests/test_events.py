"""Workspace events: every change a service makes is published to the owner's and the
admins' groups, once its transaction commits, and publishing never fails the change."""

from __future__ import annotations

import asyncio
import copy
import json
import secrets

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import transaction

from accounts.tests.factories import UserFactory
from agent.protocol import BLUEPRINT_TAG, OWNER_TAG
from workspaces import events, services
from workspaces.events import ADMINS_GROUP, owner_group, workspace_event_publish
from workspaces.selectors import Workspace, workspace_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def private_layer(settings):
    """A channel layer of this test's own (a Redis one gets a prefix nobody else uses)."""
    layers = copy.deepcopy(settings.CHANNEL_LAYERS)
    if "redis" in layers["default"]["BACKEND"].lower():
        layers["default"]["CONFIG"]["prefix"] = f"test-events-{secrets.token_hex(4)}"
    settings.CHANNEL_LAYERS = layers


async def _listen(group: str) -> str:
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    return channel


async def _received(channel: str) -> list[dict]:
    """Every message waiting on `channel` (it stays quiet for 0.3 s at the end)."""
    found = []
    while True:
        try:
            found.append(await asyncio.wait_for(get_channel_layer().receive(channel), 0.3))
        except TimeoutError:
            return found


def _shown(message: dict) -> tuple[str, str | None, list[str] | None]:
    body = json.loads(message["text"])
    assert body["type"] == "workspace" and body["event"] == message["event"]
    workspace = body["workspace"]
    return body["event"], workspace.get("status"), workspace.get("tags")


def test_the_group_of_an_owner_ignores_case_and_is_a_valid_group_name():
    group = owner_group(" Builder@Example.COM ")
    assert group == owner_group("builder@example.com") != owner_group("other@example.com")
    get_channel_layer().require_valid_group_name(group)


async def test_every_change_of_a_service_reaches_the_owner_and_the_admins(
    blueprint, member, admin_member
):
    mine = await _listen(owner_group("BUILDER@example.com"))
    admins = await _listen(ADMINS_GROUP)
    launched = await sync_to_async(services.workspace_launch)(
        actor=member, blueprint_key="webapp", name="Shop"
    )

    @sync_to_async
    def operate() -> None:
        """Each operation on the workspace as just read, as the API does."""

        def on_it(service, **kwargs) -> None:
            workspace, cluster = workspace_for(member, launched.id)
            service(workspace=workspace, cluster=cluster, **kwargs)

        on_it(services.workspace_rename, actor=member, name="Mall")
        on_it(services.workspace_stop, actor=admin_member)
        on_it(services.workspace_start, actor=member)
        on_it(services.workspace_restart, actor=member)
        on_it(services.workspace_set_tags, actor=member, tag_names=["b", "a"])
        on_it(services.workspace_upgrade, actor=admin_member)
        on_it(services.workspace_delete, actor=admin_member)

    await operate()
    expected = [
        ("updated", "running", []),  # launched
        ("updated", "running", []),  # renamed
        ("updated", "stopped", []),
        ("updated", "running", []),  # started
        ("updated", "running", []),  # restarted
        ("updated", "running", ["a", "b"]),
        ("updated", "running", ["a", "b"]),  # upgraded
        ("deleted", None, None),
    ]
    for channel in (mine, admins):
        received = await _received(channel)
        assert [_shown(m) for m in received] == expected
        assert {m["id"] for m in received} == {launched.id}
        assert {m["owner"] for m in received} == {"builder@example.com"}
    deleted = json.loads(received[-1]["text"])["workspace"]
    assert deleted == {"id": launched.id, "cluster": "main", "owner_email": "builder@example.com"}


async def test_nobody_else_is_told(blueprint, member):
    other = await _listen(owner_group("someone@example.com"))
    await sync_to_async(services.workspace_launch)(actor=member, blueprint_key="webapp")
    assert await _received(other) == []


async def test_a_change_rolled_back_is_not_published(control_plane, cluster, member):
    mine = await _listen(owner_group(member.email))
    environment = await sync_to_async(control_plane.seed)(
        cluster, metadata={BLUEPRINT_TAG: "webapp", OWNER_TAG: member.email}
    )

    @sync_to_async
    def publish_then_fail() -> None:
        with transaction.atomic():
            workspace_event_publish(Workspace(environment))
            raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError):
        await publish_then_fail()
    assert await _received(mine) == []
    await sync_to_async(workspace_event_publish)(Workspace(environment))
    assert [m["id"] for m in await _received(mine)] == [environment.id]


async def test_a_failing_layer_never_fails_the_change(blueprint, member, monkeypatch, caplog):
    class BrokenLayer:
        async def group_send(self, group, message):
            raise OSError("the channel layer is down")

    monkeypatch.setattr(events, "get_channel_layer", BrokenLayer)
    workspace = await sync_to_async(services.workspace_launch)(actor=member, blueprint_key="webapp")
    assert workspace.status == "running"
    assert "could not publish an event of workspace" in caplog.text


async def test_an_owner_is_matched_whatever_the_case_of_the_tag(control_plane, cluster):
    member = await sync_to_async(UserFactory)(email="mixed@example.com")
    mine = await _listen(owner_group(member.email))
    environment = await sync_to_async(control_plane.seed)(
        cluster, metadata={BLUEPRINT_TAG: "webapp", OWNER_TAG: "Mixed@EXAMPLE.com"}
    )
    await sync_to_async(workspace_event_publish)(Workspace(environment))
    assert [m["owner"] for m in await _received(mine)] == ["mixed@example.com"]
