"""OIDC sign-in (accounts.oidc): token checks, member mapping, the callback's pages.

The provider is faked at its edge only: `_fetch_json` serves the discovery document and
the JWKS, the token and userinfo calls return what a provider would. Keys are real.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.contrib.auth.models import AnonymousUser
from django.urls import reverse
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from accounts import oidc
from accounts.choices import MemberStatus, Role
from accounts.models import User
from accounts.tests.factories import AdminFactory, UserFactory
from audit.models import AuditEvent

ISSUER = "https://idp.example.com"
CLIENT_ID = "enclave"


class FakeProvider:
    """Discovery and JWKS documents, served through `accounts.oidc._fetch_json`."""

    def __init__(self) -> None:
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.keys = {"rsa-1": self.rsa, "ec-1": self.ec}
        self.fetches: list[str] = []
        self.down = False

    def jwks(self) -> dict:
        keys = []
        for kid, key in self.keys.items():
            jwk = (
                json.loads(jwt.PyJWK.from_dict(_public_jwk(key)).key_id or "{}") if False else None
            )
            jwk = _public_jwk(key)
            jwk.update({"kid": kid, "use": "sig"})
            keys.append(jwk)
        return {"keys": keys}

    def fetch(self, url: str) -> dict:
        self.fetches.append(url)
        if self.down:
            raise oidc.IdpUnavailable(f"{url}: ConnectTimeout")
        if url == f"{ISSUER}/.well-known/openid-configuration":
            return {
                "issuer": ISSUER,
                "authorization_endpoint": f"{ISSUER}/auth",
                "token_endpoint": f"{ISSUER}/token",
                "userinfo_endpoint": f"{ISSUER}/me",
                "jwks_uri": f"{ISSUER}/jwks",
                "end_session_endpoint": f"{ISSUER}/session/end",
            }
        if url == f"{ISSUER}/jwks":
            return self.jwks()
        raise AssertionError(url)

    def token(self, claims: dict | None = None, *, kid: str = "rsa-1", alg: str = "RS256", **kw):
        now = int(time.time())
        body = {"iss": ISSUER, "aud": CLIENT_ID, "sub": "user-1", "iat": now, "exp": now + 300}
        body.update(claims or {})
        key = kw.get("key", self.keys.get(kid, self.rsa))
        return jwt.encode(body, key, algorithm=alg, headers={"kid": kid})


def _public_jwk(key) -> dict:
    algorithm = RSAAlgorithm if isinstance(key, rsa.RSAPrivateKey) else ECAlgorithm
    return json.loads(algorithm.to_jwk(key.public_key()))


@pytest.fixture
def provider(settings, monkeypatch) -> FakeProvider:
    settings.OIDC_ISSUER = ISSUER
    settings.OIDC_CLIENT_ID = CLIENT_ID
    settings.OIDC_ENABLED = True
    settings.OIDC_CLIENT_SECRET = "secret"
    settings.OIDC_AUDIENCE = CLIENT_ID
    settings.OIDC_ADMIN_CLAIM = "groups"
    settings.OIDC_ADMIN_VALUE = "enclave-admins"
    settings.OIDC_ALLOWED_DOMAINS = []
    settings.OIDC_EMAIL_VERIFIED_CLAIM = "email_verified"
    settings.SELF_SIGNUP = False
    fake = FakeProvider()
    monkeypatch.setattr(oidc, "_fetch_json", fake.fetch)
    return fake


def _claims(email: str = "ada@example.com", **extra) -> dict:
    return {"sub": "user-1", "email": email, "email_verified": True, **extra}


# --- token checks ----------------------------------------------------------------------------


def test_a_signed_token_is_accepted_with_rs256_and_es256(provider):
    assert oidc.verify_jwt(provider.token(), audience=CLIENT_ID)["sub"] == "user-1"
    es = provider.token(kid="ec-1", alg="ES256")
    assert oidc.verify_jwt(es, audience=CLIENT_ID)["iss"] == ISSUER


def test_a_tampered_signature_is_refused(provider):
    header, payload, signature = provider.token().split(".")
    forged = json.loads(base64.urlsafe_b64decode(payload + "=="))
    forged["sub"] = "someone-else"
    payload = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    with pytest.raises(oidc.TokenRejected) as refused:
        oidc.verify_jwt(f"{header}.{payload}.{signature}", audience=CLIENT_ID)
    assert refused.value.code == "token_invalid"


def test_alg_none_is_refused(provider):
    unsigned = jwt.encode({"iss": ISSUER, "aud": CLIENT_ID, "sub": "x"}, None, algorithm="none")
    with pytest.raises(oidc.TokenRejected, match="'none'"):
        oidc.verify_jwt(unsigned, audience=CLIENT_ID)


def test_hs256_signed_with_the_public_key_is_refused(provider):
    public_pem = provider.rsa.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    body = {"iss": ISSUER, "aud": CLIENT_ID, "sub": "x", "exp": int(time.time()) + 60}
    # PyJWT itself refuses a PEM as an HMAC secret; sign by hand, as an attacker would.
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","kid":"rsa-1"}').rstrip(b"=")
    payload = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=")
    signature = hmac.new(public_pem, header + b"." + payload, hashlib.sha256).digest()
    token = b".".join([header, payload, base64.urlsafe_b64encode(signature).rstrip(b"=")])
    with pytest.raises(oidc.TokenRejected, match="HS256"):
        oidc.verify_jwt(token.decode(), audience=CLIENT_ID)


@pytest.mark.parametrize(
    ("claims", "code"),
    [
        ({"iss": "https://evil.example.com"}, "token_invalid"),
        ({"aud": "another-client"}, "token_invalid"),
        ({"exp": int(time.time()) - 120}, "token_expired"),
        ({"nbf": int(time.time()) + 600}, "token_invalid"),
    ],
    ids=["wrong-issuer", "wrong-audience", "expired", "not-yet-valid"],
)
def test_claims_are_checked(provider, claims, code):
    with pytest.raises(oidc.TokenRejected) as refused:
        oidc.verify_jwt(provider.token(claims), audience=CLIENT_ID)
    assert refused.value.code == code


def test_expiry_has_thirty_seconds_of_leeway(provider):
    token = provider.token({"exp": int(time.time()) - 10})
    assert oidc.verify_jwt(token, audience=CLIENT_ID)["sub"] == "user-1"


def test_the_jwks_is_cached(provider):
    oidc.verify_jwt(provider.token(), audience=CLIENT_ID)
    oidc.verify_jwt(provider.token(), audience=CLIENT_ID)
    assert provider.fetches.count(f"{ISSUER}/jwks") == 1


def test_an_unknown_kid_refreshes_the_jwks_once(provider):
    oidc.verify_jwt(provider.token(), audience=CLIENT_ID)
    provider.keys["rsa-2"] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert oidc.verify_jwt(provider.token(kid="rsa-2"), audience=CLIENT_ID)
    assert provider.fetches.count(f"{ISSUER}/jwks") == 2
    # A kid the provider never had: one more refresh is not tried within the cool-down.
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(oidc.TokenRejected, match="unknown key"):
        oidc.verify_jwt(provider.token(kid="rsa-9", key=stranger), audience=CLIENT_ID)
    assert provider.fetches.count(f"{ISSUER}/jwks") == 2


def test_a_provider_outage_is_idp_unavailable(provider):
    provider.down = True
    with pytest.raises(oidc.IdpUnavailable):
        oidc.verify_jwt(provider.token(), audience=CLIENT_ID)


@pytest.mark.parametrize(
    "failure",
    [requests.ConnectTimeout("slow"), requests.ConnectionError("down"), ValueError("not json")],
)
def test_fetch_failures_are_idp_unavailable(settings, monkeypatch, failure):
    settings.OIDC_TIMEOUT = 3.0
    calls = []

    def get(url, timeout):
        calls.append(timeout)
        raise failure

    monkeypatch.setattr(oidc.requests, "get", get)
    with pytest.raises(oidc.IdpUnavailable):
        oidc._fetch_json(f"{ISSUER}/jwks")
    assert calls == [3.0]


def test_discovery_without_a_jwks_uri_is_unavailable(provider, monkeypatch):
    real = provider.fetch
    monkeypatch.setattr(oidc, "_fetch_json", lambda url: {**real(url), "jwks_uri": None})
    with pytest.raises(oidc.IdpUnavailable, match="jwks_uri"):
        oidc.verify_jwt(provider.token(), audience=CLIENT_ID)


def test_discovery_naming_another_issuer_is_unavailable(provider, monkeypatch):
    real = provider.fetch
    monkeypatch.setattr(oidc, "_fetch_json", lambda url: {**real(url), "issuer": "https://x"})
    with pytest.raises(oidc.IdpUnavailable):
        oidc.provider_metadata()


# --- members ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_invited_member_is_matched_case_insensitively(provider):
    ada = UserFactory(email="ada@example.com")
    assert oidc.member_for_claims(_claims("Ada@Example.COM")) == ada


@pytest.mark.django_db
@pytest.mark.parametrize("verified", [False, "false", None])
def test_an_unverified_email_is_refused(provider, verified):
    UserFactory(email="ada@example.com")
    claims = _claims(email_verified=verified)
    with pytest.raises(oidc.SsoRefusal) as refused:
        oidc.member_for_claims(claims)
    assert refused.value.reason == "unverified"


@pytest.mark.django_db
def test_the_verified_claim_is_configurable(provider, settings):
    settings.OIDC_EMAIL_VERIFIED_CLAIM = "xms_edov"  # Microsoft Entra ID
    ada = UserFactory(email="ada@example.com")
    assert oidc.member_for_claims(_claims(email_verified=None, xms_edov=True)) == ada
    with pytest.raises(oidc.SsoRefusal):
        oidc.member_for_claims(_claims())


@pytest.mark.django_db
def test_an_issuer_with_a_trailing_slash_is_matched_exactly(provider, settings, monkeypatch):
    real = provider.fetch
    monkeypatch.setattr(oidc, "_fetch_json", lambda url: {**real(url), "issuer": f"{ISSUER}/"})
    settings.OIDC_ISSUER = f"{ISSUER}/"  # e.g. authentik's issuers end with a slash
    assert oidc.verify_jwt(provider.token({"iss": f"{ISSUER}/"}), audience=CLIENT_ID)
    with pytest.raises(oidc.TokenRejected):
        oidc.verify_jwt(provider.token(), audience=CLIENT_ID)


@pytest.mark.django_db
def test_an_uninvited_member_is_refused_without_self_signup(provider):
    with pytest.raises(oidc.SsoRefusal) as refused:
        oidc.member_for_claims(_claims("mallory@example.com"))
    assert refused.value.reason == "uninvited"
    assert not User.objects.filter(email="mallory@example.com").exists()


@pytest.mark.django_db
def test_self_signup_creates_an_active_builder(provider, settings):
    settings.SELF_SIGNUP = True
    user = oidc.member_for_claims(_claims("new@example.com"))
    user.refresh_from_db()
    assert (user.email, user.role, user.status) == ("new@example.com", Role.USER, "active")


@pytest.mark.django_db
def test_a_suspended_member_is_refused(provider):
    UserFactory(email="ada@example.com", is_active=False)
    with pytest.raises(oidc.SsoRefusal) as refused:
        oidc.member_for_claims(_claims())
    assert refused.value.reason == "suspended"


@pytest.mark.django_db
def test_allowed_domains_are_enforced(provider, settings):
    settings.OIDC_ALLOWED_DOMAINS = ["corp.example"]
    UserFactory(email="ada@example.com")
    with pytest.raises(oidc.SsoRefusal) as refused:
        oidc.member_for_claims(_claims())
    assert refused.value.reason == "domain"


@pytest.mark.django_db
def test_the_admin_claim_sets_the_role_at_each_sign_in(provider):
    AdminFactory(email="root@example.com")  # someone else stays admin
    boss = UserFactory(email="boss@example.com")
    oidc.member_for_claims(_claims("boss@example.com", groups=["enclave-admins", "staff"]))
    boss.refresh_from_db()
    assert boss.role == Role.ADMIN
    oidc.member_for_claims(_claims("boss@example.com", groups=["staff"]))
    boss.refresh_from_db()
    assert boss.role == Role.USER
    assert AuditEvent.objects.filter(action="member.set_role").count() == 2


@pytest.mark.django_db
def test_the_last_admin_keeps_the_role(provider):
    boss = AdminFactory(email="boss@example.com")
    oidc.member_for_claims(_claims("boss@example.com", groups=[]))
    boss.refresh_from_db()
    assert boss.role == Role.ADMIN


# --- the browser flow ------------------------------------------------------------------------


def _start(client) -> dict[str, str]:
    """GET /oidc/authenticate/: the authorisation request's parameters."""
    response = client.get(reverse("oidc_authentication_init"))
    assert response.status_code == 302
    url = urlsplit(response["Location"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{ISSUER}/auth"
    return {k: v[0] for k, v in parse_qs(url.query).items()}


def _callback(client, provider, monkeypatch, claims: dict, *, nonce: str | None = None):
    params = _start(client)
    assert params["code_challenge_method"] == "S256"
    id_token = provider.token({"nonce": nonce or params["nonce"], "sub": claims["sub"]})
    sent = {}

    def get_token(self, payload):
        sent.update(payload)
        return {"id_token": id_token, "access_token": "opaque"}

    monkeypatch.setattr(oidc.PortalOIDCBackend, "get_token", get_token)
    monkeypatch.setattr(oidc.PortalOIDCBackend, "get_userinfo", lambda self, *a: claims)
    response = client.get(
        reverse("oidc_authentication_callback"), {"code": "c0de", "state": params["state"]}
    )
    if sent:  # the PKCE verifier goes with the code, and matches the challenge
        digest = hashlib.sha256(sent["code_verifier"].encode()).digest()
        assert base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == params["code_challenge"]
    return response


@pytest.mark.django_db
def test_sign_in_activates_a_pending_member_and_is_audited(client, provider, monkeypatch):
    ada = UserFactory(email="ada@example.com", status=MemberStatus.PENDING)
    response = _callback(client, provider, monkeypatch, _claims())
    assert response.status_code == 302 and response["Location"] == "/"
    ada.refresh_from_db()
    assert ada.status == MemberStatus.ACTIVE
    event = AuditEvent.objects.get(action="member.login", actor=ada)
    assert event.details == {"via": "sso"}
    assert client.get("/").wsgi_request.user == ada


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("claims", "reason", "status"),
    [
        (_claims(email_verified=False), "verified", 403),
        (_claims("mallory@example.com"), "invited", 403),
    ],
)
def test_refusals_get_a_page_and_are_audited(client, provider, monkeypatch, claims, reason, status):
    UserFactory(email="ada@example.com")
    response = _callback(client, provider, monkeypatch, claims)
    assert response.status_code == status
    assert reason in response.content.decode()
    assert AuditEvent.objects.filter(action="member.login_failed").exists()
    assert not client.get("/").wsgi_request.user.is_authenticated


@pytest.mark.django_db
def test_a_wrong_nonce_is_refused(client, provider, monkeypatch):
    UserFactory(email="ada@example.com")
    response = _callback(client, provider, monkeypatch, _claims(), nonce="replayed")
    assert response.status_code == 400
    assert "did not complete" in response.content.decode()


@pytest.mark.django_db
def test_a_tampered_state_is_refused(client, provider):
    _start(client)
    response = client.get(reverse("oidc_authentication_callback"), {"code": "c", "state": "x"})
    assert response.status_code == 400
    assert "did not complete" in response.content.decode()


@pytest.mark.django_db
def test_the_provider_down_shows_its_page(client, provider):
    provider.down = True
    response = client.get(reverse("oidc_authentication_init"))
    assert response.status_code == 503
    assert "cannot be reached" in response.content.decode()


@pytest.mark.django_db
def test_sso_is_off_without_an_issuer(client, settings):
    settings.OIDC_ENABLED = False
    assert client.get(reverse("oidc_authentication_init")).status_code == 404
    assert "organisation account" not in client.get(reverse("login")).content.decode()


@pytest.mark.django_db
def test_the_sign_in_page_offers_the_organisation_account(client, provider):
    assert "Sign in with your organisation account" in client.get(reverse("login")).content.decode()


@pytest.mark.django_db
def test_sign_out_continues_to_the_provider(client, provider, monkeypatch):
    UserFactory(email="ada@example.com")
    _callback(client, provider, monkeypatch, _claims())
    response = client.post(reverse("logout"))
    assert response.status_code == 302
    location = urlsplit(response["Location"])
    assert location.path == "/session/end"
    assert parse_qs(location.query)["post_logout_redirect_uri"][0].endswith("/login/")
    assert not client.get("/").wsgi_request.user.is_authenticated


@pytest.mark.django_db
def test_password_sign_out_stays_in_the_portal(client):
    client.force_login(UserFactory())
    response = client.post(reverse("logout"))
    assert response.status_code == 302 and response["Location"] == reverse("login")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("reason", "status", "text"),
    [
        ("unverified", 403, "Your e-mail address is not verified"),
        ("uninvited", 403, "You have not been invited yet"),
        ("suspended", 403, "Your account is suspended"),
        ("domain", 403, "This e-mail domain is not allowed"),
        ("failed", 400, "Sign-in did not complete"),
        ("idp_unavailable", 503, "Your identity provider cannot be reached"),
    ],
)
def test_every_refusal_has_its_page(rf, reason, status, text):
    request = rf.get("/oidc/callback/")
    request.user = AnonymousUser()
    response = oidc._refusal_page(request, reason, "x@example.com")
    assert response.status_code == status
    assert f"<h1>{text}</h1>" in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize(("status", "page_status"), [(400, 400), (502, 503)])
def test_a_refused_code_exchange_gets_its_page(client, provider, monkeypatch, status, page_status):
    params = _start(client)

    def get_token(self, payload):
        response = requests.Response()
        response.status_code = status
        raise requests.HTTPError("token endpoint", response=response)

    monkeypatch.setattr(oidc.PortalOIDCBackend, "get_token", get_token)
    callback = {"code": "c0de", "state": params["state"]}
    response = client.get(reverse("oidc_authentication_callback"), callback)
    assert response.status_code == page_status
