"""The pages a preview origin answers itself: errors instead of hangs, and the auth redirect.

Every page carries `X-Enclave-Error: <code>` (machine-readable), `Cache-Control:
no-store`, and the same `frame-ancestors` policy as forwarded responses, so it shows
inside the portal's iframe. Every error page loads the preview bridge (`bridge.py`) with
its code, status and sentence, which the bridge reports to the portal; a page whose code
is in `RETRYING` (and that answered a GET) also reloads itself after a backoff.
"""

from __future__ import annotations

import html
from typing import Final

from django.conf import settings

from relay.consumers.preview.bridge import Headers, portal_origin, script_tag

PAGES: Final[dict[str, tuple[int, str, str]]] = {
    "not_found": (404, "No such preview", "This address is not a workspace preview."),
    "workspace_not_found": (404, "No such workspace", "The workspace no longer exists."),
    "port_not_declared": (404, "No such port", "The workspace does not declare this port."),
    "unauthenticated": (
        401,
        "Open this preview from the portal",
        "This preview needs a fresh link: open it again from your workspace in the portal.",
    ),
    "ticket_invalid": (
        403,
        "This preview link has expired",
        "Preview links work once and for 30 seconds. Open the preview again from the portal.",
    ),
    "firewall_blocked": (
        403,
        "Blocked by the firewall",
        "Your network address is not allowed to open workspace previews.",
    ),
    "method_not_allowed": (405, "Not allowed", "This address only answers GET."),
    "workspace_not_running": (
        409,
        "The workspace is not running",
        "Start the workspace from the portal, then reload this page.",
    ),
    "upstream_unavailable": (
        502,
        "The app is not listening",
        "Nothing answers on this port in the workspace yet. Start your app, then reload.",
    ),
    "upstream_protocol_error": (
        502,
        "The app answered something that is not HTTP",
        "The app's answer could not be read.",
    ),
    "upgrade_refused": (502, "The app refused the WebSocket", "The app refused the upgrade."),
    "agent_outdated": (
        502,
        "Previews are not supported by this cluster's agent",
        "Ask a platform engineer to upgrade the agent of this workspace's cluster.",
    ),
    "cluster_unavailable": (
        503,
        "The workspace's cluster is unreachable",
        "The portal cannot reach the cluster's agent right now. Try again in a moment.",
    ),
    "upstream_timeout": (
        504,
        "The app did not answer in time",
        "The app took too long to answer. Reload to try again.",
    ),
}


RETRYING: Final = frozenset({"upstream_unavailable", "upstream_timeout", "cluster_unavailable"})
"""Codes that waiting can mend: their page reloads itself after 1 s, 2 s, 4 s … (at most
10 s). `workspace_not_running` is not one of them: the portal offers to start it."""


def frame_policy() -> tuple[bytes, bytes]:
    """Only the portal (and the preview itself) may frame a preview."""
    return (b"content-security-policy", f"frame-ancestors 'self' {portal_origin()}".encode())


def error_page(
    code: str, detail: str = "", status: int | None = None, *, retry: bool = True
) -> tuple[int, Headers, bytes]:
    """Status, headers and body of the page for an error code (unknown codes → 502).
    `retry=False` keeps a `RETRYING` page from reloading itself (it answered a POST)."""
    default_status, title, message = PAGES.get(code, (502, "Preview error", "Preview error."))
    status = status or default_status
    sentence = detail or message
    text = html.escape(sentence)
    portal = html.escape(settings.PORTAL_URL)
    data = {"error": code, "status": str(status), "detail": sentence}
    if retry and code in RETRYING:
        data["retry"] = ""
    body = (
        f"<!doctype html><html lang=en><meta charset=utf-8>{script_tag(data)}"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font:16px system-ui,sans-serif;margin:3rem auto;max-width:36rem;"
        "padding:0 1rem;color:#222}code{color:#666}</style>"
        f"<h1>{html.escape(title)}</h1><p>{text}</p>"
        f'<p><code>{status} {html.escape(code)}</code> · <a href="{portal}" target=_top>'
        "Back to the portal</a></p></html>"
    ).encode()
    headers = [
        (b"content-type", b"text/html; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        (b"x-enclave-error", code.encode()),
        (b"x-content-type-options", b"nosniff"),
        frame_policy(),
    ]
    return status, headers, body
