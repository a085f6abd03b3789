"""Live workspace events for the portal's pages (`/ws/events/`, DESIGN §9).

Who receives what is decided here, by channel-layer group: a workspace's events go to
the group of its owner (by normalised e-mail, `owner_group`) and to the admins' group
(`ADMINS_GROUP`); `relay.consumers.events` joins each browser socket to the one group of
its member. The channel layer carries the events to every portal process (Redis in
production), so a change published by one process reaches browsers on any other.

Two sources publish the same messages: the tunnel consumer, for every environment event
of an agent, and the workspace services, after each change they make — tags never reach
the agent, and a control plane without agents sends no events. Publishing is
best-effort and never fails the change that publishes: a layer error is logged, and a
page that missed an event resyncs from its snapshot when it reconnects.

A layer message (type `workspace.event`) carries the browser's JSON, encoded once for
every socket, and what a socket needs to order it: the workspace id, its owner and the
cluster's `updated_at` of the state it shows (`version`, empty when unknown).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections import defaultdict
from collections.abc import Iterable
from typing import Any, Final

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from accounts.models import normalize_email
from workspaces.api.serializers import WorkspaceSerializer
from workspaces.selectors import Workspace

logger = logging.getLogger(__name__)

ADMINS_GROUP: Final = "events.admins"
MESSAGE_TYPE: Final = "workspace.event"
UPDATED: Final = "updated"
DELETED: Final = "deleted"


def owner_group(email: str) -> str:
    """The group whose sockets receive the events of `email`'s workspaces (any case)."""
    digest = hashlib.sha256(normalize_email(email).encode()).hexdigest()[:32]
    return f"events.owner.{digest}"


def _encode(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"))


def updated_message(workspace: Workspace) -> dict[str, Any]:
    """The layer message saying that `workspace` is now as given."""
    body = WorkspaceSerializer(workspace).data
    return {
        "type": MESSAGE_TYPE,
        "event": UPDATED,
        "id": workspace.id,
        "owner": normalize_email(workspace.owner_email),
        "version": workspace.environment.updated_at or "",
        "text": _encode({"type": "workspace", "event": UPDATED, "workspace": body}),
    }


def deleted_message(
    *, workspace_id: str, cluster: str, owner_email: str, version: str = ""
) -> dict[str, Any]:
    """The layer message saying that a workspace is gone."""
    body = {"id": workspace_id, "cluster": cluster, "owner_email": owner_email}
    return {
        "type": MESSAGE_TYPE,
        "event": DELETED,
        "id": workspace_id,
        "owner": normalize_email(owner_email),
        "version": version,
        "text": _encode({"type": "workspace", "event": DELETED, "workspace": body}),
    }


async def events_send(messages: Iterable[dict[str, Any]]) -> None:
    """Send each message to its owner's group and to the admins' group.

    The messages of one workspace go in the order given, those of different workspaces
    at the same time (a Redis layer answers each send after a round trip). A message
    the layer refuses is logged and skipped; the others still go.
    """
    layer = get_channel_layer()
    if layer is None:
        return
    per_workspace: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for message in messages:
        per_workspace[message["id"]].append(message)
    await asyncio.gather(*(_send_in_order(layer, chain) for chain in per_workspace.values()))


async def _send_in_order(layer, chain: list[dict[str, Any]]) -> None:
    for message in chain:
        groups = (owner_group(message["owner"]), ADMINS_GROUP)
        await asyncio.gather(*(_send(layer, group, message) for group in groups))


async def _send(layer, group: str, message: dict[str, Any]) -> None:
    try:
        await layer.group_send(group, message)
    except Exception:
        logger.exception("could not publish an event of workspace %s", message["id"])


def workspace_event_publish(workspace: Workspace) -> None:
    """Tell the pages of `workspace`'s owner and of every admin that it is now as given.

    For synchronous callers (the services): sent once the current transaction commits,
    at once outside one; never raises.
    """
    _publish(updated_message(workspace))


def workspace_event_deleted(*, workspace_id: str, cluster: str, owner_email: str) -> None:
    """Tell the pages of the owner and of every admin that a workspace was deleted (as
    `workspace_event_publish`: after the commit, never raises)."""
    _publish(deleted_message(workspace_id=workspace_id, cluster=cluster, owner_email=owner_email))


def _publish(message: dict[str, Any]) -> None:
    transaction.on_commit(lambda: _send_now(message))


def _send_now(message: dict[str, Any]) -> None:
    try:
        async_to_sync(events_send)([message])
    except Exception:
        logger.exception("could not publish an event of workspace %s", message["id"])
