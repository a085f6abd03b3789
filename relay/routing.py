"""The relay's ASGI routing: WebSocket routes and the preview origins (mounted by `portal.asgi`).

`asgi_application(http)` wraps the portal's HTTP application: every HTTP request and
WebSocket whose Host is under `PREVIEW_DOMAIN` goes to the preview origin's own app
before anything else, so no Django view, middleware or cookie of the portal ever serves
a preview host; other WebSockets go to the relay's consumers, other HTTP to `http`.
The lifespan protocol runs the process's housekeeping (`relay.housekeeping`).

Sockets of the portal's own pages (`session_socket`) authenticate with the session
cookie and refuse a handshake whose Origin is not one of `ALLOWED_HOSTS`, so another
site cannot open them with the builder's cookie (cross-site WebSocket hijacking). The
terminal and the tunnel authenticate with their own tickets and tokens.
"""

from __future__ import annotations

from channels.auth import AuthMiddlewareStack
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.routing import ProtocolTypeRouter, URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import path, re_path

from relay import housekeeping
from relay.consumers import preview
from relay.consumers.events import EventsConsumer
from relay.consumers.logs import LogsConsumer
from relay.consumers.terminal import TerminalConsumer
from relay.consumers.tunnel import TunnelConsumer


def session_socket(consumer):
    """`consumer` behind the Origin check and the session: `scope["user"]` is the member."""
    return AllowedHostsOriginValidator(AuthMiddlewareStack(consumer))


class UnknownSocket(AsyncWebsocketConsumer):
    """A WebSocket to a path no consumer serves: accepted only to be closed with 4404
    ("not found"), quietly — no traceback, no 500, nothing logged but the access line."""

    NOT_FOUND = 4404

    async def connect(self) -> None:
        await self.accept()
        await self.close(code=self.NOT_FOUND)


websocket_urlpatterns = [
    path("agent/v1/tunnel", TunnelConsumer.as_asgi()),
    path("ws/terminal/", TerminalConsumer.as_asgi()),
    path("ws/logs/", session_socket(LogsConsumer.as_asgi())),
    path("ws/events/", session_socket(EventsConsumer.as_asgi())),
    re_path(r"", UnknownSocket.as_asgi()),  # last
]


def asgi_application(http):
    """The whole ASGI application around the portal's HTTP application `http`."""
    portal = ProtocolTypeRouter({"http": http, "websocket": URLRouter(websocket_urlpatterns)})

    async def application(scope, receive, send):
        if scope["type"] == "lifespan":
            return await housekeeping.lifespan(scope, receive, send)
        if scope["type"] in ("http", "websocket") and preview.is_preview_host(scope):
            return await preview.application(scope, receive, send)
        return await portal(scope, receive, send)

    return application
