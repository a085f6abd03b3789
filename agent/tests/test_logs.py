"""Live logs: the tail, then output as the start command writes it; rotation, restarts,
long lines, deletion, refusals and credit."""

from __future__ import annotations

import asyncio
import os

import pytest

from agent import protocol as p
from agent.logs import LogService
from agent.multiplex import Multiplexer
from agent.runtimes import process as proc_util
from agent.runtimes.base import LogsEnded
from agent.runtimes.local import logtail
from agent.runtimes.local.logtail import LogFollowers, LogState, LogTail, rotate_log
from agent.tests.conftest import wait_status, wait_until

# Prints 300 numbered lines, then a line whenever a file `go` appears (and removes it).
ON_DEMAND = (
    "echo started-$$; for i in $(seq 1 300); do echo line-$i; done; "
    "while :; do if [ -e go ]; then mv go shown; cat shown; rm shown; fi; sleep 0.02; done"
)


class Wire:
    """Counts the DATA bytes one multiplexer sends, and forwards every message."""

    def __init__(self) -> None:
        self.peer: Multiplexer | None = None
        self.data_frames: list[int] = []

    async def send(self, message: bytes) -> None:
        for raw in p.split_message(message):
            frame = p.decode_frame(raw)
            if frame.type == p.DATA:
                self.data_frames.append(len(frame.payload))
        assert self.peer is not None
        await self.peer.feed(message)


class Follower:
    """The portal's side of one logs stream."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.parser = p.LogRecordParser()
        self.records: list[dict] = []
        self.lines: list[str] = []

    async def _pull(self) -> bool:
        chunk = await self.stream.read()
        if not chunk:
            return False
        for record in self.parser.feed(chunk):
            self.records.append(record)
            if record["type"] == "lines":
                self.lines += record["lines"]
        return True

    async def record(self, kind: str, timeout: float = 30.0) -> dict:
        async def find() -> dict:
            while True:
                for record in self.records:
                    if record["type"] == kind:
                        self.records.remove(record)
                        return record
                if not await self._pull():
                    raise AssertionError(f"stream ended before a {kind} record: {self.records}")

        return await asyncio.wait_for(find(), timeout)

    async def line(self, wanted: str, timeout: float = 30.0) -> int:
        """Index of the first line equal to ``wanted``, waiting for it."""

        async def find() -> int:
            while wanted not in self.lines:
                if not await self._pull():
                    raise AssertionError(f"ended before {wanted!r}: {self.lines[-5:]}")
            return self.lines.index(wanted)

        return await asyncio.wait_for(find(), timeout)

    async def tail(self) -> list[str]:
        """The lines before ``live``."""
        await self.record("live")
        tail, self.lines = self.lines, []
        return tail


@pytest.fixture
def wire(runtime):
    return Wire()


@pytest.fixture
def portal(runtime, wire):
    """The portal's multiplexer wired in-memory to an agent serving ``logs`` streams."""
    agent = Multiplexer(wire.send, {"logs": LogService(runtime).handle_stream})
    portal = Multiplexer(agent.feed, role="portal")
    wire.peer = portal
    return portal


async def follow(portal, env_id: str, **kwargs) -> Follower:
    return Follower(await portal.open_stream(p.logs_open_request(env_id, **kwargs)))


async def running(runtime, start_command: str) -> str:
    env = await runtime.create({"start_command": start_command}, {})
    await wait_status(runtime, env["id"], "running", timeout=30)
    return env["id"]


def trigger(runtime, env_id: str, text: str) -> None:
    """Make the ON_DEMAND workspace print ``text``."""
    home = runtime.root / env_id / "home"
    (home / "go.tmp").write_text(text)
    (home / "go.tmp").rename(home / "go")


async def log_has(runtime, env_id: str, needle: str) -> bool:
    return any(needle in line for line in await runtime.logs(env_id, 5000))


# --- the stream ------------------------------------------------------------------------


async def test_tail_then_new_lines_as_they_are_written(runtime, portal):
    env_id = await running(runtime, ON_DEMAND)
    await wait_until(lambda: log_has(runtime, env_id, "line-300"), timeout=30)
    logs = await follow(portal, env_id, tail=50)
    assert await logs.tail() == [f"line-{i}" for i in range(251, 301)]
    trigger(runtime, env_id, "first live line\n")
    await logs.line("first live line")
    trigger(runtime, env_id, "second\nand third\n")
    await logs.line("and third")
    assert logs.lines == ["first live line", "second", "and third"]


async def test_the_default_tail_is_200_lines(runtime, portal):
    env_id = await running(runtime, ON_DEMAND)
    await wait_until(lambda: log_has(runtime, env_id, "line-300"), timeout=30)
    tail = await (await follow(portal, env_id)).tail()
    assert len(tail) == p.DEFAULT_LOG_TAIL and tail[-1] == "line-300"


async def test_a_burst_of_lines_is_one_data_frame(runtime, portal, wire):
    env_id = await running(runtime, ON_DEMAND)
    logs = await follow(portal, env_id, tail=1)
    await logs.tail()
    frames_before = len(wire.data_frames)
    trigger(runtime, env_id, "".join(f"burst-{i}\n" for i in range(1, 101)))
    await logs.line("burst-100")
    assert logs.lines == [f"burst-{i}" for i in range(1, 101)]
    assert len(wire.data_frames) == frames_before + 1


async def test_a_restarted_start_command_is_followed_on_the_same_stream(runtime, portal):
    env_id = await running(runtime, ON_DEMAND)
    logs = await follow(portal, env_id, tail=1)
    await logs.tail()
    await runtime.restart(env_id)
    await wait_status(runtime, env_id, "running", timeout=30)
    await logs.line("line-300")  # the second run's
    assert any(line.startswith("started-") for line in logs.lines)
    trigger(runtime, env_id, "after the restart\n")
    await logs.line("after the restart")


async def test_long_lines_are_clipped_and_the_next_line_is_intact(runtime, portal):
    env_id = await running(runtime, ON_DEMAND)
    logs = await follow(portal, env_id, tail=1)
    await logs.tail()
    trigger(runtime, env_id, "é" * 10_000 + "\nshort\n")  # 20 000 bytes of UTF-8
    await logs.line("short")
    clipped = logs.lines[0]
    assert clipped == "é" * (p.MAX_LOG_LINE // 2) + p.LOG_LINE_CUT
    assert logs.lines[1:] == ["short"]


async def test_deleting_the_environment_ends_the_stream(runtime, portal):
    env_id = await running(runtime, ON_DEMAND)
    logs = await follow(portal, env_id, tail=5)
    await logs.tail()
    await runtime.delete(env_id)
    end = await logs.record("end")
    assert end == {"type": "end", "code": p.LOG_END_DELETED, "detail": "the workspace was deleted"}
    assert await logs.stream.read() == b""
    assert logs.stream.close_code == p.CLOSE_NORMAL
    assert runtime._log_followers.count(env_id) == 0


async def test_unknown_environment_and_bad_tail_are_refused(runtime, portal):
    missing = await follow(portal, "env-ffffffffffff")
    error = await missing.record("error")
    assert error["code"] == "not_found"
    assert await missing.stream.read() == b""
    assert missing.stream.close_code == p.CLOSE_REFUSED

    env_id = await running(runtime, "sleep 60")
    bad = await portal.open_stream({"kind": "logs", "environment": env_id, "tail": 0})
    assert await bad.read() == b""
    assert bad.close_code == p.CLOSE_PROTOCOL_ERROR
    with pytest.raises(p.ProtocolError):
        p.logs_open_request(env_id, tail=p.MAX_LOG_TAIL + 1)


async def test_closing_the_stream_stops_the_follower(runtime, portal):
    env_id = await running(runtime, ON_DEMAND)
    logs = await follow(portal, env_id, tail=1)
    await logs.tail()
    assert runtime._log_followers.count(env_id) == 1
    await logs.stream.close()
    await wait_until(lambda: runtime._log_followers.count(env_id) == 0, timeout=30)


async def test_a_reader_without_credit_holds_the_agent_back(runtime, portal, wire):
    # 6 000 lines of 100 bytes: more than two windows, less than a log rotation.
    env_id = await running(runtime, ON_DEMAND)
    logs = await follow(portal, env_id, tail=1)
    await logs.tail()
    sent_before = sum(wire.data_frames)
    # Written in one go, as a process's single write (`cat` would write in pieces, and a
    # piece that ends inside a line and stalls on a busy host is delivered as a line).
    log = os.open(runtime.root / env_id / "logs" / proc_util.LOG_NAME, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(log, "".join(f"{i:06d}{'x' * 93}\n" for i in range(6000)).encode())
    finally:
        os.close(log)
    await wait_until(lambda: sum(wire.data_frames) - sent_before >= p.INITIAL_WINDOW // 2, 30)
    for _ in range(50):  # the agent had every chance to send more
        await asyncio.sleep(0.01)
    assert sum(wire.data_frames) - sent_before <= p.INITIAL_WINDOW
    assert all(size <= p.MAX_PAYLOAD for size in wire.data_frames)
    await logs.line(f"005999{'x' * 93}")
    assert logs.lines == [f"{i:06d}{'x' * 93}" for i in range(6000)]


async def test_an_unfinished_line_is_delivered_once_the_output_pauses(runtime, portal):
    env_id = await running(runtime, ON_DEMAND)
    logs = await follow(portal, env_id, tail=1)
    await logs.tail()
    trigger(runtime, env_id, "Continue? [y/N] ")
    await logs.line("Continue? [y/N] ")


# --- the follower and the file ---------------------------------------------------------


@pytest.fixture
def log_dir(tmp_path):
    path = tmp_path / "logs"
    path.mkdir()
    return path


def append(log_dir, text: str) -> None:
    with open(log_dir / proc_util.LOG_NAME, "a") as log:
        log.write(text)


def test_the_tail_spans_the_rotated_file_and_keeps_an_unfinished_line(log_dir):
    append(log_dir, "".join(f"old {i}\n" for i in range(10)))
    rotate_log(log_dir, None, limit=10)
    append(log_dir, "new 1\nnew 2\nunfini")
    reader = LogTail(log_dir, LogState())
    assert reader.read_tail(4) == ["old 8", "old 9", "new 1", "new 2"]
    append(log_dir, "shed\r\n")
    assert reader.read_new() == ["unfinished"]
    assert reader.read_new() == []


def test_the_tail_is_bounded_in_bytes(log_dir):
    line = "y" * (p.MAX_LOG_LINE - 1)
    append(log_dir, f"{line}\n" * (p.MAX_LOG_TAIL_BYTES // p.MAX_LOG_LINE + 10))
    tail = LogTail(log_dir, LogState()).read_tail(p.MAX_LOG_TAIL)
    assert len(tail) == p.MAX_LOG_TAIL_BYTES // len(line)
    assert set(tail) == {line}


def test_rotation_between_reads_loses_nothing(log_dir):
    state = LogState()
    reader = LogTail(log_dir, state)
    assert reader.read_tail(10) == []
    append(log_dir, "a\nb\n")
    assert reader.read_new() == ["a", "b"]
    append(log_dir, "c\nd\n")
    assert rotate_log(log_dir, state, limit=1)
    append(log_dir, "e\nlonger than what was read before the rotation\n")
    assert reader.read_new() == ["c", "d", "e", "longer than what was read before the rotation"]
    append(log_dir, "f\n")
    assert reader.read_new() == ["f"]


def test_a_rotated_file_larger_than_one_read_is_read_in_turns(log_dir):
    state = LogState()
    reader = LogTail(log_dir, state)
    reader.read_tail(1)
    append(log_dir, "".join(f"{i:04d}\n" for i in range(1000)))  # 5 000 bytes, never read
    rotate_log(log_dir, state, limit=1)
    append(log_dir, "after\n")
    lines: list[str] = []
    for _ in range(10):
        lines += reader.read_new(limit=2000)
    assert lines == [f"{i:04d}" for i in range(1000)] + ["after"]


def test_two_rotations_behind_lose_only_the_first(log_dir):
    state = LogState()
    reader = LogTail(log_dir, state)
    reader.read_tail(1)
    append(log_dir, "lost\n")
    rotate_log(log_dir, state, limit=1)
    append(log_dir, "kept\n")
    rotate_log(log_dir, state, limit=1)
    append(log_dir, "new\n")
    assert reader.read_new() == ["kept", "new"]


def test_a_truncated_log_is_read_again_from_its_start(log_dir):
    reader = LogTail(log_dir, LogState())
    append(log_dir, "first run\n")
    assert reader.read_new() == ["first run"]
    os.truncate(log_dir / proc_util.LOG_NAME, 0)
    append(log_dir, "second\n")
    assert reader.read_new() == ["second"]


def test_a_long_line_is_clipped_once_across_reads(log_dir):
    reader = LogTail(log_dir, LogState())
    append(log_dir, "z" * 5000)
    assert reader.read_new() == []
    append(log_dir, "z" * 5000)
    assert reader.read_new() == ["z" * p.MAX_LOG_LINE + p.LOG_LINE_CUT]
    append(log_dir, "z" * 5000 + "\nnext\n")
    assert reader.read_new() == ["next"]


def test_records_pack_lines_and_the_parser_rejects_garbage():
    lines = [f"{i:05d}" + "w" * 1000 for i in range(200)]
    data = p.log_lines_records(lines)
    records = data.split(b"\n")[:-1]
    assert len(records) > 1 and all(len(r) + 1 <= p.MAX_LOG_RECORD for r in records)
    parser = p.LogRecordParser()
    parsed = parser.feed(data[:1000]) + parser.feed(data[1000:])
    assert [line for r in parsed for line in r["lines"]] == lines
    assert p.log_lines_records([]) == b""
    for garbage in (b"not json\n", b'{"type":"nope"}\n', b'{"type":"lines","lines":[1]}\n'):
        with pytest.raises(p.ProtocolError):
            p.LogRecordParser().feed(garbage)
    with pytest.raises(p.ProtocolError):
        p.LogRecordParser().feed(b"x" * p.MAX_LOG_RECORD)


async def test_without_inotify_followers_poll(log_dir, monkeypatch):
    monkeypatch.setattr(logtail, "_inotify", lambda: None)
    followers = LogFollowers(poll_interval=0.05)
    follower = followers.open("env-0123456789ab", log_dir)
    assert follower.polling
    assert await follower.tail(5) == []
    append(log_dir, "polled\n")
    assert await asyncio.wait_for(follower.next(), 30) == ["polled"]
    followers.close()
    with pytest.raises(LogsEnded) as ended:
        await follower.next()
    assert ended.value.code == p.LOG_END_SHUTDOWN


async def test_one_watch_serves_every_follower_of_a_directory(log_dir):
    followers = LogFollowers()
    first = followers.open("env-0123456789ab", log_dir)
    second = followers.open("env-0123456789ab", log_dir)
    if first.polling:
        pytest.skip("no inotify on this kernel")
    watcher = followers._watcher
    assert len(watcher._watches) == 1
    await first.tail(1)
    await second.tail(1)
    append(log_dir, "to both\n")
    assert await asyncio.wait_for(first.next(), 30) == ["to both"]
    assert await asyncio.wait_for(second.next(), 30) == ["to both"]
    first.close()
    assert len(watcher._watches) == 1
    second.close()
    assert watcher._watches == {} and followers.count("env-0123456789ab") == 0
    followers.close()
