"""Shell sessions over real PTYs: lifecycle, resume and replay, grace, credit, refusals."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
from pathlib import Path

import pytest

from agent import protocol as p
from agent.multiplex import Multiplexer
from agent.runtimes.base import CONFLICT, NOT_FOUND, RuntimeFailure, ShellTarget
from agent.shell import ShellService
from agent.tests.conftest import wait_status, wait_until

ENV_ID = "env-0123456789ab"


class FakeRuntime:
    """Just what the shell service needs: a status per environment and a shell context."""

    def __init__(self, home):
        self.home = home
        self.status = {ENV_ID: "running"}

    async def get(self, env_id):
        if env_id not in self.status:
            raise RuntimeFailure(NOT_FOUND, "gone")
        return {"id": env_id, "status": self.status[env_id]}

    def shell_context(self, env_id):
        if env_id not in self.status:
            raise RuntimeFailure(NOT_FOUND, "gone")
        if self.status[env_id] != "running":
            raise RuntimeFailure(CONFLICT, f"environment is {self.status[env_id]}")
        env = {"PATH": os.environ["PATH"], "HOME": str(self.home), "SECRET_X": "s3cret"}
        return ShellTarget(cwd=str(self.home), env={**env, "LANG": "C.UTF-8", "PORT": "4321"})


class Client:
    """The portal's side of one shell stream."""

    def __init__(self, stream):
        self.stream = stream
        self.parser = p.ShellRecordParser()
        self.output = bytearray()
        self.controls: list[dict] = []

    async def _pull(self) -> bool:
        chunk = await self.stream.read()
        if not chunk:
            return False
        for record_type, payload in self.parser.feed(chunk):
            if record_type == p.SHELL_DATA:
                self.output += payload
            else:
                self.controls.append(p.decode_shell_control(payload))
        return True

    async def control(self, timeout=5.0) -> dict:
        async def pull_one():
            while not self.controls:
                if not await self._pull():
                    raise AssertionError("stream ended without a control record")
            return self.controls.pop(0)

        return await asyncio.wait_for(pull_one(), timeout)

    async def until(self, pattern: bytes, timeout=5.0) -> re.Match:
        async def pull():
            while (match := re.search(pattern, self.output)) is None:
                if not await self._pull():
                    raise AssertionError(f"ended before {pattern!r}: {bytes(self.output)[-300:]}")
            return match

        return await asyncio.wait_for(pull(), timeout)

    async def type(self, text: str) -> None:
        await self.stream.write(p.shell_data_record(text.encode()))

    async def send_control(self, obj: dict) -> None:
        await self.stream.write(p.shell_control_record(obj))


@pytest.fixture
def fake_runtime(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    return FakeRuntime(home)


@pytest.fixture
async def service(fake_runtime):
    shells = ShellService(fake_runtime, grace=30, check_interval=0.05)
    yield shells
    await shells.aclose()


@pytest.fixture
def portal(service):
    """The portal's multiplexer wired in-memory to an agent serving ``shell`` streams."""
    portal_mux: Multiplexer | None = None

    async def to_portal(data):
        await portal_mux.feed(data)

    agent_mux = Multiplexer(to_portal, {"shell": service.handle_stream})
    portal_mux = Multiplexer(agent_mux.feed, role="portal")
    return portal_mux


async def open_shell(portal, **kwargs) -> tuple[Client, dict]:
    request = p.shell_open_request(ENV_ID, **kwargs)
    client = Client(await portal.open_stream(request))
    return client, await client.control()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as stat:
        return stat.read().rpartition(")")[2].split()[0] != "Z"
    return True


async def shell_pid(client: Client) -> int:
    await client.type("echo pid=$$\n")
    return int((await client.until(rb"pid=(\d+)\r?\n")).group(1))


async def test_login_shell_runs_in_home_with_the_workspace_environment(portal, fake_runtime):
    client, hello = await open_shell(portal, cols=100, rows=30)
    assert hello["type"] == "session" and hello["resumed"] is False and hello["session"]
    await client.type('echo "at:$PWD:$SECRET_X:$PORT:$TERM"; [ -t 0 ] && echo is-a-tty\n')
    await client.until(rf"at:{fake_runtime.home}:s3cret:4321:xterm-256color".encode())
    await client.until(rb"is-a-tty")
    await client.type("stty size\n")
    await client.until(rb"30 100")
    await client.send_control({"type": "resize", "cols": 132, "rows": 43})
    await client.type("stty size\n")
    await client.until(rb"43 132")


async def test_shell_exit_sends_the_exit_code_then_closes(portal):
    client, _ = await open_shell(portal, command="echo from-command; exit 3")
    await client.until(rb"from-command")
    assert await client.control() == {"type": "exit", "reason": "exited", "code": 3}
    assert await client.stream.read() == b""
    assert client.stream.close_code == p.CLOSE_NORMAL


async def test_refused_unless_the_environment_is_running(portal, fake_runtime, service):
    fake_runtime.status[ENV_ID] = "stopped"
    client, error = await open_shell(portal)
    assert error["type"] == "error" and error["code"] == "workspace_not_running"
    assert await client.stream.read() == b""
    assert client.stream.close_code == p.CLOSE_REFUSED
    assert service.sessions == {}
    missing = Client(await portal.open_stream(p.shell_open_request("env-ffffffffffff")))
    assert (await missing.control())["code"] == "not_found"


async def test_resume_within_grace_replays_output_and_keeps_the_same_shell(portal, service):
    first, hello = await open_shell(portal)
    pid = await shell_pid(first)
    await first.type("echo before-the-$((6*7))\n")
    await first.until(rb"before-the-42\r?\n")
    await first.stream.close()
    session = service.sessions[hello["session"]]
    await wait_until(lambda: session.stream is None)
    assert alive(pid)

    second, again = await open_shell(portal, session=hello["session"])
    assert again == {"type": "session", "session": hello["session"], "resumed": True}
    await second.until(rb"before-the-42")  # the replay comes first
    assert await shell_pid(second) == pid
    assert len(service.sessions) == 1


async def test_a_second_stream_takes_the_session_over(portal, service):
    first, hello = await open_shell(portal)
    await shell_pid(first)
    second, _ = await open_shell(portal, session=hello["session"])
    assert await first.stream.read_all() is not None
    assert first.stream.close_code == p.CLOSE_SHELL_TAKEN_OVER
    await second.type("echo still-$((6*7))\n")
    await second.until(rb"still-42\r?\n")


async def test_unknown_or_foreign_session_starts_a_new_shell(portal):
    _client, hello = await open_shell(portal, session="no-such-session")
    assert hello["resumed"] is False and hello["session"] != "no-such-session"


async def test_replay_buffer_is_bounded(portal, service):
    client, hello = await open_shell(portal)
    await client.type("head -c 300000 /dev/zero | tr '\\0' 'x'; echo; echo done-$((6*7))\n")
    await client.until(rb"done-42\r?\n", timeout=10)
    session = service.sessions[hello["session"]]
    assert session.produced > 300_000
    assert len(session.replay()) <= service.replay_limit
    await client.stream.close()
    await wait_until(lambda: session.stream is None)
    resumed, _ = await open_shell(portal, session=hello["session"])
    await resumed.until(rb"done-42")
    assert len(resumed.output) <= service.replay_limit


async def test_grace_expiry_kills_the_whole_shell_session(portal, service):
    service.grace = 0.2
    client, hello = await open_shell(portal)
    pid = await shell_pid(client)
    await client.type("sleep 300 & echo bg=$!\n")
    background = int((await client.until(rb"bg=(\d+)\r?\n")).group(1))
    await client.stream.close()
    await wait_until(lambda: hello["session"] not in service.sessions, timeout=10)
    await wait_until(lambda: not alive(pid) and not alive(background), timeout=10)


async def test_stopping_the_environment_ends_its_shells(portal, fake_runtime, service):
    client, _ = await open_shell(portal)
    pid = await shell_pid(client)
    fake_runtime.status[ENV_ID] = "stopping"
    exit_record = await client.control(timeout=10)
    assert exit_record["type"] == "exit" and exit_record["reason"] == "workspace_stopped"
    await wait_until(lambda: not alive(pid), timeout=10)
    await wait_until(lambda: service.sessions == {})


async def test_a_shell_killed_by_the_stop_reports_the_stop_not_its_exit(
    portal, fake_runtime, service
):
    # A sandboxed shell dies with its sandbox before the reaper looks: its exit is the stop.
    service.check_interval = 3600
    client, _ = await open_shell(portal)
    pid = await shell_pid(client)
    fake_runtime.status[ENV_ID] = "stopping"
    os.kill(pid, signal.SIGKILL)
    exit_record = await client.control(timeout=10)
    assert exit_record["reason"] == "workspace_stopped"


async def test_terminate_ends_the_shell_instead_of_detaching(portal, service):
    client, _ = await open_shell(portal)
    pid = await shell_pid(client)
    await client.send_control({"type": "terminate"})
    assert (await client.control())["reason"] == "terminated"
    await wait_until(lambda: not alive(pid), timeout=10)


async def test_no_credit_stops_reading_the_pty(portal, service):
    """A reader that grants no credit throttles the writer: the agent stops reading the PTY."""
    client, hello = await open_shell(portal)
    session = service.sessions[hello["session"]]
    await client.type("yes 0123456789abcdefghijklmnopqrstuvwxyz\n")
    await wait_until(lambda: session.produced > p.INITIAL_WINDOW // 2)
    await asyncio.sleep(0.5)
    stalled = session.produced
    await asyncio.sleep(0.5)
    assert session.produced == stalled, "the PTY is still read without credit"
    assert stalled <= p.INITIAL_WINDOW + p.SHELL_CHUNK

    # Reading grants credit back (in batches of half a window); the shell runs again.
    async def read_until_resumed() -> None:
        while session.produced == stalled:
            assert await client._pull(), "the stream ended"

    await asyncio.wait_for(read_until_resumed(), 10)
    assert session.produced > stalled
    await client.send_control({"type": "terminate"})


async def test_malformed_records_close_only_that_stream(portal, service):
    client, _ = await open_shell(portal)
    await client.stream.write(b"\x07\x00\x00\x00\x00")
    await client.stream.read_all()
    assert client.stream.close_code == p.CLOSE_PROTOCOL_ERROR
    _other, hello = await open_shell(portal)
    assert hello["type"] == "session"


async def test_local_runtime_shell_context(runtime):
    env = await runtime.create({"env": {"GREETING": "hi"}}, {}, {"AI_KEY": "k"})
    await wait_status(runtime, env["id"], "running")
    target = runtime.shell_context(env["id"])
    home, shell_env = Path(target.cwd), target.env
    assert home.is_dir() and home.name == "home" and target.sandbox is None
    assert shell_env["GREETING"] == "hi" and shell_env["AI_KEY"] == "k"
    assert shell_env["HOME"] == str(home)
    await runtime.stop(env["id"])
    with pytest.raises(RuntimeFailure) as failure:
        runtime.shell_context(env["id"])
    assert failure.value.code == CONFLICT
