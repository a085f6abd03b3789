"""The preview origin: `<workspace>-<port>.<PREVIEW_DOMAIN>`, served by a raw ASGI app.

`portal.asgi` hands this app every HTTP request and WebSocket whose Host is under
`PREVIEW_DOMAIN`; nothing on such a host ever reaches a Django view, so a previewed app
can neither read portal cookies nor reach a portal page on its origin.

Promises:

* `/__enclave__/auth?ticket=…&next=/path` redeems a single-use preview ticket issued for
  exactly this workspace and port, opens a preview `ConnectionSession`, sets the
  host-only preview cookie (`sessions.cookie_header`) and redirects to `next` (a path on
  this host only; anything else redirects to `/`).
* `/__enclave__/bridge.js` is the preview bridge's script (`bridge.py`), the same public
  bytes on every preview host: it needs no cookie and is served before the firewall
  check, so the 401 and 403 pages can report themselves to the portal too.
* Every other request and every WebSocket upgrade needs the cookie of an open session
  for this very host (401 otherwise; an upgrade is refused before it is accepted) and
  must pass the firewall (403 `firewall_blocked`, recorded as a `FirewallEvent`).
* What passes is forwarded through the cluster's tunnel (`proxy.py`) without the
  portal's cookies or any `Authorization`, and the answer is streamed back; failures
  are pages with a status and a code (`pages.py`), never a hang.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, quote

from django.conf import settings

from core.client_ip import scope_client_ip
from relay.consumers.base import db_async
from relay.consumers.preview import bridge, proxy
from relay.consumers.preview.pages import error_page, frame_policy
from relay.consumers.preview.sessions import (
    PreviewSession,
    Registry,
    cookie_header,
    open_session_row,
    registry,
)
from workspaces.choices import TicketKind
from workspaces.links import PREVIEW_AUTH_PATH
from workspaces.services import ticket_redeem

_LABEL = re.compile(r"^([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)-([1-9][0-9]{0,4})$")
_UNSAFE_NEXT = re.compile(r"[\x00-\x20\\]")


def scope_host(scope: dict[str, Any]) -> str:
    """The Host of a request, lower-case, without port or trailing dot."""
    for name, value in scope.get("headers", ()):
        if name == b"host":
            host = value.decode("latin-1").strip().lower()
            if host.startswith("["):
                return host
            return host.rsplit(":", 1)[0].rstrip(".") if ":" in host else host.rstrip(".")
    return ""


def is_preview_host(scope: dict[str, Any]) -> bool:
    """Whether a request belongs to the preview origin (the domain itself included)."""
    host = scope_host(scope)
    domain = settings.PREVIEW_DOMAIN
    return host == domain or host.endswith("." + domain)


def parse_preview_host(host: str) -> tuple[str, int] | None:
    """`env-0123456789ab-3000.<PREVIEW_DOMAIN>` → ("env-0123456789ab", 3000), else None."""
    suffix = "." + settings.PREVIEW_DOMAIN
    if not host.endswith(suffix):
        return None
    match = _LABEL.match(host[: -len(suffix)])
    if match is None or int(match.group(2)) > 65535:
        return None
    return match.group(1), int(match.group(2))


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """ASGI entry of the preview origin (HTTP and WebSocket)."""
    target = parse_preview_host(scope_host(scope))
    if scope["type"] == "websocket":
        await _websocket(scope, receive, send, target)
    elif scope["type"] == "http":
        await _http(scope, receive, send, target)


async def _http(scope: dict[str, Any], receive: Any, send: Any, target: Any) -> None:
    if scope["path"] == bridge.BRIDGE_PATH:
        if scope["method"] in ("GET", "HEAD"):
            await proxy.send_page(send, *bridge.asset(scope))
        else:
            await proxy.send_page(send, *error_page("method_not_allowed"))
        return
    if target is None:
        await proxy.send_page(send, *error_page("not_found"))
        return
    environment_id, port = target
    reg = await registry()
    if scope["path"] == PREVIEW_AUTH_PATH:
        await _auth(scope, send, reg, environment_id, port)
        return
    session = await _session(scope, reg, environment_id, port)
    ip = scope_client_ip(scope)
    if not await reg.firewall_allows(ip, session.email if session else "", environment_id):
        await proxy.send_page(send, *error_page("firewall_blocked"))
        return
    if session is None:
        await proxy.send_page(send, *error_page("unauthenticated"))
        return
    await proxy.forward_http(scope, receive, send, session, ip)


async def _websocket(scope: dict[str, Any], receive: Any, send: Any, target: Any) -> None:
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    if target is None:
        await proxy.deny_websocket(scope, send, "not_found")
        return
    environment_id, port = target
    reg = await registry()
    session = await _session(scope, reg, environment_id, port)
    ip = scope_client_ip(scope)
    if not await reg.firewall_allows(ip, session.email if session else "", environment_id):
        await proxy.deny_websocket(scope, send, "firewall_blocked")
        return
    if session is None:
        await proxy.deny_websocket(scope, send, "unauthenticated")
        return
    await proxy.forward_websocket(scope, receive, send, session, ip)


async def _session(
    scope: dict[str, Any], reg: Registry, environment_id: str, port: int
) -> PreviewSession | None:
    value = proxy.cookies(scope).get(proxy.preview_cookie_name(), "")
    return await reg.resolve(value, environment_id, port)


@db_async
def _redeem(raw: str, environment_id: str, port: int):
    """The redeemed ticket (user and cluster loaded), or None: unknown, used, expired,
    for another workspace or port, or its member is no longer active."""
    ticket = ticket_redeem(
        raw=raw, kind=TicketKind.PREVIEW, environment_id=environment_id, port=port
    )
    return ticket if ticket is not None and ticket.user.is_active else None


@db_async
def _open(ticket, ip: str, channel: str) -> PreviewSession:
    return open_session_row(ticket=ticket, ip=ip, channel_name=channel)


def safe_next(raw: str) -> str:
    """A path on this host to continue to; absolute or protocol-relative URLs become `/`."""
    if not raw.startswith("/") or raw.startswith("//") or _UNSAFE_NEXT.search(raw):
        return "/"
    return quote(raw[:2000], safe="/?&=:@!$'()*+,;~-._#%")


async def _auth(
    scope: dict[str, Any], send: Any, reg: Registry, environment_id: str, port: int
) -> None:
    if scope["method"] not in ("GET", "HEAD"):
        await proxy.send_page(send, *error_page("method_not_allowed"))
        return
    params = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    raw = params.get("ticket", [""])[0]
    location = safe_next(params.get("next", ["/"])[0])
    ip = scope_client_ip(scope)
    if not await reg.firewall_allows(ip, "", environment_id):
        await proxy.send_page(send, *error_page("firewall_blocked"))
        return
    current = await _session(scope, reg, environment_id, port)
    ticket = await _redeem(raw, environment_id, port)
    if ticket is None:
        await proxy.send_page(send, *error_page("ticket_invalid"))
        return
    if current is not None and current.user_id == ticket.user_id:
        session = current  # the same member reopened the preview: one session continues
    else:
        if current is not None:
            await reg.end(current, "replaced")
        session = await _open(ticket, ip, reg.channel_name)
        reg.adopt(session)
    session.touch(requests=1)
    headers = [
        (b"location", location.encode("latin-1")),
        (b"set-cookie", cookie_header(reg.sign(session.id, environment_id, port))),
        (b"cache-control", b"no-store"),
        (b"referrer-policy", b"no-referrer"),
        (b"content-length", b"0"),
        frame_policy(),
    ]
    await proxy.send_page(send, 302, headers, b"")
