"""`Forwarder`: the ``http`` and ``websocket`` stream handlers of one runtime, configured once."""

from __future__ import annotations

from typing import Any

from agent.forward.http import HttpForwarder
from agent.forward.websocket import WebSocketForwarder
from agent.multiplex import Stream
from agent.runtimes.base import Runtime


class Forwarder:
    """Serves ``http`` and ``websocket`` streams for the environments of one runtime.

    ``connect_timeout`` bounds dialling the app, ``response_timeout`` waiting for its
    response head (for a WebSocket, the two together bound the handshake).
    """

    def __init__(
        self,
        runtime: Runtime,
        *,
        connect_timeout: float = 5.0,
        response_timeout: float = 120.0,
    ) -> None:
        self.http = HttpForwarder(
            runtime, connect_timeout=connect_timeout, response_timeout=response_timeout
        )
        self.websocket = WebSocketForwarder(
            runtime, connect_timeout=connect_timeout, response_timeout=response_timeout
        )

    async def handle_http(self, stream: Stream, request: dict[str, Any]) -> None:
        """One request/response exchange (see `agent.forward.http`)."""
        await self.http.handle(stream, request)

    async def handle_websocket(self, stream: Stream, request: dict[str, Any]) -> None:
        """One WebSocket, message by message (see `agent.forward.websocket`)."""
        await self.websocket.handle(stream, request)
