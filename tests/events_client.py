"""A page's live event stream, as a browser opens it, for integration tests and benchmarks.

It speaks `relay.consumers.events`: signed in with a session cookie (`harness.sign_in`),
sending the portal's own Origin, pinging every 25 s as `static/js/events.js` does; the
first message is the snapshot, then `workspace` events, each kept in `messages` as it
arrives (pongs are not kept).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable

import websockets
from websockets.asyncio.client import ClientConnection

SESSION_COOKIE = "__Host-enclave_session"  # loopback portals: a `__Host-` cookie
PING_EVERY = 25.0


class EventsClient:
    """One `/ws/events/` socket: its `snapshot`, then the `messages` pulled so far."""

    def __init__(self, ws: ClientConnection, snapshot: dict) -> None:
        self.ws = ws
        self.snapshot = snapshot
        self.messages: list[dict] = []
        self._keepalive = asyncio.create_task(self._ping())

    @classmethod
    async def open(cls, portal_url: str, session_key: str, *, timeout: float = 30) -> EventsClient:
        url = portal_url.replace("http", "ws", 1) + "/ws/events/"
        ws = await websockets.connect(
            url,
            additional_headers={"Cookie": f"{SESSION_COOKIE}={session_key}", "Origin": portal_url},
            max_size=None,
            compression=None,
            open_timeout=timeout,
        )
        snapshot = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        assert snapshot["type"] == "snapshot", snapshot
        return cls(ws, snapshot)

    async def pull(self, timeout: float) -> dict:
        """The next message but pongs (TimeoutError when none comes in time)."""
        deadline = time.monotonic() + timeout
        while True:
            text = await asyncio.wait_for(self.ws.recv(), max(0.0, deadline - time.monotonic()))
            message = json.loads(text)
            if message.get("type") != "pong":
                self.messages.append(message)
                return message

    async def _ping(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            while True:
                await asyncio.sleep(PING_EVERY)
                await self.ws.send('{"type":"ping"}')

    async def until(self, predicate: Callable[[dict], bool], timeout: float = 30) -> dict:
        """Pull messages until a new one satisfies `predicate`; that one is returned."""
        deadline = time.monotonic() + timeout
        while True:
            message = await self.pull(max(0.0, deadline - time.monotonic()))
            if predicate(message):
                return message

    async def quiet(self, seconds: float) -> list[dict]:
        """Whatever arrives within `seconds` (usually expected to be nothing)."""
        deadline = time.monotonic() + seconds
        arrived = []
        while (left := deadline - time.monotonic()) > 0:
            try:
                arrived.append(await self.pull(left))
            except TimeoutError:
                break
        return arrived

    def statuses(self, workspace_id: str) -> list[str]:
        """The statuses of `workspace_id` the updates so far carried, in order."""
        return [
            m["workspace"]["status"]
            for m in self.messages
            if m.get("type") == "workspace"
            and m["event"] == "updated"
            and m["workspace"]["id"] == workspace_id
        ]

    async def close(self) -> None:
        self._keepalive.cancel()
        await self.ws.close()
