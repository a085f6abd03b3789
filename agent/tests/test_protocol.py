"""The wire codec: round trips, every malformed input → ProtocolError, flow-control windows."""

import asyncio
import contextlib
import json
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent import protocol as p


def test_frame_round_trip():
    for raw, expected in [
        (p.data_frame(7, b"abc"), p.Frame(p.DATA, 7, 0, b"abc")),
        (p.close_frame(9, p.CLOSE_TIMEOUT, "slow"), p.Frame(p.CLOSE, 9, p.CLOSE_TIMEOUT, b"slow")),
        (p.credit_frame(1, 4096), p.Frame(p.CREDIT, 1, 4096, b"")),
        (p.encode_frame(p.DATA, 2**32 - 1, 0, b"x" * p.MAX_PAYLOAD), None),
    ]:
        frame = p.decode_frame(raw)
        if expected is not None:
            assert frame == expected
        assert p.encode_frame(frame.type, frame.stream, frame.arg, frame.payload) == raw


def test_header_layout_is_big_endian():
    assert p.encode_frame(p.CREDIT, 0x01020304, 0x0A0B0C0D) == bytes(
        [4, 1, 2, 3, 4, 0x0A, 0x0B, 0x0C, 0x0D]
    )


def test_open_round_trip():
    request = p.rpc_request("environments.list", {"selector": {"BLUEPRINT_KEY": "web"}})
    frame = p.decode_frame(p.open_frame(3, request))
    assert frame.type == p.OPEN
    assert p.decode_open(frame) == request


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x02\x00\x00",
        struct.pack("!BII", 9, 1, 0),  # unknown type
        struct.pack("!BII", 0, 1, 0),
        struct.pack("!BII", p.DATA, 0, 0) + b"x",  # stream 0
        struct.pack("!BII", p.DATA, 1, 0) + b"x" * (p.MAX_PAYLOAD + 1),
        struct.pack("!BII", p.OPEN, 1, 0) + b"{not json",
        struct.pack("!BII", p.OPEN, 1, 0) + b"[1, 2]",
        struct.pack("!BII", p.OPEN, 1, 0) + b'{"kind": "ftp"}',
        struct.pack("!BII", p.OPEN, 1, 0) + b'{"kind": "rpc", "x": NaN}',
        struct.pack("!BII", p.OPEN, 1, 0) + b"\xff\xfe",
        struct.pack("!BII", p.OPEN, 1, 0) + b"[" * 60_000,
        struct.pack("!BII", p.OPEN, 1, 0) + b'{"kind": "rpc"}' + b" " * p.MAX_PAYLOAD,
        struct.pack("!BII", p.CREDIT, 1, 10) + b"x",  # CREDIT with payload
        struct.pack("!BII", p.CREDIT, 1, 0),  # zero credit
        struct.pack("!BII", p.CLOSE, 1, 0) + b"\xff",
        struct.pack("!BII", p.CLOSE, 1, 0) + b"r" * (p.MAX_CLOSE_REASON + 1),
    ],
)
def test_malformed_frames_raise_protocol_error(raw):
    with pytest.raises(p.ProtocolError) as info:
        p.decode_frame(raw)
    assert info.value.code == p.CLOSE_PROTOCOL_ERROR


def test_protocol_error_carries_stream_when_header_is_readable():
    with pytest.raises(p.ProtocolError) as info:
        p.decode_frame(struct.pack("!BII", 9, 5, 0))
    assert info.value.stream == 5
    with pytest.raises(p.ProtocolError) as info:
        p.decode_frame(b"\x01")
    assert info.value.stream is None


def test_non_bytes_and_bad_encodes_raise_protocol_error():
    with pytest.raises(p.ProtocolError):
        p.decode_frame("text")  # type: ignore[arg-type]
    with pytest.raises(p.ProtocolError):
        p.data_frame(1, b"x" * (p.MAX_PAYLOAD + 1))
    with pytest.raises(p.ProtocolError):
        p.open_frame(1, {"kind": "nope"})
    with pytest.raises(p.ProtocolError):
        p.open_frame(1, {"kind": "rpc", "bad": object()})
    with pytest.raises(p.ProtocolError):
        p.encode_frame(p.DATA, 0)
    with pytest.raises(p.ProtocolError):
        p.decode_open(p.decode_frame(p.data_frame(1, b"{}")))


def test_close_reason_is_truncated_to_fit():
    frame = p.decode_frame(p.close_frame(1, p.CLOSE_INTERNAL, "é" * 2000))
    assert len(frame.payload) <= p.MAX_CLOSE_REASON
    frame.payload.decode()


def test_messages_round_trip():
    hello = p.hello_message(
        version="1",
        runtime="local",
        capabilities=["rpc"],
        environments=2,
        isolation={"sandbox": "bubblewrap", "network": "private", "limits": "cgroup"},
    )
    assert hello["isolation"] == {"sandbox": "bubblewrap", "network": "private", "limits": "cgroup"}
    for obj in [
        hello,
        p.ping_message(12.5),
        p.pong_message(12.5),
        p.event_message(p.EVENT_UPDATED, {"id": "env-1"}),
    ]:
        assert p.decode_message(p.encode_message(obj)) == obj


@pytest.mark.parametrize(
    ("report", "known"),
    [
        (
            {"sandbox": "bubblewrap", "network": "private", "limits": "prlimit"},
            {"sandbox": "bubblewrap", "network": "private", "limits": "prlimit"},
        ),
        ({"sandbox": "none", "network": "shared", "limits": "none"}, None),
        ({"sandbox": "None", "network": "PRIVATE", "limits": "cgroup "}, {}),
        ({"sandbox": "bubblewrap" * 100, "network": 1, "limits": ["cgroup"]}, {}),
        ({"sandbox": "gvisor", "network": "private", "extra": "x"}, {"network": "private"}),
        (["sandbox", "bubblewrap"], {}),
        (None, {}),
        ("bubblewrap", {}),
    ],
)
def test_only_known_isolation_mechanisms_and_values_are_kept(report, known):
    assert p.known_isolation(report) == (report if known is None else known)


@pytest.mark.parametrize(
    "text", ["", "nope", "[]", "1", '"s"', "{}", '{"type": 1}', '{"type": "ping", "ts": Infinity}']
)
def test_malformed_messages_raise_protocol_error(text):
    with pytest.raises(p.ProtocolError):
        p.decode_message(text)


def test_message_encoding_checks():
    with pytest.raises(p.ProtocolError):
        p.decode_message(b'{"type": "ping"}')  # type: ignore[arg-type]
    with pytest.raises(p.ProtocolError):
        p.encode_message({"type": "unknown"})
    with pytest.raises(p.ProtocolError):
        p.event_message("environment.exploded", {})
    with pytest.raises(p.ProtocolError):
        p.decode_message('{"type": "ping", "pad": "' + "x" * p.MAX_MESSAGE + '"}')


def test_rpc_bodies():
    assert p.decode_rpc_response(p.encode_rpc_result({"a": [1]})) == {"a": [1]}
    with pytest.raises(p.RpcError) as info:
        p.decode_rpc_response(p.encode_rpc_error("not_found", "gone"))
    assert (info.value.code, info.value.message) == ("not_found", "gone")
    for body in [b"", b"[]", b'{"ok": 1}', b'{"ok": false}', b'{"ok": false, "error": {}}']:
        with pytest.raises(p.ProtocolError):
            p.decode_rpc_response(body)
    with pytest.raises(p.ProtocolError):
        p.rpc_request("")
    assert json.loads(p.encode_rpc_result(None)) == {"ok": True, "result": None}


def test_chunks():
    assert p.chunks(b"") == []
    parts = p.chunks(b"x" * (p.MAX_PAYLOAD * 2 + 1))
    assert [len(c) for c in parts] == [p.MAX_PAYLOAD, p.MAX_PAYLOAD, 1]


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_decode_frame_fuzz_only_raises_protocol_error(data):
    try:
        frame = p.decode_frame(data)
    except p.ProtocolError:
        return
    assert p.encode_frame(frame.type, frame.stream, frame.arg, frame.payload) == data


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 6), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.binary())
def test_decode_frame_fuzz_structured(kind, stream, arg, payload):
    with contextlib.suppress(p.ProtocolError):
        p.decode_frame(struct.pack("!BII", kind, stream, arg) + payload)


def test_batch_round_trip_and_single_frames_travel_bare():
    frames = [p.open_frame(1, {"kind": "rpc"}), p.data_frame(1, b"abc"), p.credit_frame(3, 9)]
    message = p.batch_message(frames)
    assert message[0] == p.BATCH and struct.unpack_from("!BII", message) == (p.BATCH, 0, 3)
    assert p.split_message(message) == frames
    assert p.batch_message(frames[:1]) == frames[0]
    assert p.split_message(frames[1]) == [frames[1]]


def _batch(*parts: bytes, count: int | None = None) -> bytes:
    head = struct.pack("!BII", p.BATCH, 0, len(parts) if count is None else count)
    return head + b"".join(parts)


def _item(frame: bytes, length: int | None = None) -> bytes:
    return struct.pack("!I", len(frame) if length is None else length) + frame


@pytest.mark.parametrize(
    "raw",
    [
        _batch(_item(p.data_frame(1, b"a")), count=2),  # fewer frames than announced
        _batch(_item(p.data_frame(1, b"a")), b"\x00", count=1),  # bytes after the last frame
        _batch(_item(p.data_frame(1, b"a"), 99)),  # length past the end
        _batch(_item(b"\x02\x00")),  # shorter than a header
        _batch(b"\x00\x00"),  # ends inside a length
        _batch(count=0),
        struct.pack("!BII", p.BATCH, 7, 1) + _item(p.data_frame(1, b"a")),  # stream not 0
        b"\x02" * (p.MAX_BATCH + 1),  # too large, batch or not
    ],
)
def test_malformed_batches_drop_the_tunnel(raw):
    with pytest.raises(p.ProtocolError) as error:
        p.split_message(raw)
    assert error.value.stream is None


def test_a_batch_inside_a_batch_is_unreadable():
    inner = p.batch_message([p.data_frame(1, b"a"), p.data_frame(1, b"b")])
    [frame] = p.split_message(_batch(_item(inner)))
    with pytest.raises(p.ProtocolError) as error:
        p.decode_frame(frame)
    assert error.value.stream is None


@settings(max_examples=400, deadline=None)
@given(st.lists(st.binary(min_size=0, max_size=40), max_size=6), st.integers(0, 8))
def test_split_message_fuzz_only_raises_protocol_error(parts, count):
    raw = _batch(*(_item(part) for part in parts), count=count)
    try:
        frames = p.split_message(raw)
    except p.ProtocolError:
        return
    assert frames == parts and count == len(parts)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=200), st.from_regex(r'\{"type": ?"[a-z]*".*\}', fullmatch=True)))
def test_decode_message_fuzz_only_raises_protocol_error(text):
    try:
        message = p.decode_message(text)
    except p.ProtocolError:
        return
    assert isinstance(message["type"], str)


def test_receive_window_grants_in_batches_and_detects_overdraw():
    window = p.ReceiveWindow(1000)
    window.received(400)
    assert window.delivered(400) == 0  # below half a window: no CREDIT yet
    window.received(600)
    with pytest.raises(p.ProtocolError) as info:
        window.received(1)  # all 1000 granted bytes used
    assert info.value.code == p.CLOSE_FLOW_CONTROL
    assert window.delivered(300) == 700
    window.received(700)
    with pytest.raises(p.ProtocolError):
        window.received(1)
    with pytest.raises(ValueError):
        window.delivered(10_000)


def test_send_window_consume_and_grant():
    window = p.SendWindow(100)
    window.consume(60)
    with pytest.raises(p.ProtocolError) as info:
        window.consume(41)
    assert info.value.code == p.CLOSE_FLOW_CONTROL
    window.grant(50)
    window.consume(90)
    assert window.available == 0
    with pytest.raises(p.ProtocolError):
        window.grant(0)
    window.grant(p.MAX_WINDOW)
    with pytest.raises(p.ProtocolError):
        window.grant(1)  # more outstanding credit than any honest peer grants


async def test_send_window_acquire_waits_for_credit():
    window = p.SendWindow(10)
    assert await window.acquire(25) == 10
    waiter = asyncio.create_task(window.acquire(25))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    window.grant(5)
    assert await waiter == 5
    blocked = asyncio.create_task(window.acquire(1))
    await asyncio.sleep(0)
    window.abort()
    with pytest.raises(p.StreamClosed):
        await blocked
