"""Public addresses of terminals and previews, derived from PORTAL_URL and PREVIEW_DOMAIN."""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

from django.conf import settings

PREVIEW_AUTH_PATH = "/__enclave__/auth"


def _portal() -> tuple[str, str]:
    parts = urlsplit(settings.PORTAL_URL)
    port = f":{parts.port}" if parts.port else ""
    return parts.scheme or "http", port


def terminal_url(ticket: str) -> str:
    """The WebSocket URL a browser opens with a shell ticket."""
    scheme, _ = _portal()
    base = settings.PORTAL_URL.split("://", 1)[-1].rstrip("/")
    ws_scheme = "wss" if scheme == "https" else "ws"
    return f"{ws_scheme}://{base}/ws/terminal/?{urlencode({'ticket': ticket})}"


def preview_host(workspace_id: str, port: int) -> str:
    """`<workspace>-<port>.<PREVIEW_DOMAIN>`: the preview's own origin (no portal cookies)."""
    return f"{workspace_id.lower()}-{port}.{settings.PREVIEW_DOMAIN}"


def preview_origin(workspace_id: str, port: int) -> str:
    scheme, portal_port = _portal()
    return f"{scheme}://{preview_host(workspace_id, port)}{portal_port}"


def preview_auth_url(workspace_id: str, port: int, ticket: str, next_path: str = "/") -> str:
    """Where the preview iframe starts: redeems the ticket, sets the cookie, redirects."""
    query = urlencode({"ticket": ticket, "next": next_path})
    return f"{preview_origin(workspace_id, port)}{PREVIEW_AUTH_PATH}?{query}"
