"""The client address of the request being served, for audit entries that do not name
one: bound by `core.middleware.AuditContextMiddleware` around every HTTP request, so an
admin's change made through the console or the API carries the admin's IP."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_request_ip: ContextVar[str | None] = ContextVar("audit_request_ip", default=None)


@contextmanager
def request_ip(ip: str | None) -> Iterator[None]:
    """Within the block, audit entries without an explicit ``ip`` get ``ip``."""
    token = _request_ip.set(ip)
    try:
        yield
    finally:
        _request_ip.reset(token)


def current_ip() -> str | None:
    return _request_ip.get()
