"""The tunnel against a fake portal served by websockets on 127.0.0.1."""

import asyncio
import contextlib
import http
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from websockets.asyncio.server import serve

from agent import protocol as p
from agent.runtimes.local import LocalRuntime
from agent.tests.conftest import wait_status, wait_until, write_environment
from agent.tunnel import Tunnel, backoff_delay, rejected_delay, tunnel_url

TOKEN = "agt_test_token_0123456789"
REPO = Path(__file__).resolve().parents[2]


class FakePortal:
    """A tiny portal: checks the Bearer token, records hellos, scripted per connection."""

    def __init__(self, script=None, token=TOKEN):
        self.token = token
        self.script = script
        self.hellos = []
        self.connections = 0
        self.rejected = 0
        self.paths = []

    def process_request(self, connection, request):
        self.paths.append(request.path)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            self.rejected += 1
            return connection.respond(http.HTTPStatus.UNAUTHORIZED, "bad token\n")
        return None

    async def handler(self, ws):
        self.connections += 1
        self.hellos.append(p.decode_message(await ws.recv()))
        if self.script is not None:
            await self.script(ws, self.connections)
        else:
            await ws.wait_closed()

    @contextlib.asynccontextmanager
    async def running(self):
        async with serve(
            self.handler, "127.0.0.1", 0, process_request=self.process_request, compression=None
        ) as server:
            port = server.sockets[0].getsockname()[1]
            yield f"http://127.0.0.1:{port}"


async def rpc(ws, stream_id, method, params=None):
    """Portal side of one RPC: OPEN, then DATA until CLOSE (answering nothing else)."""
    await ws.send(p.open_frame(stream_id, p.rpc_request(method, params)))
    body = b""
    while True:
        message = await ws.recv()
        if isinstance(message, str):
            continue
        for frame in map(p.decode_frame, p.split_message(message)):
            assert frame.stream == stream_id
            if frame.type == p.DATA:
                body += frame.payload
            elif frame.type == p.CLOSE:
                assert frame.arg == p.CLOSE_NORMAL
                return p.decode_rpc_response(body)


@contextlib.asynccontextmanager
async def agent_tunnel(url, runtime, **options):
    options = {"backoff_base": 0.01, "backoff_cap": 0.05, **options}
    tunnel = Tunnel(portal_url=url, token=options.pop("token", TOKEN), runtime=runtime, **options)
    task = asyncio.create_task(tunnel.run())
    try:
        yield tunnel
    finally:
        tunnel.stop()
        await asyncio.wait_for(task, 10)


def test_tunnel_url():
    assert tunnel_url("https://portal.example.com/") == "wss://portal.example.com/agent/v1/tunnel"
    assert tunnel_url("http://localhost:8000/x") == "ws://localhost:8000/x/agent/v1/tunnel"
    with pytest.raises(ValueError):
        tunnel_url("ftp://portal")
    with pytest.raises(ValueError):
        tunnel_url("portal.example.com")


def test_backoff_bounds_and_jitter():
    assert backoff_delay(0, rng=lambda: 1.0) == 0.5
    assert backoff_delay(3, rng=lambda: 1.0) == 4.0
    assert backoff_delay(50, rng=lambda: 1.0) == 30.0
    assert backoff_delay(50, rng=lambda: 0.0) == 0.0
    samples = [backoff_delay(10) for _ in range(200)]
    assert all(0 <= s <= 30 for s in samples)
    assert len(set(samples)) > 150  # full jitter: spread, not a fixed schedule
    assert max(samples) > 20 and min(samples) < 10
    rejected = [rejected_delay() for _ in range(200)]
    assert all(30 <= s <= 60 for s in rejected)
    assert len(set(rejected)) > 150


async def test_hello_rpc_ping_and_refused_kinds(runtime):
    env = await runtime.create({}, {"RDE_OWNER_EMAIL": "a@example.com"})
    await wait_status(runtime, env["id"], "running")  # no events interleave with the script
    outcome = {}

    async def script(ws, n):
        outcome["list"] = await rpc(ws, 1, "environments.list", {"selector": {}})
        outcome["info"] = await rpc(ws, 3, "agent.info")
        with pytest.raises(p.RpcError) as info:
            await rpc(ws, 5, "environments.get", {"id": "env-nope"})
        outcome["missing"] = info.value.code
        with pytest.raises(p.RpcError) as info:
            await rpc(ws, 7, "no.such.method")
        outcome["unknown"] = info.value.code
        await ws.send(p.open_frame(9, {"kind": "shell"}))
        [frame] = map(p.decode_frame, p.split_message(await ws.recv()))
        outcome["shell"] = (frame.type, frame.stream, frame.arg)
        await ws.send(p.encode_message(p.ping_message(42)))
        while (reply := p.decode_message(await ws.recv()))["type"] != "pong":
            pass
        outcome["pong"] = reply
        await ws.wait_closed()

    portal = FakePortal(script)
    async with portal.running() as url, agent_tunnel(url, runtime):
        await wait_until(lambda: "pong" in outcome)
    assert portal.paths == ["/agent/v1/tunnel"]
    hello = portal.hellos[0]
    assert hello["type"] == "hello" and hello["runtime"] == "local"
    assert hello["environments"] == 1 and "rpc" in hello["capabilities"]
    assert hello["isolation"] == runtime.isolation
    assert set(hello["isolation"]) == {"sandbox", "network", "limits"}
    assert p.known_isolation(hello["isolation"]) == hello["isolation"]
    assert [e["id"] for e in outcome["list"]] == [env["id"]]
    assert outcome["info"]["environments"] == 1
    assert outcome["info"]["isolation"] == hello["isolation"]
    assert outcome["missing"] == "not_found"
    assert outcome["unknown"] == "unknown_method"
    assert outcome["shell"] == (p.CLOSE, 9, p.CLOSE_PROTOCOL_ERROR)  # no environment named
    assert outcome["pong"]["ts"] == 42


async def test_large_rpc_response_is_chunked_and_waits_for_credit(tmp_path):
    for i in range(300):
        write_environment(tmp_path / "environments", f"env-{i:012x}", metadata={"PAD": "x" * 1000})
    runtime = LocalRuntime(tmp_path, sandbox=None)
    await runtime.load()
    seen = {}

    async def script(ws, n):
        await ws.send(p.open_frame(1, p.rpc_request("environments.list")))
        body, received, closed = b"", 0, False
        while not closed:
            message = await ws.recv()
            if isinstance(message, str):
                continue  # events of the environments still provisioning
            for frame in map(p.decode_frame, p.split_message(message)):
                if frame.type == p.CLOSE:
                    closed = True
                    break
                body += frame.payload
                received += len(frame.payload)
                assert received <= p.INITIAL_WINDOW + seen.get("granted", 0)
                if received - seen.get("granted", 0) >= p.INITIAL_WINDOW:
                    seen["granted"] = seen.get("granted", 0) + p.INITIAL_WINDOW
                    await ws.send(p.credit_frame(1, p.INITIAL_WINDOW))
        seen["result"] = p.decode_rpc_response(body)
        await ws.wait_closed()

    portal = FakePortal(script)
    async with portal.running() as url, agent_tunnel(url, runtime):
        await wait_until(lambda: "result" in seen, timeout=10)
    await runtime.shutdown()
    assert len(seen["result"]) == 300
    assert seen["granted"] >= p.INITIAL_WINDOW  # the body needed more than one window


async def test_events_are_pushed(runtime):
    received = []

    async def script(ws, n):
        await ws.send(p.open_frame(1, p.rpc_request("environments.create", {"spec": {}})))
        async for message in ws:
            if isinstance(message, str):
                received.append(p.decode_message(message))

    portal = FakePortal(script)
    async with portal.running() as url, agent_tunnel(url, runtime):
        await wait_until(
            lambda: any(m.get("environment", {}).get("status") == "running" for m in received)
        )
    assert {m["event"] for m in received if m["type"] == "event"} == {"environment.updated"}


async def test_reconnects_after_the_portal_drops_the_connection(runtime):
    async def script(ws, n):
        if n == 1:
            await ws.close()
        else:
            await ws.wait_closed()

    portal = FakePortal(script)
    async with portal.running() as url, agent_tunnel(url, runtime) as tunnel:
        await wait_until(lambda: portal.connections >= 2)
        assert tunnel.connections >= 2
    assert len(portal.hellos) >= 2


async def test_silent_tunnel_is_declared_dead_and_redialled(runtime):
    portal = FakePortal()  # never answers pings
    async with (
        portal.running() as url,
        agent_tunnel(url, runtime, heartbeat_interval=0.1, dead_after=0.3),
    ):
        await wait_until(lambda: portal.connections >= 2, timeout=5)


async def test_unreadable_frame_drops_the_tunnel_not_the_agent(runtime):
    async def script(ws, n):
        if n == 1:
            await ws.send(b"\x01\x00")
        await ws.wait_closed()

    portal = FakePortal(script)
    async with portal.running() as url, agent_tunnel(url, runtime):
        await wait_until(lambda: portal.connections >= 2)


async def test_rejected_token_is_retried_slowly_and_never_logged(runtime, caplog):
    caplog.set_level(logging.DEBUG)
    portal = FakePortal()
    async with (
        portal.running() as url,
        agent_tunnel(url, runtime, token="wrong-token-value", backoff_cap=30.0),
    ):
        await wait_until(lambda: portal.rejected >= 1)
        await asyncio.sleep(0.5)
        assert portal.rejected == 1  # no tight loop: next attempt is 30-60 s away
    assert "the portal rejected the agent token (HTTP 401)" in caplog.text
    agent_lines = [r.getMessage() for r in caplog.records if r.name.startswith("agent")]
    assert any("> User-Agent" in line for line in agent_lines)  # handshake debug is on
    assert not [line for line in agent_lines if "wrong-token-value" in line]


async def test_revoked_token_is_logged_then_refused_and_retried_with_backoff(runtime, caplog):
    """The portal closes a live tunnel with TUNNEL_CLOSE_REVOKED (token rotated): the agent
    says so, redials, is refused from then on and keeps retrying without spinning."""
    caplog.set_level(logging.INFO)

    async def script(ws, n):
        portal.token = "the-rotated-token"  # from now on the old token is refused
        await ws.close(p.TUNNEL_CLOSE_REVOKED, "credentials revoked: token_rotated")

    portal = FakePortal(script)
    async with portal.running() as url, agent_tunnel(url, runtime, backoff_cap=0.2) as tunnel:
        await wait_until(lambda: portal.rejected >= 3, timeout=10)
        started, rejected = time.monotonic(), portal.rejected
        await asyncio.sleep(1.0)
        per_second = (portal.rejected - rejected) / (time.monotonic() - started)
        assert per_second <= 1 / 0.2 + 1  # each refusal waits [cap, 2·cap]: no tight loop
        assert portal.rejected > rejected  # ... and it never gives up
        assert tunnel.connections == 1
    assert "the portal revoked the agent token (credentials revoked: token_rotated)" in caplog.text
    assert "the portal rejected the agent token (HTTP 401)" in caplog.text
    assert TOKEN not in caplog.text


async def test_shutdown_on_sigterm_leaves_workspaces_running(tmp_path):
    connected = asyncio.Event()

    async def script(ws, n):
        connected.set()
        await ws.wait_closed()

    portal = FakePortal(script)
    async with portal.running() as url:
        env = {
            **os.environ,
            "ENCLAVE_PORTAL_URL": url,
            "ENCLAVE_AGENT_TOKEN": TOKEN,
            "ENCLAVE_DATA_DIR": str(tmp_path),
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "agent", cwd=REPO, env=env, stderr=subprocess.PIPE
        )
        try:
            await asyncio.wait_for(connected.wait(), 10)
            proc.send_signal(signal.SIGTERM)
            started = time.monotonic()
            assert await asyncio.wait_for(proc.wait(), 10) == 0
            assert time.monotonic() - started < 5
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        stderr = (await proc.stderr.read()).decode()
    assert "tunnel connected" in stderr
    assert TOKEN not in stderr


def test_cli_help_and_no_django():
    out = subprocess.run(
        [sys.executable, "-m", "agent", "--help"], cwd=REPO, capture_output=True, text=True
    )
    assert out.returncode == 0
    for name in ("ENCLAVE_PORTAL_URL", "ENCLAVE_AGENT_TOKEN", "ENCLAVE_DATA_DIR", "--runtime"):
        assert name in out.stdout
    check = "import sys, agent.__main__; assert not [m for m in sys.modules if 'django' in m]"
    assert subprocess.run([sys.executable, "-c", check], cwd=REPO).returncode == 0
    missing = subprocess.run(
        [sys.executable, "-m", "agent"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"]},
    )
    assert missing.returncode == 2 and "--portal-url" in missing.stderr
