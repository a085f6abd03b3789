"""API bearer tokens (accounts.api.bearer): the provider's JWT access tokens on /api/v1."""

from __future__ import annotations

import time

import jwt
import pytest
from rest_framework.test import APIClient

from accounts.tests.factories import ApiTokenFactory, UserFactory
from accounts.tests.test_oidc import CLIENT_ID, ISSUER, provider  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db


def _get_me(token: str, keyword: str = "Bearer"):
    return APIClient().get("/api/v1/me", HTTP_AUTHORIZATION=f"{keyword} {token}")


def _access_token(provider, email: str = "ada@example.com", **claims) -> str:  # noqa: F811
    return provider.token({"email": email, "scope": "openid email", **claims})


def test_an_access_token_signs_the_member_in(provider):  # noqa: F811
    UserFactory(email="ada@example.com")
    response = _get_me(_access_token(provider, "ADA@example.com"))
    assert response.status_code == 200, response.content
    assert response.json()["email"] == "ada@example.com"


@pytest.mark.parametrize(
    ("claims", "code"),
    [
        ({"iss": "https://evil.example.com"}, "token_invalid"),
        ({"aud": "another-client"}, "token_invalid"),
        ({"exp": int(time.time()) - 120}, "token_expired"),
        ({"email": None}, "token_invalid"),
    ],
    ids=["wrong-issuer", "wrong-audience", "expired", "no-email"],
)
def test_bad_tokens_are_401_with_their_code(provider, claims, code):  # noqa: F811
    UserFactory(email="ada@example.com")
    response = _get_me(_access_token(provider, **claims))
    assert response.status_code == 401
    assert response.json()["code"] == code
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_alg_none_and_garbage_are_token_invalid(provider):  # noqa: F811
    UserFactory(email="ada@example.com")
    body = {"iss": ISSUER, "aud": CLIENT_ID, "sub": "x", "email": "ada@example.com"}
    for token in (jwt.encode(body, None, algorithm="none"), "not-a-jwt", "a.b.c"):
        response = _get_me(token)
        assert (response.status_code, response.json()["code"]) == (401, "token_invalid")


def test_the_audience_is_configurable(provider, settings):  # noqa: F811
    settings.OIDC_AUDIENCE = "https://portal.example.com/api"
    UserFactory(email="ada@example.com")
    assert _get_me(_access_token(provider)).json()["code"] == "token_invalid"
    token = _access_token(provider, aud="https://portal.example.com/api")
    assert _get_me(token).status_code == 200


def test_unknown_and_suspended_members_are_401(provider):  # noqa: F811
    UserFactory(email="eve@example.com", is_active=False)
    unknown = _get_me(_access_token(provider, "mallory@example.com"))
    assert (unknown.status_code, unknown.json()["code"]) == (401, "member_unknown")
    suspended = _get_me(_access_token(provider, "eve@example.com"))
    assert (suspended.status_code, suspended.json()["code"]) == (401, "member_suspended")


def test_an_idp_outage_is_503_not_500(provider):  # noqa: F811
    UserFactory(email="ada@example.com")
    provider.down = True
    response = _get_me(_access_token(provider))
    assert response.status_code == 503
    assert response.json() == {
        "detail": "The identity provider cannot be reached; try again shortly.",
        "code": "idp_unavailable",
    }


def test_personal_tokens_keep_working(provider):  # noqa: F811
    token = ApiTokenFactory()
    assert _get_me(token.raw, keyword="Token").status_code == 200
    # As Bearer it is ApiTokenAuthentication's, never taken for a JWT.
    assert _get_me(token.raw).status_code == 200


def test_bearer_is_ignored_when_sso_is_off(settings):
    settings.OIDC_ENABLED = False
    response = _get_me("eyJhbGciOiJSUzI1NiJ9.e30.c2ln")
    assert response.status_code in (401, 403)
    assert response.json()["code"] == "not_authenticated"
