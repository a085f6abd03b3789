"""API authentication: the identity provider's JWT access tokens (`Authorization: Bearer`).

Personal API tokens (`enc_…`) are left to `ApiTokenAuthentication`. The access token must
carry the member's `email` claim (providers add it with a claim mapper or scope; see
docs/sso.md): the portal does not call the userinfo endpoint per request.
"""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication

from accounts.models import API_TOKEN_PREFIX, User, normalize_email
from accounts.oidc import IdpUnavailable, TokenRejected, sso_enabled, verify_jwt
from core.errors import ApplicationError

CHALLENGE = 'Bearer error="invalid_token"'


def _unauthorized(detail: str, code: str) -> ApplicationError:
    return ApplicationError(detail, code=code, status=401, headers={"WWW-Authenticate": CHALLENGE})


class OIDCBearerAuthentication(authentication.BaseAuthentication):
    """Accepts `Authorization: Bearer <JWT>` signed by the issuer (see `accounts.oidc`).

    Fails with 401 and code `token_invalid`, `token_expired`, `member_unknown` or
    `member_suspended`; with 503 `idp_unavailable` when the provider's keys cannot be
    fetched. Inert (the next class decides) when SSO is off or for a personal token.
    """

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode() or not sso_enabled():
            return None
        if len(header) != 2:
            raise _unauthorized("Malformed Bearer header.", "token_invalid")
        try:
            token = header[1].decode("ascii")
        except UnicodeDecodeError as exc:
            raise _unauthorized("Malformed Bearer header.", "token_invalid") from exc
        if token.startswith(API_TOKEN_PREFIX):
            return None
        try:
            claims = verify_jwt(token, audience=settings.OIDC_AUDIENCE)
        except TokenRejected as exc:
            raise _unauthorized(exc.detail, exc.code) from exc
        except IdpUnavailable as exc:
            raise ApplicationError(
                "The identity provider cannot be reached; try again shortly.",
                code="idp_unavailable",
                status=503,
                headers={"Retry-After": "30"},
            ) from exc
        email = normalize_email(claims.get("email") or "")
        if not email:
            raise _unauthorized("The access token carries no email claim.", "token_invalid")
        user = User.objects.filter(email__iexact=email).first()
        if user is None:
            raise _unauthorized("No member has this e-mail address.", "member_unknown")
        if not user.is_active:
            raise _unauthorized("This member is suspended.", "member_suspended")
        return user, claims

    def authenticate_header(self, request) -> str:
        return self.keyword


class OIDCBearerScheme(OpenApiAuthenticationExtension):
    """Documents `Authorization: Bearer <access token>` in the OpenAPI schema."""

    target_class = "accounts.api.bearer.OIDCBearerAuthentication"
    name = "oidcBearer"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "An access token of the organisation's identity provider (docs/sso.md).",
        }
