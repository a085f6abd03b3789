"""The client's IP address, for the firewall and the audit (DESIGN §7).

The socket's peer is the client, unless that peer is a trusted proxy
(`TRUSTED_PROXIES`, CIDRs): then `X-Forwarded-For` is read from the right, skipping
trusted proxies, and the first untrusted hop is the client. A forged header from an
untrusted peer is therefore ignored.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings


@lru_cache(maxsize=8)
def _trusted(entries: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(e.strip(), strict=False) for e in entries if e.strip())


def _is_trusted(ip: str) -> bool:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(
        address.version == n.version and address in n
        for n in _trusted(tuple(settings.TRUSTED_PROXIES))
    )


def resolve_client_ip(peer: str, forwarded_for: str | None) -> str:
    """The client address given the socket peer and the X-Forwarded-For header."""
    if not forwarded_for or not _is_trusted(peer):
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _is_trusted(hop):
            return hop
    return hops[0] if hops else peer


def request_client_ip(request) -> str:
    """Client IP of a Django/DRF request."""
    return resolve_client_ip(
        request.META.get("REMOTE_ADDR", ""), request.META.get("HTTP_X_FORWARDED_FOR")
    )


def scope_client_ip(scope) -> str:
    """Client IP of an ASGI scope (WebSocket or HTTP consumer)."""
    peer = (scope.get("client") or ("", 0))[0] or ""
    forwarded = None
    for name, value in scope.get("headers", []):
        if name == b"x-forwarded-for":
            forwarded = value.decode("latin-1")
            break
    return resolve_client_ip(peer, forwarded)
