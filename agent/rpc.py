"""RPC dispatch: method names of the tunnel protocol → runtime calls.

Guarantees: :meth:`RpcDispatcher.call` never raises; it always returns a
response body (``{"ok": true, "result": ...}`` or ``{"ok": false, "error":
{...}}``). Unknown methods answer ``unknown_method``, bad parameters
``invalid_params``, runtime failures (`RuntimeFailure`, which is `protocol.RpcError`)
their own code and message, and anything unexpected ``internal`` with a generic
message (the traceback goes to the agent log only).
Parameters named ``secret_env`` are never logged, nor is any request body.

A request whose OPEN announces a ``body`` (`protocol.rpc_request`) is answered once that
many bytes have arrived as DATA; only the methods of `RpcDispatcher.body_methods` (a
file's content for ``files.write``) take one, every other method refuses it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

from agent import protocol
from agent.files import FileService
from agent.multiplex import Stream
from agent.runtimes.base import INTERNAL, INVALID_PARAMS, Runtime

logger = logging.getLogger(__name__)

UNKNOWN_METHOD: Final = "unknown_method"
Method = Callable[[dict[str, Any]], Awaitable[Any]]
BodyMethod = Callable[[dict[str, Any], bytes], Awaitable[Any]]


def _param(
    params: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any = ...
) -> Any:
    value = params.get(name, default)
    if value is ...:
        raise protocol.RpcError(INVALID_PARAMS, f"missing parameter {name!r}")
    if value is not None and not isinstance(value, kind):
        raise protocol.RpcError(INVALID_PARAMS, f"parameter {name!r} has the wrong type")
    return value


class RpcDispatcher:
    """Executes RPC requests against one runtime."""

    def __init__(self, runtime: Runtime, *, agent_info: Callable[[], dict[str, Any]]) -> None:
        self.runtime = runtime
        self._agent_info = agent_info
        rt = runtime
        files = FileService(runtime)
        self.methods: dict[str, Method] = {
            "agent.info": self._info,
            "environments.list": lambda p: rt.list(_param(p, "selector", dict, None)),
            "environments.get": lambda p: rt.get(_param(p, "id", str)),
            "environments.create": lambda p: rt.create(
                _param(p, "spec", dict),
                _param(p, "metadata", dict, None),
                _param(p, "secret_env", dict, None),
            ),
            "environments.start": lambda p: rt.start(
                _param(p, "id", str), _param(p, "secret_env", dict, None)
            ),
            "environments.stop": lambda p: rt.stop(_param(p, "id", str)),
            "environments.restart": lambda p: rt.restart(
                _param(p, "id", str), _param(p, "secret_env", dict, None)
            ),
            "environments.delete": lambda p: rt.delete(_param(p, "id", str)),
            "environments.logs": self._logs,
            "environments.set_metadata": lambda p: rt.set_metadata(
                _param(p, "id", str), _param(p, "metadata", dict)
            ),
            "environments.upgrade": lambda p: rt.upgrade(
                _param(p, "id", str), _param(p, "spec", dict), _param(p, "secret_env", dict, None)
            ),
            "files.list": lambda p: files.list(_param(p, "id", str), _param(p, "path", str, "")),
            "files.read": lambda p: files.read(_param(p, "id", str), _param(p, "path", str)),
            "files.rename": lambda p: files.rename(
                _param(p, "id", str),
                _param(p, "from", str),
                _param(p, "to", str),
                bool(_param(p, "overwrite", bool, False)),
            ),
            "files.delete": lambda p: files.delete(
                _param(p, "id", str),
                _param(p, "path", str),
                bool(_param(p, "recursive", bool, False)),
            ),
        }
        self.body_methods: dict[str, BodyMethod] = {
            "files.write": lambda p, body: files.write(
                _param(p, "id", str),
                _param(p, "path", str),
                body,
                _param(p, "base_version", str, None),
            ),
        }

    async def _info(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._agent_info()

    async def _logs(self, params: dict[str, Any]) -> dict[str, Any]:
        tail = _param(params, "tail", int, 200)
        lines = await self.runtime.logs(_param(params, "id", str), tail)
        return {"lines": lines}

    async def call(self, method: Any, params: Any, body: bytes | None = None) -> bytes:
        """Run one request (with its body, if it has one) and return the encoded response."""
        known = isinstance(method, str)
        handler = self.methods.get(method) if known else None
        body_handler = self.body_methods.get(method) if known else None
        if handler is None and body_handler is None:
            return protocol.encode_rpc_error(UNKNOWN_METHOD, f"unknown method {method!r:.100}")
        if (body_handler is None) != (body is None):
            wrong = "takes no request body" if body_handler is None else "needs a request body"
            return protocol.encode_rpc_error(INVALID_PARAMS, f"{method} {wrong}")
        if params is None:
            params = {}
        if not isinstance(params, dict):
            return protocol.encode_rpc_error(INVALID_PARAMS, "params must be an object")
        try:
            if body_handler is not None:
                result = await body_handler(params, body or b"")
            else:
                result = await self.methods[method](params)
            return protocol.encode_rpc_result(result)
        except protocol.RpcError as exc:  # a RuntimeFailure: the same class
            logger.info("rpc %s failed: %s", method, exc)
            return protocol.encode_rpc_error(exc.code, exc.message)
        except Exception:
            logger.exception("rpc %s: unexpected error", method)
            return protocol.encode_rpc_error(INTERNAL, "internal error in the agent")

    async def handle_stream(self, stream: Stream, request: dict[str, Any]) -> None:
        """Stream handler for kind ``rpc``: request in OPEN (and its body, if announced, as
        DATA), response as DATA then CLOSE."""
        try:
            length = None if "body" not in request else protocol.rpc_body_length(request["body"])
        except protocol.ProtocolError as exc:
            response = protocol.encode_rpc_error(INVALID_PARAMS, exc.reason)
        else:
            body = None if length is None else await _read_body(stream, length)
            if length is not None and body is None:
                return  # the caller went away before sending it all
            if body is not None and len(body) != length:
                response = protocol.encode_rpc_error(INVALID_PARAMS, "body longer than announced")
            else:
                response = await self.call(request.get("method"), request.get("params"), body)
        await stream.write(response)
        await stream.close(protocol.CLOSE_NORMAL)


async def _read_body(stream: Stream, length: int) -> bytes | None:
    """The first ``length`` bytes of DATA (or a little more if the caller sent more);
    None if the stream ended first."""
    parts: list[bytes] = []
    size = 0
    while size < length:
        chunk = await stream.read()
        if not chunk:
            return None
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)
