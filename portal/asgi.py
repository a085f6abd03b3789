"""The one ASGI entry point: HTTP to Django, WebSockets and preview hosts to the relay.

Served by `python -m portal` (uvicorn with `--ws websockets-sansio`, the production
default, see docs/performance.md); any ASGI server can load `portal.asgi:application`
(daphne too). `relay.routing` says how requests are split between the portal and the
preview origins.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
django_asgi_app = get_asgi_application()

from relay.routing import asgi_application  # noqa: E402 - needs the apps loaded first

application = asgi_application(django_asgi_app)
