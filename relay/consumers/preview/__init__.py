"""The preview origin (`<workspace>-<port>.<PREVIEW_DOMAIN>`): an ASGI app beside Django.

`application` serves HTTP and WebSocket requests of preview hosts; `is_preview_host`
tells `portal.asgi` which requests those are. See `app.py` for the promises.
"""

from relay.consumers.preview.app import application, is_preview_host, parse_preview_host

__all__ = ["application", "is_preview_host", "parse_preview_host"]
