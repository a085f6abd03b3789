"""The OPEN request of a preview stream: what it may reach, and the errors answered instead.

`resolve_port` maps the workspace id and *declared* port of a request to an `Upstream`
the runtime connects to (the workspace's own loopback when it is sandboxed), or raises
`ForwardError`: ``workspace_not_found`` (404),
``port_not_declared`` (404), ``workspace_not_running`` (409) or
``upstream_unavailable`` (502). `parse_method`, `parse_path` and `parse_headers` accept
only what can be written on an HTTP/1.1 request line or header line (``bad_request``,
400, otherwise), and `end_to_end` drops hop-by-hop headers, including those a
``Connection`` header names.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from typing import Any, Final

from agent.protocol import RUNNING
from agent.runtimes.base import NOT_FOUND, Runtime, RuntimeFailure

HOP_BY_HOP: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
TOKEN: Final = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
"""An HTTP token: a method or a header name."""
_BAD_VALUE = re.compile(r"[\r\n\x00]")


class ForwardError(Exception):
    """Why a request cannot reach the app: an HTTP status, a stable code and a sentence."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(code, detail)
        self.status = status
        self.code = code
        self.detail = detail

    def head(self) -> dict[str, Any]:
        """The response head the portal shows instead of the app's answer."""
        return {"status": self.status, "headers": [], "error": self.code, "detail": self.detail}


@dataclass(frozen=True)
class Upstream:
    """The app on a declared port of a running workspace, reached through the runtime
    (a sandboxed workspace's ports are on its own loopback, not the host's)."""

    runtime: Runtime
    environment: str
    port: int

    @property
    def key(self) -> tuple[str, int]:
        return (self.environment, self.port)

    async def connect(self, timeout: float) -> socket.socket:
        return await self.runtime.connect_port(self.environment, self.port, timeout)


async def resolve_port(runtime: Runtime, request: dict[str, Any]) -> Upstream:
    """The app serving the declared port of a running environment."""
    env_id, port = request.get("environment"), request.get("port")
    if not isinstance(env_id, str) or not isinstance(port, int) or isinstance(port, bool):
        raise ForwardError(400, "bad_request", "environment and port are required")
    try:
        env = await runtime.get(env_id)
    except RuntimeFailure as exc:
        if exc.code == NOT_FOUND:
            detail = "The workspace does not exist."
            raise ForwardError(404, "workspace_not_found", detail) from None
        raise ForwardError(502, "upstream_unavailable", exc.message) from None
    if env.get("status") != RUNNING:
        status = env.get("status", "unknown")
        raise ForwardError(409, "workspace_not_running", f"The workspace is {status}.")
    declared = [item for item in env.get("ports") or () if item.get("port") == port]
    if not declared:
        raise ForwardError(404, "port_not_declared", f"Port {port} is not declared.")
    if not declared[0].get("host_port"):
        raise ForwardError(502, "upstream_unavailable", not_listening(port))
    return Upstream(runtime, env_id, port)


def parse_method(raw: Any) -> str:
    """The request's method, an HTTP token."""
    if not isinstance(raw, str) or not TOKEN.match(raw):
        raise ForwardError(400, "bad_request", "invalid method")
    return raw


def parse_path(raw: Any) -> str:
    """The request's target, an absolute path without whitespace."""
    if not isinstance(raw, str) or not raw.startswith("/") or re.search(r"[\s\x00]", raw):
        raise ForwardError(400, "bad_request", "path must be an absolute path without spaces")
    return raw


def parse_headers(raw: Any) -> list[tuple[str, str]]:
    """Validated ``[[name, value], …]`` from an OPEN payload."""
    if not isinstance(raw, list):
        raise ForwardError(400, "bad_request", "headers must be a list")
    result = []
    for item in raw:
        if not (isinstance(item, list | tuple) and len(item) == 2):
            raise ForwardError(400, "bad_request", "each header is a [name, value] pair")
        name, value = item
        if not (isinstance(name, str) and isinstance(value, str) and TOKEN.match(name)):
            raise ForwardError(400, "bad_request", "invalid header")
        if _BAD_VALUE.search(value):
            raise ForwardError(400, "bad_request", f"invalid value for header {name}")
        result.append((name, value))
    return result


def end_to_end(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Drop hop-by-hop headers, including those a ``Connection`` header names."""
    named = {
        token.strip().lower()
        for name, value in headers
        if name.lower() == "connection"
        for token in value.split(",")
    }
    return [(n, v) for n, v in headers if n.lower() not in HOP_BY_HOP and n.lower() not in named]


def not_listening(port: int) -> str:
    """The sentence of ``upstream_unavailable`` when nothing listens on ``port``."""
    return f"Nothing is listening on port {port} in the workspace."


def not_answering(port: int) -> str:
    """The sentence of ``upstream_timeout`` when the app on ``port`` is too slow."""
    return f"The app on port {port} did not answer in time."
