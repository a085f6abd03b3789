"""RPC dispatch: method table, parameter checks, error mapping without leaks."""

import json

import pytest

from agent import protocol as p
from agent.rpc import RpcDispatcher
from agent.runtimes.base import RuntimeFailure


class ExplodingRuntime:
    name = "fake"
    capabilities = ()

    async def get(self, env_id):
        raise RuntimeError("/secret/path/trace")

    async def stop(self, env_id):
        raise RuntimeFailure("conflict", "environment is being deleted")


def body(raw: bytes) -> dict:
    return json.loads(raw)


async def test_dispatch_and_error_mapping(runtime):
    rpc = RpcDispatcher(runtime, agent_info=lambda: {"version": "x"})
    created = body(await rpc.call("environments.create", {"spec": {}, "metadata": {"A": "1"}}))
    assert created["ok"] and created["result"]["metadata"] == {"A": "1"}
    env_id = created["result"]["id"]
    assert body(await rpc.call("environments.get", {"id": env_id}))["result"]["id"] == env_id
    listed = body(await rpc.call("environments.list", {"selector": {"A": "1"}}))
    assert [e["id"] for e in listed["result"]] == [env_id]
    logs = body(await rpc.call("environments.logs", {"id": env_id, "tail": 5}))
    assert logs == {"ok": True, "result": {"lines": []}}
    assert body(await rpc.call("agent.info", None)) == {"ok": True, "result": {"version": "x"}}

    assert body(await rpc.call("nope", {}))["error"]["code"] == "unknown_method"
    assert body(await rpc.call(None, {}))["error"]["code"] == "unknown_method"
    assert body(await rpc.call("environments.get", []))["error"]["code"] == "invalid_params"
    assert body(await rpc.call("environments.get", {}))["error"]["code"] == "invalid_params"
    assert body(await rpc.call("environments.get", {"id": 3}))["error"]["code"] == "invalid_params"
    missing = body(await rpc.call("environments.stop", {"id": "env-000000000000"}))
    assert missing["error"]["code"] == "not_found"
    bad = body(await rpc.call("environments.create", {"spec": {"ports": "x"}}))
    assert bad["error"]["code"] == "invalid_spec"


async def test_unexpected_errors_are_generic():
    rpc = RpcDispatcher(ExplodingRuntime(), agent_info=dict)
    failed = body(await rpc.call("environments.get", {"id": "env-1"}))
    assert failed == {
        "ok": False,
        "error": {"code": "internal", "message": "internal error in the agent"},
    }
    conflict = body(await rpc.call("environments.stop", {"id": "env-1"}))
    assert conflict["error"] == {"code": "conflict", "message": "environment is being deleted"}


async def test_a_runtime_failure_is_the_rpc_error_the_portal_decodes():
    assert RuntimeFailure is p.RpcError
    rpc = RpcDispatcher(ExplodingRuntime(), agent_info=dict)
    raw = await rpc.call("environments.stop", {"id": "env-1"})
    error = {"code": "conflict", "message": "environment is being deleted"}
    assert body(raw) == {"ok": False, "error": error}
    with pytest.raises(p.RpcError) as info:
        p.decode_rpc_response(raw)
    assert (info.value.code, info.value.message) == (error["code"], error["message"])
