"""Forwarding of preview traffic: ``http`` and ``websocket`` streams to a workspace port.

The portal opens one stream per browser request (or WebSocket) with the workspace id
and the *declared* port; the agent maps that to the loopback port the runtime
allocated and talks to the app itself. The record sequences are documented in
``docs/agent.md`` ("Preview streams").

Guarantees:

* Only ports the environment declares are reachable, and only while it runs; the
  answer otherwise is a response head with an ``error`` code, never a hang:
  ``workspace_not_found`` (404), ``port_not_declared`` (404),
  ``workspace_not_running`` (409), ``upstream_unavailable`` (502, nothing listens),
  ``upstream_protocol_error`` (502), ``upstream_timeout`` (504).
* Nothing is buffered beyond one 64 KiB chunk: request bodies are written to the app
  as they arrive, response bodies are read from the app only as fast as the stream's
  credit allows, so a slow browser throttles the app. Each chunk is sent as soon as it
  is read (server-sent events arrive one by one).
* The request reaches the app with the browser's ``Host`` and the headers the portal
  forwarded (already stripped of portal credentials); hop-by-hop headers are removed
  again here, and the body framing (``Content-Length`` or chunked) is the agent's own.
* A stream closed by the portal (browser gone) ends the upstream request at once.
  Keep-alive connections to the app are reused only after a complete exchange.

Modules: `forwarder` (`Forwarder`, the two stream handlers), `request` (what an OPEN
may reach, `ForwardError`), `http` (``http`` streams), `client` (HTTP/1.1 to the app)
and `websocket` (``websocket`` streams).
"""

from agent.forward.client import (
    BODY_CHUNK,
    IDLE_CONNECTION_TTL,
    IDLE_CONNECTIONS_PER_PORT,
    MAX_RESPONSE_HEAD,
)
from agent.forward.forwarder import Forwarder
from agent.forward.request import HOP_BY_HOP, ForwardError

__all__ = [
    "BODY_CHUNK",
    "HOP_BY_HOP",
    "IDLE_CONNECTIONS_PER_PORT",
    "IDLE_CONNECTION_TTL",
    "MAX_RESPONSE_HEAD",
    "ForwardError",
    "Forwarder",
]
