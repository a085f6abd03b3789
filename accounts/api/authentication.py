"""API authentication: personal API tokens (`Authorization: Token enc_…`, or
`Bearer enc_…`; other bearer tokens are the identity provider's, `accounts.api.bearer`)."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from accounts.models import API_TOKEN_PREFIX, ApiToken
from core.crypto import hash_secret

# Do not write `last_used_at` on every request: once a minute per token is plenty.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """Accepts `Authorization: Token <personal API token>` (or `Bearer` with one: tools
    that only know bearer tokens); looks the token up by hash.

    Expired, revoked or unknown tokens and inactive members fail with 401; the token
    itself is never logged or echoed.
    """

    keyword = "Token"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header:
            return None
        scheme = header[0].lower()
        personal_bearer = (
            scheme == b"bearer"
            and len(header) == 2
            and header[1].startswith(API_TOKEN_PREFIX.encode())
        )
        if scheme != self.keyword.lower().encode() and not personal_bearer:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Malformed Token header.")
        try:
            raw = header[1].decode()
        except UnicodeDecodeError as exc:
            raise exceptions.AuthenticationFailed("Malformed Token header.") from exc
        token = ApiToken.objects.select_related("user").filter(token_hash=hash_secret(raw)).first()
        if token is None or not token.is_usable or not token.user.is_active:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked API token.")
        now = timezone.now()
        if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user, token

    def authenticate_header(self, request) -> str:
        return self.keyword


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """Documents `Authorization: Token <personal API token>` in the OpenAPI schema."""

    target_class = "accounts.api.authentication.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Token <personal API token>` (see POST /api/v1/me/tokens).",
        }
