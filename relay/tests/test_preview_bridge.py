"""The preview bridge: its script served on every preview host, its tag put into the app's
HTML documents (and nothing else), and into the preview's own error pages.

The placement rules are tested on `Injection` itself; what reaches the browser through a
preview (headers, lengths, the fast path of everything else) with the scripted agent of
`test_preview.py`.
"""

from __future__ import annotations

import asyncio
import gzip
import html
import re

import pytest
from asgiref.sync import sync_to_async

from agent import protocol as p
from clusters.services import cluster_create
from relay.consumers.preview import bridge
from relay.consumers.preview.pages import error_page
from relay.tests.test_preview import ScriptedAgent, _login, header, http
from security_center.choices import FirewallAction
from security_center.models import FirewallRule

transactional = pytest.mark.django_db(transaction=True)
"""Async tests reach the ORM from another thread: their rows must really be written."""

TAG = bridge.Injection().tag
DOCUMENT = [(b"sec-fetch-dest", b"iframe"), (b"accept", b"text/html,*/*;q=0.8")]


def inject(*chunks: bytes) -> bytes:
    """Feed `chunks` as they would arrive; every byte must come out, the tag once."""
    injection = bridge.Injection()
    out = b""
    for index, chunk in enumerate(chunks):
        sent = injection.feed(chunk, final=index == len(chunks) - 1)
        if sent is not None:
            out += sent
            injection = None  # the rest of the body streams as it comes
            out += b"".join(chunks[index + 1 :])
            break
    assert injection is None, "no decision by the end of the body"
    return out


# --- where the tag goes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        (
            b"<!doctype html><html><head><title>t</title></head><body>x</body></html>",
            b"<!doctype html><html><head>%s<title>t</title></head><body>x</body></html>",
        ),
        (
            b'<!DOCTYPE html>\n<HTML>\n<HEAD lang="en">\n<SCRIPT src=a.js></SCRIPT>',
            b'<!DOCTYPE html>\n<HTML>\n<HEAD lang="en">%s\n<SCRIPT src=a.js></SCRIPT>',
        ),
        (
            b"<!doctype html><html><body><header>h</header></body>",
            b"<!doctype html><html>%s<body><header>h</header></body>",
        ),
        (
            b"<!doctype html><script>boot()</script><head></head>",
            b"<!doctype html>%s<script>boot()</script><head></head>",
        ),
        (
            b"<!doctype html><html lang=en><title>t</title><p>x",
            b"<!doctype html>%s<html lang=en><title>t</title><p>x",
        ),
        (b"\xef\xbb\xbf<!DOCTYPE html><p>x", b"\xef\xbb\xbf<!DOCTYPE html>%s<p>x"),
        (
            b"<!doctype html><!-- <script>old</script><head> --><html><head><title>t",
            b"<!doctype html><!-- <script>old</script><head> --><html><head>%s<title>t",
        ),
        (b"<!doctype html><!--><head>", b"<!doctype html><!--><head>%s"),
        (b"<!doctype html><!-- <head> never closed", b"<!doctype html>%s<!-- <head> never closed"),
        (b"just some text", b"%sjust some text"),
        (b"", b"%s"),
    ],
    ids=[
        "head",
        "uppercase",
        "header-is-not-head",
        "script-first",
        "no-head",
        "bom",
        "comments",
        "empty-comment",
        "open-comment",
        "text",
        "empty",
    ],
)
def test_the_tag_goes_as_early_as_the_page_allows(page, expected):
    assert inject(page) == expected.replace(b"%s", TAG)


def test_a_head_split_across_chunks_anywhere_is_found():
    page = (
        b"<!doctype html><!-- not <head> nor <script> --><html>"
        b'<head data-x="1"><title>t</title></head><body>b</body>'
    )
    expected = page.replace(b'data-x="1">', b'data-x="1">' + TAG)
    for cut in range(len(page) + 1):
        assert inject(page[:cut], page[cut:]) == expected, cut
    assert inject(*(page[i : i + 1] for i in range(len(page)))) == expected


def test_the_place_is_decided_at_once_when_the_head_is_in_the_first_chunk():
    injection = bridge.Injection()
    out = injection.feed(b"<!doctype html><head><title>streaming", final=False)
    assert out == b"<!doctype html><head>" + TAG + b"<title>streaming"


def test_only_the_first_64_kib_are_searched():
    filler = b"<!doctype html>" + b"x" * bridge.SEARCH_LIMIT
    injection = bridge.Injection()
    assert injection.feed(filler[:1000], final=False) is None
    out = injection.feed(filler[1000:], final=False)  # not waiting for the rest
    assert out == b"<!doctype html>" + TAG + b"x" * bridge.SEARCH_LIMIT


def test_utf16_text_is_left_alone():
    page = "\ufeff<html><head></head></html>".encode("utf-16-le")
    injection = bridge.Injection()
    assert injection.feed(page, final=True) == page and not injection.injected


def test_the_tag_names_the_portal_origin_escaped(settings):
    settings.PORTAL_URL = 'https://portal.example.com:8443/sub/"path'
    tag = bridge.script_tag({"error": "x", "detail": 'say "<b>"', "retry": ""})
    assert tag == (
        f'<script src="/__enclave__/bridge.js?v={bridge.VERSION}" '
        'data-portal="https://portal.example.com:8443" data-error="x" '
        'data-detail="say &quot;&lt;b&gt;&quot;" data-retry></script>'
    )


# --- which answers are edited ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "headers", "expected"),
    [
        (200, [(b"content-type", b"text/html; charset=utf-8")], True),
        (200, [(b"content-type", b"TEXT/HTML")], True),
        (404, [(b"content-type", b"text/html")], True),
        (500, [(b"content-type", b"text/html")], True),
        (200, [(b"content-type", b"text/html"), (b"content-encoding", b"identity")], True),
        (200, [(b"content-type", b"text/html"), (b"content-encoding", b"gzip")], False),
        (200, [(b"content-type", b"text/html"), (b"content-encoding", b"br")], False),
        (206, [(b"content-type", b"text/html"), (b"content-range", b"bytes 0-9/99")], False),
        (200, [(b"content-type", b"text/html"), (b"content-range", b"bytes 0-9/99")], False),
        (204, [(b"content-type", b"text/html")], False),
        (304, [(b"content-type", b"text/html")], False),
        (302, [(b"content-type", b"text/html")], False),
        (200, [(b"content-type", b"text/html; charset=UTF-16")], False),
        (200, [(b"content-type", b"application/xhtml+xml")], False),
        (200, [(b"content-type", b"text/plain")], False),
        (200, [(b"content-type", b"application/javascript")], False),
        (200, [], False),
    ],
)
def test_only_identity_encoded_whole_html_documents_are_edited(status, headers, expected):
    assert bridge.injectable(status, headers) is expected


def _scope(method="GET", headers=()):
    return {"type": "http", "method": method, "headers": list(headers)}


@pytest.mark.parametrize(
    ("method", "headers", "expected"),
    [
        ("GET", [(b"sec-fetch-dest", b"document")], True),
        ("GET", [(b"sec-fetch-dest", b"iframe"), (b"accept", b"*/*")], True),
        ("POST", [(b"sec-fetch-dest", b"iframe")], True),  # a form posted in the preview
        ("GET", [(b"sec-fetch-dest", b"empty"), (b"accept", b"text/html")], False),  # fetch()
        ("GET", [(b"sec-fetch-dest", b"script")], False),
        ("GET", [(b"accept", b"text/html,application/xhtml+xml")], True),  # no Sec-Fetch-*
        ("GET", [(b"accept", b"*/*")], False),
        ("GET", [], False),
        ("HEAD", [(b"sec-fetch-dest", b"document")], False),
    ],
)
def test_a_document_request_is_a_browser_asking_for_a_page(method, headers, expected):
    assert bridge.document_request(_scope(method, headers)) is expected


def test_the_grown_headers_fix_the_length_and_weaken_the_etag():
    headers = [(b"content-length", b"10"), (b"etag", b'"abc"'), (b"x-app", b"1")]
    assert bridge.grown_headers(headers, 5) == [
        (b"content-length", b"15"),
        (b"etag", b'W/"abc"'),
        (b"x-app", b"1"),
    ]
    assert bridge.grown_headers([(b"etag", b'W/"x"')], 5) == [(b"etag", b'W/"x"')]


# --- the preview's own error pages -----------------------------------------------------------


def _tag_attributes(body: bytes) -> dict[str, str]:
    (tag,) = re.findall(rb"<script [^>]*></script>", body)
    pairs = re.findall(r'(data-[a-z]+)(?:="([^"]*)")?', tag.decode())
    return {name: html.unescape(value) for name, value in pairs}


def test_an_error_page_loads_the_bridge_with_its_code_and_retries_when_waiting_helps():
    status, headers, body = error_page("upstream_unavailable", 'Port 3000 "says" <no>.')
    assert body.startswith(b"<!doctype html><html lang=en><meta charset=utf-8><script src=")
    assert _tag_attributes(body) == {
        "data-portal": "http://portal.localhost:8000",
        "data-error": "upstream_unavailable",
        "data-status": "502",
        "data-detail": 'Port 3000 "says" <no>.',
        "data-retry": "",
    }
    assert status == 502 and dict(headers)[b"content-length"] == str(len(body)).encode()


@pytest.mark.parametrize("code", ["upstream_timeout", "cluster_unavailable"])
def test_pages_that_waiting_can_mend_retry(code):
    assert "data-retry" in _tag_attributes(error_page(code)[2])


@pytest.mark.parametrize(
    "code", ["workspace_not_running", "unauthenticated", "firewall_blocked", "not_found"]
)
def test_other_error_pages_report_but_do_not_retry(code):
    attributes = _tag_attributes(error_page(code)[2])
    assert attributes["data-error"] == code and "data-retry" not in attributes


def test_an_error_page_answering_a_post_does_not_reload_itself():
    assert "data-retry" not in _tag_attributes(error_page("upstream_timeout", retry=False)[2])


# --- the script on every preview host --------------------------------------------------------


@transactional
async def test_the_script_is_served_without_a_cookie_and_cached_by_version():
    status, headers, body = await http(f"{bridge.BRIDGE_PATH}?v={bridge.VERSION}")
    assert status == 200 and body == bridge.SOURCE
    assert header(headers, "content-type") == ["application/javascript; charset=utf-8"]
    assert header(headers, "cache-control") == ["public, max-age=31536000, immutable"]
    assert header(headers, "content-length") == [str(len(bridge.SOURCE))]
    (etag,) = header(headers, "etag")
    assert not header(headers, "set-cookie")

    status, headers, _ = await http(bridge.BRIDGE_PATH)
    assert status == 200 and header(headers, "cache-control") == ["no-cache"]
    revalidated = await http(bridge.BRIDGE_PATH, headers=[(b"if-none-match", f"W/{etag}".encode())])
    assert revalidated[0] == 304 and revalidated[2] == b""
    status, headers, body = await http(bridge.BRIDGE_PATH, method="HEAD")
    assert status == 200 and body == b"" and header(headers, "content-length")
    status, headers, _ = await http(bridge.BRIDGE_PATH, method="POST")
    assert status == 405 and header(headers, "x-enclave-error") == ["method_not_allowed"]


@transactional
async def test_the_script_is_served_on_any_preview_host_and_past_the_firewall():
    """The firewall's 403 page loads it too, so the portal learns why its preview is blank."""
    await sync_to_async(FirewallRule.objects.create)(
        action=FirewallAction.DENY, cidr="127.0.0.0/8", priority=1
    )
    status, _, body = await http(bridge.BRIDGE_PATH, host=b"nonsense.preview.portal.localhost")
    assert status == 200 and body == bridge.SOURCE
    status, _, page = await http("/")
    assert status == 403 and bridge.BRIDGE_PATH.encode() in page
    status, _, body = await http(bridge.BRIDGE_PATH)
    assert status == 200 and body == bridge.SOURCE


# --- through a preview -----------------------------------------------------------------------


@pytest.fixture
async def preview(member):
    """A scripted agent on a tunnel and a preview cookie: (agent, cookie header)."""
    cluster, token = await sync_to_async(cluster_create)(name="edge", actor=None)
    agent = ScriptedAgent(token)
    await agent.connect()
    cookie, _ = await _login(member, cluster)
    yield agent, (b"cookie", cookie.encode())
    await agent.ws.disconnect()


async def _through(preview, path="/", *, method="GET", request=DOCUMENT, records=()):
    """A request through the preview; the agent answers it with `records` (bytes, sent
    one DATA message each). Returns (status, headers, body, forwarded request headers)."""
    agent, cookie = preview
    task = asyncio.ensure_future(http(path, method=method, headers=[cookie, *request]))
    stream_id, opened = await agent.opened()
    for index, data in enumerate(records):
        await agent.send(stream_id, data, close=index == len(records) - 1)
    status, headers, body = await task
    return status, headers, body, {name.lower(): value for name, value in opened["headers"]}


def _head(status=200, headers=()):
    return p.encode_json_record(
        p.REC_HEAD, {"status": status, "headers": [list(h) for h in headers]}
    )


def _body(data: bytes) -> bytes:
    return p.encode_record(p.REC_BODY, data)


END = p.encode_record(p.REC_END)
PAGE = b"<!doctype html><html><head><title>app</title></head><body>hi</body></html>"


@transactional
async def test_an_html_page_gets_the_tag_with_its_length_fixed(preview):
    headers = [
        ("Content-Type", "text/html; charset=utf-8"),
        ("Content-Length", str(len(PAGE))),
        ("ETag", '"v1"'),
        ("Content-Security-Policy", "script-src 'self'"),
    ]
    request = [*DOCUMENT, (b"accept-encoding", b"gzip, br")]
    status, out, body, sent = await _through(
        preview, request=request, records=[_head(200, headers) + _body(PAGE) + END]
    )
    assert status == 200
    assert body == PAGE.replace(b"<head>", b"<head>" + TAG)
    assert header(out, "content-length") == [str(len(body))]
    assert header(out, "etag") == ['W/"v1"']
    assert "script-src 'self'" in header(out, "content-security-policy")  # the app's, kept
    assert sent["accept-encoding"] == "identity"


@transactional
async def test_a_page_whose_head_arrives_in_pieces_streams_with_the_tag(preview):
    records = [
        _head(200, [("Content-Type", "text/html")]) + _body(b"<!doctype html><html><HE"),
        _body(b'AD class="x"><title>slow</title></HEAD>'),
        _body(b"<body>rest</body>") + END,
    ]
    status, out, body, _ = await _through(preview, records=records)
    assert status == 200 and not header(out, "content-length")
    assert body == (
        b'<!doctype html><html><HEAD class="x">' + TAG + b"<title>slow</title></HEAD>"
        b"<body>rest</body>"
    )


@transactional
async def test_an_app_error_page_gets_the_tag_too(preview):
    page = b"<html><head></head><body>Not Found</body></html>"
    headers = [("Content-Type", "text/html"), ("Content-Length", str(len(page)))]
    status, _, body, _ = await _through(preview, records=[_head(404, headers) + _body(page) + END])
    assert status == 404 and body == page.replace(b"<head>", b"<head>" + TAG)


@transactional
@pytest.mark.parametrize(
    ("name", "status", "headers", "data"),
    [
        ("json", 200, [("Content-Type", "application/json")], b'{"<head>": 1}'),
        ("script", 200, [("Content-Type", "text/javascript")], b"document.write('<head>')"),
        ("gzip", 200, [("Content-Type", "text/html"), ("Content-Encoding", "gzip")], None),
        (
            "range",
            206,
            [("Content-Type", "text/html"), ("Content-Range", "bytes 0-9/74")],
            PAGE[:10],
        ),
        ("no-content", 204, [("Content-Type", "text/html")], b""),
    ],
)
async def test_other_answers_pass_untouched(preview, name, status, headers, data):
    data = gzip.compress(PAGE, mtime=0) if data is None else data
    headers = [*headers, ("Content-Length", str(len(data)))]
    got, out, body, _ = await _through(
        preview, records=[_head(status, headers) + _body(data) + END]
    )
    assert (got, body) == (status, data)
    assert header(out, "content-length") == [str(len(data))]


@transactional
async def test_a_page_fetched_by_a_script_or_asked_with_head_is_untouched(preview):
    headers = [("Content-Type", "text/html"), ("Content-Length", str(len(PAGE)))]
    fetch = [(b"sec-fetch-dest", b"empty"), (b"accept-encoding", b"gzip")]
    _, _, body, sent = await _through(
        preview, request=fetch, records=[_head(200, headers) + _body(PAGE) + END]
    )
    assert body == PAGE and sent["accept-encoding"] == "gzip"
    _, out, body, sent = await _through(preview, method="HEAD", records=[_head(200, headers) + END])
    assert body == b"" and header(out, "content-length") == [str(len(PAGE))]
    assert "accept-encoding" not in sent


@transactional
async def test_a_page_cut_before_the_tag_found_its_place_is_an_error_page(preview):
    records = [_head(200, [("Content-Type", "text/html")]) + _body(b"<!doctype html><ht")]
    status, out, body, _ = await _through(preview, records=records)
    assert status == 502 and header(out, "x-enclave-error") == ["upstream_protocol_error"]
    assert b"The app cut its response." in body


@transactional
async def test_an_upstream_error_page_retries_only_after_a_get(preview):
    failure = p.encode_json_record(
        p.REC_HEAD, {"status": 502, "headers": [], "error": "upstream_unavailable", "detail": "d"}
    )
    _, _, body, _ = await _through(preview, records=[failure])
    assert _tag_attributes(body)["data-retry"] == ""
    _, _, body, _ = await _through(preview, method="POST", records=[failure])
    assert "data-retry" not in _tag_attributes(body)
