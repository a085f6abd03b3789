"""WebSocket routes of the portal (mounted by `portal.asgi`)."""

from django.urls import path

from relay.consumers.terminal import TerminalConsumer
from relay.consumers.tunnel import TunnelConsumer

websocket_urlpatterns = [
    path("agent/v1/tunnel", TunnelConsumer.as_asgi()),
    path("ws/terminal/", TerminalConsumer.as_asgi()),
]
