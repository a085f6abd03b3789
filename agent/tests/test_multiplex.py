"""The stream multiplexer: routing, refusal rules, flow control, handler failures."""

import asyncio
import struct

import pytest

from agent import protocol as p
from agent.multiplex import MAX_PENDING, Multiplexer


class Wire:
    """Records frames one multiplexer sends; optionally forwards them to a peer."""

    def __init__(self):
        self.frames: list[p.Frame] = []
        self.peer: Multiplexer | None = None

    async def send(self, data: bytes) -> None:
        self.frames.extend(map(p.decode_frame, p.split_message(data)))
        if self.peer is not None:
            await self.peer.feed(data)

    def of_type(self, frame_type):
        return [f for f in self.frames if f.type == frame_type]


async def echo(stream, request):
    while chunk := await stream.read():
        await stream.write(chunk)


async def settle():
    for _ in range(20):
        await asyncio.sleep(0)


def pair(handlers, window=p.INITIAL_WINDOW):
    to_portal, to_agent = Wire(), Wire()
    agent = Multiplexer(to_portal.send, handlers, window=window)
    portal = Multiplexer(to_agent.send, role="portal", window=window)
    to_portal.peer, to_agent.peer = portal, agent
    return agent, portal, to_portal, to_agent


async def test_echo_of_a_megabyte_respects_credit():
    agent, portal, to_portal, _ = pair({"shell": echo})
    stream = await portal.open_stream({"kind": "shell"})
    payload = bytes(range(256)) * 4096  # 1 MiB

    async def reader():
        received = bytearray()
        while len(received) < len(payload):
            received += await stream.read()
        return bytes(received)

    reading = asyncio.create_task(reader())
    await stream.write(payload)
    assert await asyncio.wait_for(reading, 5) == payload
    assert all(len(f.payload) <= p.MAX_PAYLOAD for f in to_portal.of_type(p.DATA))
    assert to_portal.of_type(p.CREDIT)  # the agent granted credit back as it read
    await stream.close()
    await settle()
    assert agent.streams == 0 and portal.streams == 0


async def test_writer_blocks_when_the_reader_does_not_read():
    gate = asyncio.Event()

    async def lazy(stream, request):
        await gate.wait()
        await stream.read_all()

    _, portal, _, to_agent = pair({"shell": lazy}, window=1000)
    stream = await portal.open_stream({"kind": "shell"})
    writing = asyncio.create_task(stream.write(b"x" * 5000))
    await settle()
    assert not writing.done()
    assert sum(len(f.payload) for f in to_agent.of_type(p.DATA)) == 1000
    gate.set()
    await asyncio.wait_for(writing, 2)
    await stream.close()


async def test_agent_refuses_even_and_duplicate_ids_and_unknown_kinds():
    started = asyncio.Event()

    async def park(stream, request):
        started.set()
        await stream.read_all()

    wire = Wire()
    agent = Multiplexer(wire.send, {"rpc": park})
    await agent.feed(p.open_frame(2, {"kind": "rpc"}))
    await agent.flush()
    assert wire.frames[-1] == p.Frame(p.CLOSE, 2, p.CLOSE_PROTOCOL_ERROR, wire.frames[-1].payload)
    await agent.feed(p.open_frame(1, {"kind": "rpc"}))
    await started.wait()
    await agent.feed(p.open_frame(1, {"kind": "rpc"}))
    await agent.flush()
    assert (wire.frames[-1].stream, wire.frames[-1].arg) == (1, p.CLOSE_PROTOCOL_ERROR)
    assert agent.streams == 0
    await agent.feed(p.open_frame(3, {"kind": "http"}))
    await agent.flush()
    assert (wire.frames[-1].stream, wire.frames[-1].arg) == (3, p.CLOSE_REFUSED)
    await agent.aclose()


async def test_portal_role_refuses_open_and_agent_cannot_open():
    wire = Wire()
    portal = Multiplexer(wire.send, role="portal")
    await portal.feed(p.open_frame(1, {"kind": "rpc"}))
    await portal.flush()
    assert wire.frames[-1].arg == p.CLOSE_PROTOCOL_ERROR
    with pytest.raises(RuntimeError):
        await Multiplexer(wire.send).open_stream({"kind": "rpc"})


async def test_unknown_stream_overdraw_and_malformed_frames():
    async def park(stream, request):
        await asyncio.sleep(10)

    wire = Wire()
    agent = Multiplexer(wire.send, {"rpc": park}, window=100)
    await agent.feed(p.data_frame(41, b"hi"))
    await agent.flush()
    assert (wire.frames[-1].type, wire.frames[-1].arg) == (p.CLOSE, p.CLOSE_UNKNOWN_STREAM)
    count = len(wire.frames)
    await agent.feed(p.data_frame(41, b"again"))  # already answered: stay quiet
    await agent.feed(p.credit_frame(77, 10))
    await agent.feed(p.close_frame(77))
    await agent.flush()
    assert len(wire.frames) == count

    await agent.feed(p.open_frame(5, {"kind": "rpc"}))
    await agent.feed(p.data_frame(5, b"x" * 100))
    await agent.feed(p.data_frame(5, b"x"))  # beyond the 100 bytes granted
    await agent.flush()
    assert (wire.frames[-1].stream, wire.frames[-1].arg) == (5, p.CLOSE_FLOW_CONTROL)
    assert agent.streams == 0

    await agent.feed(p.open_frame(7, {"kind": "rpc"}))
    await agent.feed(struct.pack("!BII", 99, 7, 0))  # unknown type on a live stream
    await agent.flush()
    assert (wire.frames[-1].stream, wire.frames[-1].arg) == (7, p.CLOSE_PROTOCOL_ERROR)
    with pytest.raises(p.ProtocolError):
        await agent.feed(b"\x02\x00")  # unreadable header: the tunnel must go
    await agent.aclose()


async def test_handler_failure_closes_with_internal_and_peer_close_ends_stream():
    async def boom(stream, request):
        raise ValueError("secret detail")

    seen = []

    async def reader(stream, request):
        seen.append(await stream.read())
        seen.append(await stream.read())

    wire = Wire()
    agent = Multiplexer(wire.send, {"rpc": boom, "shell": reader})
    await agent.feed(p.open_frame(1, {"kind": "rpc"}))
    await settle()
    assert (wire.frames[-1].stream, wire.frames[-1].arg) == (1, p.CLOSE_INTERNAL)
    assert b"secret" not in wire.frames[-1].payload

    await agent.feed(p.open_frame(3, {"kind": "shell"}))
    await agent.feed(p.data_frame(3, b"abc"))
    await agent.feed(p.close_frame(3, p.CLOSE_NORMAL))
    await settle()
    assert seen == [b"abc", b""]
    assert agent.streams == 0
    assert wire.frames[-1].stream == 1  # no CLOSE echoed for a stream the peer closed


async def test_too_many_streams_are_refused():
    async def park(stream, request):
        await stream.read_all()

    wire = Wire()
    agent = Multiplexer(wire.send, {"rpc": park}, max_streams=2)
    for stream_id in (1, 3, 5):
        await agent.feed(p.open_frame(stream_id, {"kind": "rpc"}))
        await agent.flush()
    assert (wire.frames[-1].stream, wire.frames[-1].arg) == (5, p.CLOSE_REFUSED)
    assert agent.streams == 2
    await agent.aclose()
    assert agent.streams == 0


async def test_the_first_frame_of_a_turn_leaves_at_once_and_the_rest_as_one_batch():
    messages: list[bytes] = []

    async def send(data: bytes) -> None:
        messages.append(data)

    portal = Multiplexer(send, role="portal")
    streams = [await portal.open_stream({"kind": "rpc"}) for _ in range(3)]
    assert len(messages) == 1  # OPEN 1 went at once, unbatched
    for stream in streams:
        await stream.write(b"hello")
    await portal.flush()
    assert len(messages) == 2 and messages[1][0] == p.BATCH
    frames = [p.decode_frame(f) for m in messages for f in p.split_message(m)]
    expected = [(p.OPEN, 1), (p.OPEN, 3), (p.OPEN, 5), (p.DATA, 1), (p.DATA, 3), (p.DATA, 5)]
    assert [(f.type, f.stream) for f in frames] == expected
    await asyncio.sleep(0)  # a new turn: the next frame leaves alone again
    await streams[0].write(b"alone")
    assert p.decode_frame(messages[2]) == p.Frame(p.DATA, 1, 0, b"alone")
    await portal.aclose()


async def test_batches_stay_within_max_batch_and_a_slow_transport_stops_writers():
    release = asyncio.Event()
    messages: list[bytes] = []

    async def slow_send(data: bytes) -> None:
        messages.append(data)
        await release.wait()

    portal = Multiplexer(slow_send, role="portal")

    async def write_lots() -> None:
        stream = await portal.open_stream({"kind": "rpc"})
        stream._on_credit(10 * 1024 * 1024)
        await stream.write(b"x" * (4 * 1024 * 1024))

    writer = asyncio.create_task(write_lots())
    await settle()
    # The transport took one message and blocks; queued frames are bounded.
    assert not writer.done() and len(messages) == 1
    assert portal._pending_size <= MAX_PENDING + p.MAX_FRAME
    release.set()
    await writer
    await portal.flush()
    assert all(len(m) <= p.MAX_BATCH for m in messages)
    frames = [p.decode_frame(f) for m in messages for f in p.split_message(m)]
    assert sum(len(f.payload) for f in frames if f.type == p.DATA) == 4 * 1024 * 1024
    await portal.aclose()


async def test_a_failed_transport_fails_every_later_send():
    async def broken(data: bytes) -> None:
        raise ConnectionError("gone")

    portal = Multiplexer(broken, role="portal")
    with pytest.raises(p.StreamClosed):
        await portal.open_stream({"kind": "rpc"})
    with pytest.raises(p.StreamClosed):
        await portal.send(p.data_frame(1, b"x"))
    await portal.flush()
    await portal.aclose()
