"""The one ASGI entry point: HTTP to Django, WebSockets to the relay consumers.

Served by uvicorn (the production default, see docs/performance.md) or daphne:
`uvicorn portal.asgi:application --ws websockets-sansio --lifespan off`.

Every HTTP request and WebSocket whose Host is under `PREVIEW_DOMAIN` goes to the
preview origin's own app (`relay.consumers.preview`) before anything else: no Django
view, middleware or cookie of the portal ever serves a preview host.
"""

import gc
import logging
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
django_asgi_app = get_asgi_application()

from django.conf import settings  # noqa: E402
from django.core.exceptions import ImproperlyConfigured  # noqa: E402
from django.urls import get_resolver  # noqa: E402

from agent.affinity import AffinityError, format_cpus, pin_process  # noqa: E402

if settings.PORTAL_CPUS:
    # Only the server process is pinned (not manage.py commands): see agent.affinity.
    try:
        _cpus = pin_process(settings.PORTAL_CPUS)
    except AffinityError as exc:
        raise ImproperlyConfigured(f"PORTAL_CPUS: {exc}") from exc
    logging.getLogger("portal").info("serving on CPUs %s", format_cpus(_cpus))

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from relay.consumers import preview  # noqa: E402
from relay.routing import websocket_urlpatterns  # noqa: E402

portal_application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": URLRouter(websocket_urlpatterns),
    }
)


async def application(scope, receive, send):
    """Route by Host: preview origins to the preview app, the rest to the portal."""
    if scope["type"] in ("http", "websocket") and preview.is_preview_host(scope):
        return await preview.application(scope, receive, send)
    return await portal_application(scope, receive, send)


def _settle_heap() -> None:
    """Load the URL configuration (and with it every view module) now, then move
    everything loaded so far out of the garbage collector's reach (`gc.freeze`): a full
    collection then scans only what requests created, instead of pausing every socket of
    the process for tens of milliseconds to walk Django's modules again."""
    get_resolver().url_patterns  # noqa: B018 - imports the views
    gc.collect()
    gc.freeze()


_settle_heap()
