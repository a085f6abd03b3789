"""The preview bridge: a script in every HTML page a preview shows, through which the portal
page that frames the preview learns which page is shown and drives it (Back, Forward,
Reload, a path typed in its path bar). The script and its postMessage protocol are
`bridge.js`; this module serves it and puts its tag into pages.

Promises:

* `BRIDGE_PATH` answers GET and HEAD on every preview host with the same public bytes for
  everyone, before any cookie or firewall check (nothing of a workspace is in them, and
  the preview's own 401 and 403 pages load it too). The tag asks for `?v=<VERSION>`,
  which is cached for a year; any other request revalidates with the ETag.
* `Injection` puts the tag into a forwarded HTML document exactly once, as early as it
  can: right after `<head …>`, or before the first `<script` or `<body` if one of them
  comes first (comments are skipped), found in the first `SEARCH_LIMIT` bytes; failing
  that, after a leading
  byte-order mark and doctype (never before them: that would switch the page to quirks
  mode). Its `Content-Length` grows by the tag's length and a strong `ETag` becomes weak
  (the bytes are no longer the app's). The body is held only until that place is found,
  usually within the bytes that came with the response head.
* Only a browser's document requests (`document_request`) are candidates, and only
  answers that can be edited safely (`injectable`): `text/html`, not UTF-16/32, without a
  `Content-Encoding` or a `Content-Range`, status 200-299 but 204/205/206, or 400-599.
  Everything else (scripts, `fetch()`, HEAD, 304, ranges, WebSockets) goes through as it
  came, on the same path as before.
* A document request asks the app for `Accept-Encoding: identity`, so a page is not
  compressed out of the bridge's reach; an app that compresses it anyway has its answer
  passed through untouched (that page has no bridge).
* The app's own `Content-Security-Policy` is never changed: a policy allowing `'self'`
  scripts runs the bridge (it is served from the preview's own origin); a nonce- or
  hash-only policy blocks it, and that page then has no bridge.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from django.conf import settings

Headers = list[tuple[bytes, bytes]]

BRIDGE_PATH: Final = "/__enclave__/bridge.js"
SOURCE: Final = Path(__file__).with_name("bridge.js").read_bytes()
VERSION: Final = hashlib.sha256(SOURCE).hexdigest()[:16]
SEARCH_LIMIT: Final = 64 * 1024
"""How many bytes of a page are searched for `<head`, `<script` or `<body`."""

_ETAG: Final = f'"{VERSION}"'.encode()
_VERSIONED_QUERY: Final = f"v={VERSION}".encode()
_MAX_TAG: Final = 1100
"""Longest `<head …>` open tag recognised (the attributes are bounded in `_PLACE`)."""
_PLACE: Final = re.compile(
    rb"<!--|<(?:(head)(?=[\s/>])[^>]{0,1024}>|(?:script|body)(?=[\s/>]))", re.I
)
"""A comment's start, `<head …>` (group 1), `<script` or `<body`."""
_LEAD: Final = re.compile(rb"(?:\xef\xbb\xbf)?\s*(?:<!doctype[^>]{0,1024}>)?", re.I)
_WIDE: Final = re.compile(rb"charset\s*=\s*[\"']?\s*(?:utf-?16|utf-?32|ucs-?[24])", re.I)
_WIDE_BOMS: Final = (b"\xff\xfe", b"\xfe\xff")
_DOCUMENT_DESTS: Final = frozenset({b"document", b"iframe", b"frame"})
_BODILESS: Final = frozenset({204, 205, 206})


def portal_origin() -> str:
    """`scheme://host[:port]` of `PORTAL_URL`: the only origin the bridge talks to."""
    parts = urlsplit(settings.PORTAL_URL)
    return f"{parts.scheme}://{parts.netloc}"


def script_tag(data: dict[str, str] | None = None) -> str:
    """The `<script>` element that loads the bridge, `data` as extra `data-*` attributes
    (an empty value is written as a bare attribute)."""
    attributes = [f'data-portal="{html.escape(portal_origin())}"']
    for name, value in (data or {}).items():
        attributes.append(f'data-{name}="{html.escape(value)}"' if value else f"data-{name}")
    return f'<script src="{BRIDGE_PATH}?v={VERSION}" {" ".join(attributes)}></script>'


def asset(scope: dict[str, Any]) -> tuple[int, Headers, bytes]:
    """Status, headers and body answering a GET or HEAD of `BRIDGE_PATH`."""
    versioned = scope.get("query_string", b"") == _VERSIONED_QUERY
    headers: Headers = [
        (b"content-type", b"application/javascript; charset=utf-8"),
        (b"cache-control", b"public, max-age=31536000, immutable" if versioned else b"no-cache"),
        (b"etag", _ETAG),
        (b"x-content-type-options", b"nosniff"),
    ]
    if _matches(_request_header(scope, b"if-none-match")):
        return 304, headers, b""
    headers.append((b"content-length", str(len(SOURCE)).encode()))
    return 200, headers, b"" if scope["method"] == "HEAD" else SOURCE


def _request_header(scope: dict[str, Any], wanted: bytes) -> bytes | None:
    for name, value in scope.get("headers", ()):
        if name == wanted:
            return value
    return None


def _matches(if_none_match: bytes | None) -> bool:
    if if_none_match is None:
        return False
    tags = (tag.strip().removeprefix(b"W/") for tag in if_none_match.split(b","))
    return any(tag in (_ETAG, b"*") for tag in tags)


def document_request(scope: dict[str, Any]) -> bool:
    """Whether a browser asks for a page to show in a tab or frame: its `Sec-Fetch-Dest`
    says so, or (a browser that sends none) its `Accept` starts with `text/html`. A HEAD
    never is: it has no page to put the bridge in."""
    if scope["method"] == "HEAD":
        return False
    dest = accept = None
    for name, value in scope.get("headers", ()):
        if name == b"sec-fetch-dest":
            dest = value
        elif name == b"accept" and accept is None:
            accept = value
    if dest is not None:
        return dest.strip().lower() in _DOCUMENT_DESTS
    return accept is not None and accept.lstrip().lower().startswith(b"text/html")


def injectable(status: int, headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether an answer is an HTML document the tag can be put into without corrupting it."""
    if not ((200 <= status < 300 and status not in _BODILESS) or 400 <= status < 600):
        return False
    html_document = False
    for name, value in headers:
        if name == b"content-type":
            media = value.split(b";", 1)[0].strip().lower()
            if media != b"text/html" or _WIDE.search(value):
                return False
            html_document = True
        elif name == b"content-range" or (
            name == b"content-encoding" and value.strip().lower() not in (b"", b"identity")
        ):
            return False
    return html_document


def grown_headers(headers: Headers, added: int) -> Headers:
    """The headers of an answer whose body grew by `added` bytes."""
    result: Headers = []
    for name, value in headers:
        if name == b"content-length":
            value = str(int(value) + added).encode()
        elif name == b"etag" and not value.startswith(b"W/"):
            value = b"W/" + value
        result.append((name, value))
    return result


class Injection:
    """Where the tag goes in one HTML body, found in its first bytes as they arrive."""

    __slots__ = ("_comment", "_held", "_scanned", "injected", "tag")

    def __init__(self) -> None:
        self.tag = script_tag().encode("ascii", "xmlcharrefreplace")
        self.injected = False
        self._held = bytearray()
        self._scanned = 0  # a tag that starts before this would be complete already
        self._comment: int | None = None  # in a comment not closed yet: where `-->` may be

    def feed(self, data: bytes, final: bool) -> bytes | None:
        """The bytes to send now (what was held, with the tag in its place), or None while
        the place is still unknown (`data` is held). `final`: the body ends with `data`."""
        held = self._held
        held += data
        match = self._search(held)
        if match is not None:
            at = match.end() if match.group(1) else match.start()
        elif final or len(held) >= SEARCH_LIMIT:
            if held.startswith(_WIDE_BOMS):
                return bytes(held)  # UTF-16 text: ASCII bytes would corrupt it
            at = _LEAD.match(held).end()  # type: ignore[union-attr]  # it matches "" too
        else:
            return None
        self.injected = True
        return bytes(held[:at]) + self.tag + bytes(held[at:])

    def _search(self, held: bytearray) -> re.Match[bytes] | None:
        """The first `<head …>`, `<script` or `<body` outside comments, or None yet. A body
        that comes in many small pieces is not searched from its start again each time."""
        while True:
            if self._comment is not None:
                end = held.find(b"-->", self._comment)
                if end < 0:
                    self._comment = max(self._comment, len(held) - 2)
                    return None
                self._scanned, self._comment = end + 3, None
            match = _PLACE.search(held, self._scanned)
            if match is None:
                self._scanned = max(self._scanned, len(held) - _MAX_TAG)
                return None
            if match.group(0) != b"<!--":
                return match
            self._comment = match.end() - 2  # `<!-->` is a whole (empty) comment too
