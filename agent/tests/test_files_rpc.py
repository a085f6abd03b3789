"""The ``files.*`` RPCs through the local runtime, the dispatcher, a multiplexer and a real
sandbox: unknown ids, stopped and deleted workspaces, request bodies, ownership."""

import asyncio
import contextlib
import json
import os
import threading

import pytest

from agent import files
from agent import protocol as p
from agent.rpc import RpcDispatcher
from agent.runtimes.base import RuntimeFailure
from agent.tests.conftest import wait_status
from agent.tests.test_multiplex import pair

MIB5 = p.MAX_FILE_BYTES


def response(raw: bytes):
    return json.loads(raw)


async def running(runtime) -> str:
    env = await runtime.create({"start_command": "exec sleep 600"}, {})
    await wait_status(runtime, env["id"], "running")
    return env["id"]


async def test_the_files_rpcs(runtime):
    env_id = await running(runtime)
    rpc = RpcDispatcher(runtime, agent_info=dict)

    written = response(await rpc.call("files.write", {"id": env_id, "path": "a/b.txt"}, b"hi"))
    assert written["ok"], written
    read = response(await rpc.call("files.read", {"id": env_id, "path": "a/b.txt"}))
    assert read["result"]["content"] == "hi"
    assert read["result"]["version"] == written["result"]["version"]
    listed = response(await rpc.call("files.list", {"id": env_id}))
    assert "a" in [e["name"] for e in listed["result"]["entries"]]
    moved = response(await rpc.call("files.rename", {"id": env_id, "from": "a", "to": "c"}))
    assert moved["result"]["type"] == "dir"
    deleted = await rpc.call("files.delete", {"id": env_id, "path": "c", "recursive": True})
    assert response(deleted) == {"ok": True, "result": {"path": "c", "deleted": True}}
    assert not (runtime.root / env_id / "home" / "c").exists()

    def error(raw):
        return response(raw)["error"]["code"]

    assert error(await rpc.call("files.read", {"id": "env-000000000000", "path": "x"})) == (
        "not_found"
    )
    assert error(await rpc.call("files.write", {"id": env_id, "path": "x"})) == "invalid_params"
    assert error(await rpc.call("files.read", {"id": env_id, "path": "x"}, b"")) == (
        "invalid_params"
    )
    assert error(await rpc.call("files.read", {"id": env_id, "path": "../x"})) == "path_invalid"
    assert error(await rpc.call("files.read", {"id": env_id})) == "invalid_params"
    assert error(await rpc.call("files.rename", {"id": env_id, "from": "x"})) == "invalid_params"


async def test_a_stopped_workspace_has_its_files_and_a_deleted_one_waits_for_them(
    runtime, monkeypatch
):
    env_id = await running(runtime)
    await runtime.stop(env_id)
    service = files.FileService(runtime)
    assert (await service.write(env_id, "kept.txt", b"kept", None))["size"] == 4

    release = threading.Event()
    entered = threading.Event()
    real_write = files.service.write_file

    def slow_write(*args):
        entered.set()
        release.wait(30)
        return real_write(*args)

    monkeypatch.setattr(files.service, "write_file", slow_write)
    saving = asyncio.create_task(service.write(env_id, "late.txt", b"late", None))
    await asyncio.to_thread(entered.wait, 30)
    deleting = asyncio.create_task(runtime.delete(env_id))
    await wait_status(runtime, env_id, "deleting")
    with pytest.raises(RuntimeFailure) as info:
        await service.read(env_id, "kept.txt")
    assert info.value.code == "conflict"
    assert not deleting.done()  # the write still uses the home

    release.set()
    assert (await saving)["path"] == "late.txt"
    assert (await deleting)["deleted"] is True
    assert not (runtime.root / env_id).exists()


async def test_the_files_of_a_workspace_being_cloned_are_not_ready(runtime):
    env_id = await running(runtime)
    runtime._envs[env_id].data.update(status="deploying", phase="cloning")
    service = files.FileService(runtime)

    with pytest.raises(RuntimeFailure) as info:
        await service.list(env_id, "")

    assert info.value.code == "conflict"
    runtime._envs[env_id].data.update(status="running", phase=None)


async def test_five_mib_round_trip_through_a_tunnel(runtime):
    env_id = await running(runtime)
    rpc = RpcDispatcher(runtime, agent_info=dict)
    agent, portal, _, _ = pair({"rpc": rpc.handle_stream})
    unit = '"quoted" \\ back\tslash \x01 ✓\n'  # escaped in JSON, \x01 six times over
    text = unit * (MIB5 // len(unit.encode()))
    content = text + "x" * (MIB5 - len(text.encode()))
    body = content.encode()
    assert len(body) == MIB5

    async def call(method, params, data=None):
        request = p.rpc_request(method, params, body=None if data is None else len(data))
        stream = await portal.open_stream(request)
        if data is not None:
            await stream.write(data)
        return p.decode_rpc_response(await asyncio.wait_for(stream.read_all(), 60))

    saved = await call("files.write", {"id": env_id, "path": "big.txt"}, body)
    read = await call("files.read", {"id": env_id, "path": "big.txt"})

    assert saved["size"] == MIB5
    assert read["content"] == content and read["version"] == saved["version"]
    assert (runtime.root / env_id / "home" / "big.txt").read_bytes() == body
    with pytest.raises(p.RpcError) as info:
        await call("files.write", {"id": env_id, "path": "x"}, body + b"y")
    assert info.value.code == "file_too_large"
    assert p.MAX_RPC_BODY >= MIB5
    await agent.aclose()
    await portal.aclose()


async def test_a_body_announced_wrongly_is_refused(runtime):
    rpc = RpcDispatcher(runtime, agent_info=dict)
    agent, portal, _, _ = pair({"rpc": rpc.handle_stream})
    request = {"kind": "rpc", "method": "files.write", "params": {}, "body": -1}

    stream = await portal.open_stream(request)
    answer = json.loads(await asyncio.wait_for(stream.read_all(), 10))

    assert answer["error"]["code"] == "invalid_params"
    with pytest.raises(p.ProtocolError):
        p.rpc_request("files.write", {}, body=p.MAX_RPC_BODY + 1)
    await agent.aclose()
    await portal.aclose()


async def test_in_a_sandbox_the_builder_owns_and_sees_what_was_saved(tmp_path):
    from agent.runtimes.local import LocalRuntime
    from agent.runtimes.local.sandbox import Sandbox
    from agent.tests.test_sandbox import run_in
    from agent.tests.test_sandbox import running as sandboxed

    runtime = LocalRuntime(tmp_path / "agent", sandbox=Sandbox.detect(), poll_interval=0.05)
    await runtime.load()
    try:
        env = await sandboxed(runtime, {"start_command": "exec sleep infinity"})
        service = files.FileService(runtime)
        await service.write(env["id"], "notes/todo.txt", b"from the Files tab\n", None)

        code, out = await run_in(
            runtime, env["id"], "cat notes/todo.txt && echo more >> notes/todo.txt && ls -ln notes"
        )

        assert code == 0, out
        assert "from the Files tab" in out
        read = await service.read(env["id"], "notes/todo.txt")
        assert read["content"] == "from the Files tab\nmore\n"
        record = runtime._envs[env["id"]]
        owner = record.data["sandbox_uid"] if os.geteuid() == 0 else os.getuid()
        for path in (record.home / "notes", record.home / "notes" / "todo.txt"):
            assert path.stat().st_uid == owner
    finally:
        for env_id in list(runtime._envs):
            with contextlib.suppress(Exception):
                await runtime.delete(env_id)
        await runtime.shutdown()
