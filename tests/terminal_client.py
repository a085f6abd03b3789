"""A browser-like terminal client for integration tests and benchmarks (`websockets`).

It speaks the terminal protocol of `relay.consumers.terminal`: binary frames are output
(acknowledged like xterm.js does once "rendered", unless `ack=False`), text frames JSON.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from urllib.parse import urlencode

import websockets
from websockets.asyncio.client import ClientConnection

from tests.harness import Api

ACK_EVERY = 128 * 1024


def shell_ticket(api: Api, workspace_id: str) -> str:
    response = api("POST", f"/workspaces/{workspace_id}/shell-ticket")
    response.raise_for_status()
    return response.json()["ticket"]


class TerminalClient:
    """One terminal socket: `output` accumulates bytes, `messages` the JSON text frames."""

    def __init__(self, ws: ClientConnection, *, ack: bool = True) -> None:
        self.ws = ws
        self.ack = ack
        self.output = bytearray()
        self.messages: list[dict] = []
        self.hello: dict = {}
        self._unacked = 0

    @classmethod
    async def open(
        cls,
        portal_url: str,
        ticket: str,
        *,
        workspace: str | None = None,
        session: str | None = None,
        cols: int = 80,
        rows: int = 24,
        ack: bool = True,
        wait_session: bool = True,
    ) -> TerminalClient:
        query = {"ticket": ticket, "cols": cols, "rows": rows}
        if workspace:
            query["workspace"] = workspace
        if session:
            query["session"] = session
        url = portal_url.replace("http", "ws", 1) + "/ws/terminal/?" + urlencode(query)
        ws = await websockets.connect(url, max_size=None, compression=None, open_timeout=10)
        client = cls(ws, ack=ack)
        if wait_session:
            client.hello = await client.message("session", timeout=15)
        return client

    async def pull(self, timeout: float = 10.0) -> None:
        """Receive one frame (raises ConnectionClosed once the socket ended)."""
        async with asyncio.timeout(timeout):  # unlike wait_for, no task per frame
            frame = await self.ws.recv()
        if isinstance(frame, bytes):
            self.output += frame
            self._unacked += len(frame)
            if self.ack and self._unacked >= ACK_EVERY:
                await self.ws.send(json.dumps({"type": "ack", "bytes": self._unacked}))
                self._unacked = 0
        else:
            self.messages.append(json.loads(frame))

    async def flush_ack(self) -> None:
        if self._unacked:
            await self.ws.send(json.dumps({"type": "ack", "bytes": self._unacked}))
            self._unacked = 0

    async def message(self, kind: str, timeout: float = 10.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for item in self.messages:
                if item["type"] == kind:
                    self.messages.remove(item)
                    return item
            await self.pull(max(0.01, deadline - time.monotonic()))

    async def until(self, pattern: bytes, timeout: float = 10.0, start: int = 0) -> re.Match:
        """Wait until `pattern` (a regex) matches the output from offset `start`."""
        compiled = re.compile(pattern)
        deadline = time.monotonic() + timeout
        position = start
        while (match := compiled.search(self.output, position)) is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                tail = bytes(self.output[-400:])
                raise AssertionError(f"no {pattern!r} within {timeout:g}s; output ends {tail!r}")
            # Rescan only the tail: a match cannot start long before the new bytes.
            position = max(start, len(self.output) - 4096)
            await self.pull(remaining)
        await self.flush_ack()
        return match

    async def type(self, text: str) -> None:
        await self.ws.send(text.encode())

    async def resize(self, cols: int, rows: int) -> None:
        await self.ws.send(json.dumps({"type": "resize", "cols": cols, "rows": rows}))

    async def closed(self, timeout: float = 15.0) -> tuple[int | None, str | None]:
        """Drain until the socket closes; returns (code, reason)."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                await self.pull(max(0.01, deadline - time.monotonic()))
        except websockets.ConnectionClosed:
            pass
        return self.ws.close_code, self.ws.close_reason

    async def close(self) -> None:
        await self.ws.close()
