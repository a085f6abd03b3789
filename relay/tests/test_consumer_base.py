"""The lean consumer loop: Channels' consumer contract, without per-message tasks."""

from __future__ import annotations

import ast
import asyncio
import inspect
import textwrap

from channels.consumer import AsyncConsumer, get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from relay.consumers.base import LeanWebsocketConsumer


class Recorder(LeanWebsocketConsumer):
    """Accepts after a pause; echoes socket text; records channel-layer messages."""

    events: list[str]
    names: asyncio.Queue[str]

    async def connect(self) -> None:
        await Recorder.names.put(self.channel_name)
        await asyncio.sleep(0.2)  # a layer message sent meanwhile must wait
        Recorder.events.append("connected")
        await self.accept()

    async def receive(self, text_data=None, bytes_data=None) -> None:
        await self.send(text_data=f"echo:{text_data}")

    async def note_this(self, event) -> None:
        Recorder.events.append(f"layer:{event['value']}")
        await self.send(text_data=f"layer:{event['value']}")

    async def explode(self, event) -> None:
        raise RuntimeError("handler bug")

    async def disconnect(self, code) -> None:
        Recorder.events.append(f"disconnected:{code}")


async def _open() -> tuple[WebsocketCommunicator, str, asyncio.Future]:
    Recorder.events = []
    Recorder.names = asyncio.Queue()
    communicator = WebsocketCommunicator(Recorder.as_asgi(), "/ws/test/")
    connecting = asyncio.ensure_future(communicator.connect())
    name = await Recorder.names.get()
    return communicator, name, connecting


async def test_layer_messages_wait_for_connect_then_arrive_in_order():
    communicator, name, connecting = await _open()
    layer = get_channel_layer()
    await layer.send(name, {"type": "note.this", "value": 1})
    await layer.send(name, {"type": "note.this", "value": 2})
    assert (await connecting)[0]
    assert await communicator.receive_from() == "layer:1"
    assert await communicator.receive_from() == "layer:2"
    assert Recorder.events[:3] == ["connected", "layer:1", "layer:2"]
    await communicator.send_to(text_data="hi")
    assert await communicator.receive_from() == "echo:hi"
    await communicator.disconnect()
    assert Recorder.events[-1] == "disconnected:1000"


async def test_a_failing_layer_handler_closes_the_socket():
    communicator, name, connecting = await _open()
    assert (await connecting)[0]
    await get_channel_layer().send(name, {"type": "explode"})
    assert (await communicator.receive_output(5)) == {"type": "websocket.close", "code": 1011}
    await communicator.disconnect()


class Refuser(LeanWebsocketConsumer):
    async def connect(self) -> None:
        await self.close(code=4401)


async def test_a_refused_socket_never_reads_the_channel_layer():
    communicator = WebsocketCommunicator(Refuser.as_asgi(), "/ws/test/")
    assert await communicator.connect() == (False, 4401)
    await asyncio.sleep(0.05)
    assert not any(t.get_coro().__qualname__.endswith("_layer_loop") for t in asyncio.all_tasks())
    await communicator.disconnect()


# The lean loop replaces `AsyncConsumer.__call__` and `dispatch` and relies on the rest of
# Channels' WebSocket consumer. These tests fail when an upgrade of Channels changes what
# the replaced methods do or what the kept ones expect, so the loop is re-read then.


def _self_attributes_set_in(function) -> set[str]:
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    return {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.ctx, ast.Store)
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
    }


def test_the_replaced_call_sets_everything_channels_own_call_sets():
    theirs = _self_attributes_set_in(AsyncConsumer.__call__)
    ours = _self_attributes_set_in(LeanWebsocketConsumer.__call__)
    assert theirs == {"scope", "channel_layer", "channel_name", "channel_receive", "base_send"}
    assert theirs <= ours


def test_the_replaced_dispatch_routes_as_channels_does():
    assert "get_handler_name(message)" in inspect.getsource(AsyncConsumer.dispatch)
    assert get_handler_name({"type": "websocket.receive"}) == "websocket_receive"
    assert get_handler_name({"type": "note.this"}) == "note_this"


def test_the_kept_websocket_handlers_have_the_signatures_the_loop_calls():
    for name, parameters in {
        "websocket_connect": ["self", "message"],
        "websocket_receive": ["self", "message"],
        "websocket_disconnect": ["self", "message"],
        "accept": ["self", "subprotocol", "headers"],
        "close": ["self", "code", "reason"],
        "connect": ["self"],
        "receive": ["self", "text_data", "bytes_data"],
        "disconnect": ["self", "code"],
    }.items():
        method = getattr(AsyncWebsocketConsumer, name)
        assert inspect.iscoroutinefunction(method), name
        assert list(inspect.signature(method).parameters) == parameters, name
    # The loop ends when the disconnect handler raises StopConsumer, as Channels' does.
    assert "raise StopConsumer()" in inspect.getsource(AsyncWebsocketConsumer.websocket_disconnect)
