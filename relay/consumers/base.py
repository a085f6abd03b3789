"""A Channels WebSocket consumer with a lean message loop, for the relay's hot sockets.

Channels' own loop (`channels.utils.await_many_dispatch`) creates a task and runs an
`asyncio.wait` for every message, and `AsyncConsumer.dispatch` runs Django's
`close_old_connections` on the shared worker thread before every message. For a
terminal keystroke or a tunnel frame that is most of the work, and the thread hop is
shared by every socket of the process: at 100 typing terminals it queued keystrokes
behind each other.

`LeanWebsocketConsumer` keeps the consumer API (`connect`, `receive`, `disconnect`,
channel-layer handlers named after the message type, `StopConsumer`) and changes only
how messages reach it:

* socket messages are awaited and dispatched in order on the consumer's own task;
* channel-layer messages are read by a second task, started once `websocket.connect`
  has been handled and only if the socket was accepted (as with Channels, no layer
  message is handled before `connect` returns; a refused socket never reads the layer),
  and dispatched in order; a layer handler that fails is logged and closes the socket
  (1011) instead of killing the consumer silently;
* nothing runs `close_old_connections` per message: subclasses must reach the ORM only
  through `db_async` below, which manages connections itself.

`session_member` tells a page socket whether the session it was opened with still signs
its member in, so a long-lived socket ends with a sign-out or a suspension.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from importlib import import_module
from typing import Any

from asgiref.sync import sync_to_async
from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib import auth
from django.db import close_old_connections
from django.utils.crypto import constant_time_compare

logger = logging.getLogger(__name__)


def db_async(func):
    """Run an ORM function off the event loop, on a thread pool of its own.

    Each call gets a usable connection and leaves none half-open: old connections are
    closed before and after, as Django does around a request.
    """

    def call(*args, **kwargs):
        close_old_connections()
        try:
            return func(*args, **kwargs)
        finally:
            close_old_connections()

    return sync_to_async(call, thread_sensitive=False)


@db_async
def session_member(session_key: str | None):
    """The active member the session ``session_key`` still signs in, or None (signed out,
    suspended, or the password changed since). Only reads."""
    session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    user_id = session.get(auth.SESSION_KEY)
    model = auth.get_user_model()
    user = model.objects.filter(pk=user_id, is_active=True).first() if user_id else None
    session_hash = session.get(auth.HASH_SESSION_KEY) or ""
    if user is None or not constant_time_compare(session_hash, user.get_session_auth_hash()):
        return None
    return user


class LeanWebsocketConsumer(AsyncWebsocketConsumer):
    """`AsyncWebsocketConsumer` without per-message tasks, waits or thread hops."""

    async def __call__(self, scope, receive, send) -> None:
        self.scope = scope
        self.base_send = send
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        if self.channel_layer is not None:
            self.channel_name = await self.channel_layer.new_channel()
            self.channel_receive = functools.partial(self.channel_layer.receive, self.channel_name)
        self._accepted = False
        layer_task: asyncio.Task[None] | None = None
        try:
            while True:
                message = await receive()
                if message["type"] == "websocket.receive":
                    await self.websocket_receive(message)
                    continue
                await self.dispatch(message)
                if layer_task is None and self._accepted and self.channel_layer is not None:
                    layer_task = asyncio.create_task(self._layer_loop())
        except StopConsumer:
            pass
        finally:
            if layer_task is not None:
                layer_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopConsumer):
                    await layer_task

    async def accept(self, subprotocol=None, headers=None) -> None:
        self._accepted = True
        await super().accept(subprotocol, headers)

    async def dispatch(self, message: dict[str, Any]) -> None:
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def _layer_loop(self) -> None:
        while True:
            message = await self.channel_receive()
            try:
                await self.dispatch(message)
            except (asyncio.CancelledError, StopConsumer):
                raise
            except Exception:
                logger.exception(
                    "%s: channel-layer message %.50s failed",
                    type(self).__name__,
                    message.get("type"),
                )
                with contextlib.suppress(Exception):
                    await self.close(code=1011)
                return
