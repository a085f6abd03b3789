"""The relay's whole ASGI application around Django, as `portal.asgi` builds it."""

from django.core.asgi import get_asgi_application

from relay.routing import asgi_application

application = asgi_application(get_asgi_application())
