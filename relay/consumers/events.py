"""The live event stream of the portal's pages: `/ws/events/` (DESIGN §9).

`EventsConsumer` promises:

* Only a signed-in, active member's socket is accepted (the session cookie, behind the
  Origin check of `relay.routing.session_socket`); anyone else is refused before the
  handshake completes (4401). The member is checked again every `RECHECK_EVERY`
  seconds: signed out or suspended closes the socket (4401), a changed role closes it
  (4409) so the page reconnects with the right view.
* The first message of every connection is a `snapshot` of the member's own workspaces,
  read fresh from the clusters (`{"type": "snapshot", "workspaces": [...],
  "unreachable_clusters": [...]}`), so a page resyncs on each (re)connect. Then come
  `{"type": "workspace", "event": "updated" | "deleted", "workspace": {...}}` messages.
* The portal filters: a builder's socket joins only its member's group
  (`workspaces.events.owner_group`) and never receives another member's event; an
  admin's joins the admins' group and receives every workspace's events.
* A late publication never undoes a newer state: per workspace, an event about an older
  state of its cluster (`updated_at`) than one already sent is dropped, and nothing
  follows a workspace's `deleted`.
* Memory is bounded: at most `SEND_QUEUE` messages wait for a slow browser; one more
  closes the socket (1013 `too_slow`) without delaying any other socket, and the page
  resyncs when it reconnects. A browser silent for `IDLE_TIMEOUT` (it pings every 25 s)
  is closed (4008). `{"type": "ping"}` answers `{"type": "pong"}`; anything else the
  browser sends is ignored.

`AgentEvents` turns one tunnel's agent `event` messages into these publications, off
the frame path (see its docstring).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections import OrderedDict
from typing import Any, Final

from accounts.models import normalize_email
from accounts.selectors import session_member
from agent import protocol as p
from relay.consumers.base import LeanWebsocketConsumer, db_async
from workspaces.api.serializers import WorkspaceSerializer
from workspaces.controlplane import Environment
from workspaces.events import (
    ADMINS_GROUP,
    DELETED,
    UPDATED,
    deleted_message,
    events_send,
    owner_group,
    updated_message,
)
from workspaces.selectors import discovery_invalidate, workspaces_among, workspaces_for

logger = logging.getLogger(__name__)

SEND_QUEUE: Final = 256
"""Messages that may wait for one browser; one more and the socket is closed."""
VERSIONS_KEPT: Final = 10_000
"""Workspaces whose last sent state a socket remembers (an admin's sees them all)."""
IDLE_TIMEOUT: Final = 120.0
"""The browser pings every 25 s; a socket silent this long is dead."""
RECHECK_EVERY: Final = 60.0
TICK: Final = 10.0

CLOSE_IDLE: Final = 4008
CLOSE_UNAUTHENTICATED: Final = 4401
CLOSE_ROLE_CHANGED: Final = 4409
CLOSE_TOO_SLOW: Final = 1013

_GONE: Final = object()
"""The remembered state of a deleted workspace: nothing about it is sent any more."""

_AGENT_EVENTS: Final = {p.EVENT_UPDATED: UPDATED, p.EVENT_DELETED: DELETED}


@db_async
def _snapshot(user) -> tuple[str, dict[str, str]]:
    """The snapshot message of `user`'s own workspaces, and their versions by id."""
    listing = workspaces_for(user, fresh=True)
    text = json.dumps(
        {
            "type": "snapshot",
            "workspaces": WorkspaceSerializer(listing.workspaces, many=True).data,
            "unreachable_clusters": listing.unreachable,
        },
        separators=(",", ":"),
    )
    versions = {w.id: w.environment.updated_at for w in listing.workspaces}
    return text, {k: v for k, v in versions.items() if v}


_session_member = db_async(session_member)


class EventsConsumer(LeanWebsocketConsumer):
    """One page's live view of workspaces: a snapshot, then the events its member may see."""

    async def connect(self) -> None:
        self._tasks: set[asyncio.Task] = set()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_active:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self._user_id = user.pk
        self._owner = normalize_email(user.email)
        self._admin = user.is_admin
        self._outbox: asyncio.Queue[str] = asyncio.Queue(SEND_QUEUE)
        self._versions: OrderedDict[str, Any] = OrderedDict()
        self._lagging = False
        self._writer: asyncio.Task | None = None
        self._last_seen = time.monotonic()
        # Joined before the snapshot is read, so no change falls between the two; the
        # events that arrive meanwhile wait in the layer until connect() returns.
        self.groups = [ADMINS_GROUP] if self._admin else [owner_group(self._owner)]
        for group in self.groups:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        try:
            text, versions = await _snapshot(user)
        except Exception:
            logger.exception("events: the snapshot of %s failed", self._owner)
            self._lagging = True  # nothing is sent any more
            await self.close(code=1011)
            return
        self._versions.update(versions)
        self._outbox.put_nowait(text)
        self._writer = self._spawn(self._write())
        self._spawn(self._watch())

    async def disconnect(self, code: int) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        self._last_seen = time.monotonic()
        if text_data is None or len(text_data) > 1000:
            return
        try:
            kind = json.loads(text_data).get("type")
        except (ValueError, AttributeError):
            return
        if kind == "ping":
            self._push('{"type":"pong"}')

    # --- channel-layer messages ----------------------------------------------------------

    async def workspace_event(self, message: dict[str, Any]) -> None:
        """A workspace changed (`workspaces.events`): forward it unless it is stale."""
        if not self._admin and message.get("owner") != self._owner:
            return
        if self._is_news(message):
            self._push(message["text"])

    # --- internals -----------------------------------------------------------------------

    def _is_news(self, message: dict[str, Any]) -> bool:
        workspace_id = message["id"]
        known = self._versions.get(workspace_id)
        if known is _GONE:
            return False
        version = message.get("version") or ""
        if message["event"] == DELETED:
            self._remember(workspace_id, _GONE)
            return True
        if known and version and version < known:
            return False
        if version:
            self._remember(workspace_id, version)
        return True

    def _remember(self, workspace_id: str, version: Any) -> None:
        self._versions[workspace_id] = version
        self._versions.move_to_end(workspace_id)
        while len(self._versions) > VERSIONS_KEPT:
            self._versions.popitem(last=False)

    def _push(self, text: str) -> None:
        if self._lagging:
            return
        try:
            self._outbox.put_nowait(text)
        except asyncio.QueueFull:
            self._lagging = True
            self._spawn(self._drop_lagging())

    async def _write(self) -> None:
        while True:
            await self.send(text_data=await self._outbox.get())

    async def _drop_lagging(self) -> None:
        """The browser cannot keep up: forget what waits for it and close (it resyncs)."""
        logger.warning("events: %s reads too slowly; closing its socket", self._owner)
        if self._writer is not None:
            self._writer.cancel()
        while not self._outbox.empty():
            self._outbox.get_nowait()
        with contextlib.suppress(Exception):
            await self.close(code=CLOSE_TOO_SLOW, reason="too_slow")

    async def _watch(self) -> None:
        """Close the socket once its browser went silent or its member changed; renew
        its group membership meanwhile."""
        # Spread over the interval, so sockets opened together are not checked together.
        # Jitter, not a secret: any pseudo-random number does.
        last_check = time.monotonic() - random.uniform(0, RECHECK_EVERY)  # nosec B311
        while True:
            await asyncio.sleep(TICK)
            now = time.monotonic()
            if now - self._last_seen > IDLE_TIMEOUT:
                await self.close(code=CLOSE_IDLE, reason="client_timeout")
                return
            if now - last_check < RECHECK_EVERY:
                continue
            last_check = now
            session = self.scope.get("session")
            member = await _session_member(getattr(session, "session_key", None))
            if member is None or member.pk != self._user_id:
                await self.close(code=CLOSE_UNAUTHENTICATED, reason="signed_out")
                return
            if member.is_admin != self._admin:
                await self.close(code=CLOSE_ROLE_CHANGED, reason="role_changed")
                return
            # A layer forgets a group member after a while (channels-redis: a day); a
            # dashboard left open for longer must stay in its group.
            for group in self.groups:
                await self.channel_layer.group_add(group, self.channel_name)

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


@db_async
def _agent_messages(
    cluster_id: int, cluster_name: str, batch: dict[str, tuple[str, dict[str, Any]]]
) -> list[dict[str, Any]]:
    """The cache of the cluster forgotten, then the publications of a batch of events
    (an event the portal cannot read is logged and left out)."""
    discovery_invalidate(cluster_id)
    environments = []
    for environment_id, (_, snapshot) in batch.items():
        try:
            environments.append(Environment.from_agent(cluster_name, snapshot))
        except (KeyError, TypeError, ValueError):
            logger.warning("cluster %s: unreadable event for %s", cluster_name, environment_id)
    messages = []
    for workspace in workspaces_among(environments):
        try:
            messages.append(_publication(batch[workspace.id][0], workspace))
        except (AttributeError, KeyError, TypeError, ValueError):
            logger.warning("cluster %s: unreadable event for %s", cluster_name, workspace.id)
    return messages


def _publication(kind: str, workspace) -> dict[str, Any]:
    if kind != DELETED:
        return updated_message(workspace)
    return deleted_message(
        workspace_id=workspace.id,
        cluster=workspace.cluster,
        owner_email=workspace.owner_email,
        version=workspace.environment.updated_at or "",
    )


class AgentEvents:
    """The agent `event` messages of one tunnel, published to the pages in order.

    `offer` is called on the frame path and never waits; `run` (a task of the tunnel
    consumer) publishes what was offered. While it works, only the latest event of each
    environment waits — a burst of changes to one workspace publishes its last state —
    so memory is bounded by the cluster's environments, and the events of one
    environment are published in the order the agent sent them. Every batch also
    forgets the cluster's cached listings first, so a page that reads the API on an
    event sees the new state. Environments without the blueprint tags are not
    workspaces and are not published.
    """

    def __init__(self, cluster_id: int, cluster_name: str) -> None:
        self.cluster_id = cluster_id
        self.cluster_name = cluster_name
        self._pending: dict[str, tuple[str, dict[str, Any]]] = {}
        self._ready = asyncio.Event()

    def offer(self, message: dict[str, Any]) -> None:
        """Queue one agent `event` message; a malformed one is logged and ignored."""
        event = message.get("event")
        kind = _AGENT_EVENTS.get(event) if isinstance(event, str) else None
        snapshot = message.get("environment")
        if not (kind and isinstance(snapshot, dict) and isinstance(snapshot.get("id"), str)):
            logger.warning("cluster %s sent a malformed event", self.cluster_name)
            return
        self._pending.pop(snapshot["id"], None)
        self._pending[snapshot["id"]] = (kind, snapshot)
        self._ready.set()

    async def run(self) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            batch, self._pending = self._pending, {}
            try:
                messages = await _agent_messages(self.cluster_id, self.cluster_name, batch)
                await events_send(messages)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("could not publish the events of cluster %s", self.cluster_name)
