"""Single sign-on against a real OpenID provider (`oidc-provider`, tests/idp/provider.mjs).

A real portal (the production launcher) whose OIDC settings point at the provider on
loopback; headless Chromium signs members in through the provider's own login form. The
API half exchanges real authorisation codes for JWT access tokens and calls the portal
with them. Pages are saved as `var/test-artifacts/sso-*.png`.
"""

from __future__ import annotations

import json
import secrets
import time
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
import requests
from playwright.sync_api import BrowserContext, Page, Route, expect, sync_playwright

from tests import browser
from tests.harness import Portal, manage, portal_db_rows, wait_until
from tests.idp import IdentityProvider, signing_key_file

pytestmark = [pytest.mark.integration, pytest.mark.browser]

INVITED = ["ada@example.com", "boss@example.com", "eve@example.com"]
_INVITE = (
    "from accounts.services import member_invite\n"
    "for email in {emails!r}:\n"
    "    member_invite(email=email, actor=None)\n"
)


@pytest.fixture(scope="module")
def sso(tmp_path_factory):
    """A portal and its provider; ada, boss and eve are invited (pending), mallory not."""
    var_dir = tmp_path_factory.mktemp("sso") / "portal"
    var_dir.mkdir()
    portal = Portal(var_dir=var_dir)
    key_file, key = signing_key_file(var_dir.parent / "idp-key.json")
    idp = IdentityProvider(
        log_dir=var_dir,
        redirect_uri=f"{portal.url}/oidc/callback/",
        logout_uri=f"{portal.url}/login/",
        signing_key=key_file,
    ).start()
    portal.env_extra.update(idp.portal_env())
    try:
        portal.prepare()
        manage(var_dir, "shell", "-c", _INVITE.format(emails=INVITED), env=portal.env)
        portal.start()
        yield portal, idp, key
    finally:
        portal.stop()
        idp.stop()


@pytest.fixture(scope="module")
def chromium():
    with sync_playwright() as playwright:
        launched = browser.launch(playwright)
        yield launched
        launched.close()


@pytest.fixture
def page(chromium):
    context = browser.new_context(chromium)
    yield context.new_page()
    context.close()


def _member(portal: Portal, email: str) -> tuple | None:
    rows = portal_db_rows(
        portal, "SELECT role, status, is_active FROM accounts_user WHERE email = ?", (email,)
    )
    return rows[0] if rows else None


def _sign_in_at_provider_form(page: Page, portal: Portal, email: str) -> None:
    """From the sign-in page to the provider's filled-in login form (not yet submitted)."""
    page.goto(f"{portal.url}/login/")
    page.get_by_role("link", name="Sign in with your organisation account").click()
    page.get_by_placeholder("Enter any login").fill(email)
    page.get_by_placeholder("and password").fill("any password")


def _sign_in_at_provider(page: Page, portal: Portal, email: str, shoot: str = "") -> None:
    page.goto(f"{portal.url}/")
    button = page.get_by_role("link", name="Sign in with your organisation account")
    expect(button).to_be_visible()
    if shoot:
        browser.screenshot(page, "sso-login")
    button.click()
    page.get_by_placeholder("Enter any login").fill(email)
    page.get_by_placeholder("and password").fill("any password")
    if shoot:
        browser.screenshot(page, "sso-provider-form")
    page.get_by_role("button", name="Sign-in").click()


_OIDC_STATES = (
    "import json\n"
    "from importlib import import_module\n"
    "from django.conf import settings\n"
    "store = import_module(settings.SESSION_ENGINE).SessionStore(session_key={key!r})\n"
    "print('STATES=' + json.dumps(store.load().get('oidc_states', {{}})))\n"
)


def _started_sign_in(portal: Portal, context: BrowserContext) -> tuple[str, dict]:
    """The one sign-in this browser has started: its state and what the portal keeps for it
    in the browser's session (`nonce`, PKCE `code_verifier`) until the callback uses it."""
    (key,) = [
        c["value"] for c in context.cookies(portal.url) if c["name"] == "__Host-enclave_session"
    ]
    output = manage(portal.var_dir, "shell", "-c", _OIDC_STATES.format(key=key), env=portal.env)
    line = next(x for x in output.splitlines() if x.startswith("STATES="))
    ((state, started),) = json.loads(line.removeprefix("STATES=")).items()
    return state, started


def _is_callback(portal: Portal):
    return lambda url: url.startswith(f"{portal.url}/oidc/callback/?")


def _query(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


def _expect_refusal(page: Page, status: int | None) -> None:
    """The portal's page for a sign-in it could not check, with a way back."""
    assert status == 400
    expect(page.get_by_role("heading", name="Sign-in did not complete")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("could not be checked")
    expect(page.get_by_role("link", name="Back to sign-in")).to_be_visible()


def _expect_signed_out(portal: Portal, page: Page) -> None:
    """This browser has no member session: the API refuses it, the dashboard sends it to
    the sign-in page."""
    me = page.context.request.get(f"{portal.url}/api/v1/me")
    assert me.status in (401, 403), (me.status, me.text())
    page.goto(f"{portal.url}/")
    page.wait_for_url(f"{portal.url}/login/**")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def _code_already_consumed(idp: IdentityProvider) -> int:
    return idp.log().count("grant.error invalid_grant: authorization code already consumed")


def _bearer(portal: Portal, token: str) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"}
    return requests.get(f"{portal.url}/api/v1/me", headers=headers, timeout=15)


# --- the browser ------------------------------------------------------------------------------


def test_an_invited_builder_signs_in_and_out_through_the_provider(sso, page):
    portal, idp, _ = sso
    assert _member(portal, "ada@example.com") == ("user", "pending", 1)
    _sign_in_at_provider(page, portal, "ada@example.com", shoot="sso")
    page.wait_for_url(f"{portal.url}/")
    expect(page.get_by_role("link", name="ada@example.com")).to_be_visible()
    expect(page.get_by_role("link", name="Console")).to_have_count(0)
    browser.screenshot(page, "sso-dashboard")
    assert _member(portal, "ada@example.com") == ("user", "active", 1)
    audit = portal_db_rows(
        portal, "SELECT details FROM audit_auditevent WHERE action = 'member.login' AND ip != ''"
    )
    assert {"via": "sso"} in [json.loads(row[0]) for row in audit]

    # Sign-out ends the provider's session too, and comes back to the sign-in page.
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{idp.issuer}/session/end**")
    page.get_by_role("button", name="Yes, sign me out").click()  # the provider's own page
    page.wait_for_url(f"{portal.url}/login/")
    expect(page.get_by_role("link", name="Sign in with your organisation account")).to_be_visible()
    browser.screenshot(page, "sso-signed-out")
    page.goto(f"{portal.url}/")
    page.get_by_role("link", name="Sign in with your organisation account").click()
    expect(page.get_by_placeholder("Enter any login")).to_be_visible()  # asked again


def test_the_admin_group_makes_an_admin(sso, page):
    portal, _, _ = sso
    _sign_in_at_provider(page, portal, "boss@example.com")
    page.wait_for_url(f"{portal.url}/")
    expect(page.get_by_role("link", name="Console")).to_be_visible()
    assert _member(portal, "boss@example.com")[:2] == ("admin", "active")


def test_an_uninvited_member_is_refused(sso, page):
    portal, _, _ = sso
    _sign_in_at_provider(page, portal, "mallory@example.com")
    expect(page.get_by_role("heading", name="You have not been invited yet")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("mallory@example.com")
    browser.screenshot(page, "sso-uninvited")
    assert _member(portal, "mallory@example.com") is None


def test_an_unverified_email_is_refused(sso, page):
    portal, _, _ = sso
    _sign_in_at_provider(page, portal, "eve@example.com")
    expect(page.get_by_role("heading", name="Your e-mail address is not verified")).to_be_visible()
    browser.screenshot(page, "sso-unverified")
    assert _member(portal, "eve@example.com")[1] == "pending"
    page.goto(f"{portal.url}/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_a_tampered_state_is_refused(sso, page):
    """The `state` the portal sent is altered on its way: the provider signs the member in
    and answers with the altered one, which this browser's session never started."""
    portal, idp, _ = sso
    page.goto(f"{portal.url}/login/")
    with page.expect_request(lambda r: r.url.startswith(f"{idp.issuer}/auth?")) as sent:
        page.get_by_role("link", name="Sign in with your organisation account").click()
    url = urlsplit(sent.value.url)
    params = {k: v[0] for k, v in parse_qs(url.query).items()}
    params["state"] = params["state"][::-1]
    page.goto(f"{idp.issuer}/auth?{urlencode(params)}")
    page.get_by_placeholder("Enter any login").fill("ada@example.com")
    page.get_by_placeholder("and password").fill("any password")
    with page.expect_response(lambda r: "/oidc/callback/" in r.url) as answer:
        page.get_by_role("button", name="Sign-in").click()
    assert answer.value.status == 400
    expect(page.get_by_role("heading", name="Sign-in did not complete")).to_be_visible()
    browser.screenshot(page, "sso-tampered-state")
    page.goto(f"{portal.url}/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_a_replayed_authorisation_code_is_refused(sso, chromium):
    """The callback URL of a completed sign-in (its code and state) is opened again, in the
    same browser and in another one: the member's own browser stays as it was (their
    dashboard), the other gets the refusal page and is not signed in, and the provider
    itself refuses to exchange that code twice.

    The URL is recorded from the browser's request events: the callback is the provider's
    redirect, and Playwright's `page.route` never sees redirected requests."""
    portal, idp, _ = sso
    context, other = browser.new_context(chromium), browser.new_context(chromium)
    try:
        page = context.new_page()
        _sign_in_at_provider_form(page, portal, "ada@example.com")
        state, started = _started_sign_in(portal, context)  # before the callback uses it
        with page.expect_request(lambda r: _is_callback(portal)(r.url)) as request:
            page.get_by_role("button", name="Sign-in").click()
        page.wait_for_url(f"{portal.url}/")
        expect(page.get_by_role("link", name="ada@example.com")).to_be_visible()
        me = context.request.get(f"{portal.url}/api/v1/me")
        assert me.json()["email"] == "ada@example.com"
        callback = request.value.url
        assert _query(callback)["state"] == state

        page.goto(callback)  # the same browser: still ada, back on her dashboard
        page.wait_for_url(f"{portal.url}/")
        expect(page.get_by_role("link", name="ada@example.com")).to_be_visible()
        browser.screenshot(page, "sso-replayed-code")

        other_page = other.new_page()
        _expect_refusal(other_page, other_page.goto(callback).status)  # another browser
        browser.screenshot(other_page, "sso-replayed-code-other-browser")
        _expect_signed_out(portal, other_page)
    finally:
        other.close()
        context.close()

    # The provider: the portal's own client, with the right PKCE verifier, cannot use it twice.
    consumed = _code_already_consumed(idp)
    answer = idp.exchange(_query(callback)["code"], started["code_verifier"])
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_grant"), answer.text
    assert _code_already_consumed(idp) == consumed + 1  # not expired, not a PKCE mismatch


def test_an_id_token_for_another_nonce_is_refused(sso, page):
    """The `nonce` of the browser's request to the provider is replaced before the provider
    sees it: the member signs in at the provider, which puts the replaced nonce in the ID
    token; the portal exchanges the code and refuses the token.

    The request to the provider's authorisation endpoint is the portal's redirect, which
    `page.route` cannot intercept; so the portal's redirect itself is intercepted and its
    `Location` rewritten, and the browser sends only the rewritten request."""
    portal, idp, _ = sso
    replaced: list[str] = []

    def replace_nonce(route: Route) -> None:
        response = route.fetch(max_redirects=0)
        location = response.headers["location"]
        assert location.startswith(f"{idp.issuer}/auth?"), location
        params = _query(location)
        params["nonce"] = secrets.token_urlsafe(16)
        replaced.append(params["nonce"])
        location = urlsplit(location)._replace(query=urlencode(params)).geturl()
        route.fulfill(response=response, headers={**response.headers, "location": location})

    page.route(f"{portal.url}/oidc/authenticate/**", replace_nonce)
    with page.expect_request(lambda r: r.url.startswith(f"{idp.issuer}/auth?")) as sent:
        _sign_in_at_provider_form(page, portal, "ada@example.com")
    _, started = _started_sign_in(portal, page.context)
    (nonce,) = replaced
    assert _query(sent.value.url)["nonce"] == nonce != started["nonce"]
    consumed = _code_already_consumed(idp)
    with page.expect_response(lambda r: _is_callback(portal)(r.url)) as answer:
        page.get_by_role("button", name="Sign-in").click()
    _expect_refusal(page, answer.value.status)
    browser.screenshot(page, "sso-wrong-nonce")
    _expect_signed_out(portal, page)
    # The refusal came after the portal had exchanged the code (for that ID token).
    code = _query(answer.value.url)["code"]
    assert idp.exchange(code, started["code_verifier"]).status_code == 400
    assert _code_already_consumed(idp) == consumed + 1


@pytest.mark.timeout(600)
def test_an_expired_id_token_is_refused(sso, page):
    """The provider issues a 1-second ID token stamped 45 s in the past, so that it reaches
    the portal expired beyond the portal's 30 s leeway: the portal refuses it.

    Holding the browser's callback cannot age an ID token: in the authorisation-code flow the
    provider mints it only when the portal exchanges the code, after the callback, and the
    portal checks it straight away (with a 1 s `ttl.IdToken`, a code exchanged 32 s after it
    was issued still gets an ID token whose `iat` is the exchange). So the provider is
    restarted (same issuer and signing key) with a clock offset applied to ID tokens alone
    (tests/idp/provider.mjs): `iat` and `exp` are those of a token issued 45 s earlier,
    signed with the provider's real key; the portal's log says why it refused."""
    portal, idp, _ = sso
    expired = "SSO ID token refused: The token has expired."
    with idp.restarted(id_token_ttl=1, id_token_clock_offset=-45):
        refused = portal.log().count(expired)
        _sign_in_at_provider_form(page, portal, "ada@example.com")
        with page.expect_response(lambda r: _is_callback(portal)(r.url)) as answer:
            page.get_by_role("button", name="Sign-in").click()
        _expect_refusal(page, answer.value.status)
        browser.screenshot(page, "sso-expired-id-token")
        wait_until(lambda: portal.log().count(expired) == refused + 1, what="the refusal logged")
        _expect_signed_out(portal, page)


# --- the API ------------------------------------------------------------------------------------


def test_a_provider_access_token_calls_the_api(sso):
    portal, idp, _ = sso
    tokens = idp.tokens("ada@example.com")
    assert jwt.get_unverified_header(tokens["access_token"])["typ"] == "at+jwt"
    response = _bearer(portal, tokens["access_token"])
    assert response.status_code == 200, response.text
    assert response.json()["email"] == "ada@example.com"


def test_refused_tokens_get_401_and_their_code(sso, tmp_path):
    portal, idp, key = sso
    cases = {
        "wrong audience": (
            idp.tokens("ada@example.com", resource="urn:other:api")["access_token"],
            "token_invalid",
        ),
        "unknown member": (idp.tokens("mallory@example.com")["access_token"], "member_unknown"),
    }
    now = int(time.time())
    claims = {"iss": idp.issuer, "aud": idp.client_id, "sub": "ada@example.com"}
    claims |= {"email": "ada@example.com", "iat": now - 900, "exp": now - 300}
    headers = {"kid": "idp-test", "typ": "at+jwt"}
    cases["expired"] = (
        jwt.encode(claims, key, algorithm="RS256", headers=headers),
        "token_expired",
    )
    unsigned = jwt.encode({**claims, "exp": now + 300}, None, algorithm="none", headers=headers)
    cases["alg none"] = (unsigned, "token_invalid")
    # Another provider with the very same signing key: only its issuer differs.
    other = IdentityProvider(
        log_dir=tmp_path,
        redirect_uri=idp.redirect_uri,
        logout_uri=idp.logout_uri,
        client_id=idp.client_id,
        signing_key=idp.signing_key,
    ).start()
    try:
        cases["another issuer"] = (other.tokens("ada@example.com")["access_token"], "token_invalid")
    finally:
        other.stop()
    for name, (token, code) in cases.items():
        response = _bearer(portal, token)
        assert (response.status_code, response.json()["code"]) == (401, code), name


def test_a_provider_outage_is_503_idp_unavailable(sso):
    """Last in the module: it stops the provider (and restarts the portal, whose cached
    discovery document and keys would otherwise carry it through)."""
    portal, idp, _ = sso
    token = idp.tokens("ada@example.com")["access_token"]
    idp.stop()
    portal.stop()
    portal.start()
    started = time.monotonic()
    response = _bearer(portal, token)
    assert (response.status_code, response.json()["code"]) == (503, "idp_unavailable")
    assert time.monotonic() - started < 10
