"""RPC dispatch: method names of the tunnel protocol → runtime calls.

Guarantees: :meth:`RpcDispatcher.call` never raises; it always returns a
response body (``{"ok": true, "result": ...}`` or ``{"ok": false, "error":
{...}}``). Unknown methods answer ``unknown_method``, bad parameters
``invalid_params``, runtime failures (`RuntimeFailure`, which is `protocol.RpcError`)
their own code and message, and anything unexpected ``internal`` with a generic
message (the traceback goes to the agent log only).
Parameters named ``secret_env`` are never logged.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

from agent import protocol
from agent.multiplex import Stream
from agent.runtimes.base import INTERNAL, INVALID_PARAMS, Runtime

logger = logging.getLogger(__name__)

UNKNOWN_METHOD: Final = "unknown_method"
Method = Callable[[dict[str, Any]], Awaitable[Any]]


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
        }

    async def _info(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._agent_info()

    async def _logs(self, params: dict[str, Any]) -> dict[str, Any]:
        tail = _param(params, "tail", int, 200)
        lines = await self.runtime.logs(_param(params, "id", str), tail)
        return {"lines": lines}

    async def call(self, method: Any, params: Any) -> bytes:
        """Run one request and return the encoded response body."""
        handler = self.methods.get(method) if isinstance(method, str) else None
        if handler is None:
            return protocol.encode_rpc_error(UNKNOWN_METHOD, f"unknown method {method!r:.100}")
        if params is None:
            params = {}
        if not isinstance(params, dict):
            return protocol.encode_rpc_error(INVALID_PARAMS, "params must be an object")
        try:
            result = await handler(params)
            return protocol.encode_rpc_result(result)
        except protocol.RpcError as exc:  # a RuntimeFailure: the same class
            logger.info("rpc %s failed: %s", method, exc)
            return protocol.encode_rpc_error(exc.code, exc.message)
        except Exception:
            logger.exception("rpc %s: unexpected error", method)
            return protocol.encode_rpc_error(INTERNAL, "internal error in the agent")

    async def handle_stream(self, stream: Stream, request: dict[str, Any]) -> None:
        """Stream handler for kind ``rpc``: request in OPEN, response as DATA then CLOSE."""
        body = await self.call(request.get("method"), request.get("params"))
        await stream.write(body)
        await stream.close(protocol.CLOSE_NORMAL)
