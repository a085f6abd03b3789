"""OIDC single sign-on (DESIGN §5): the provider's metadata and signing keys, JWT checks
shared by the browser sign-in and the API's bearer tokens, and the mozilla-django-oidc
backend and views that sign members in.

Guarantees: a token is only believed when it is signed with RS256 or ES256 by a key of
the issuer's JWKS, for our audience, from our issuer and unexpired (30 s leeway). A member
signs in only with an e-mail the provider marks verified, within the allowed domains, and
only if invited (or `SELF_SIGNUP`); suspended members are refused. Every sign-in and
refusal is audited like a password one (`via="sso"`). An unreachable provider is reported
as such (`IdpUnavailable`), never as a server error.
"""

from __future__ import annotations

import hashlib
import logging
from urllib.parse import urlencode

import jwt
import requests
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render, resolve_url
from django.views.generic import View
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import (
    OIDCAuthenticationCallbackView,
    OIDCAuthenticationRequestView,
    OIDCLogoutView,
)

from accounts.choices import Role
from accounts.models import User, normalize_email
from accounts.services import (
    login_failure_record,
    login_success_record,
    member_create,
    member_mark_active,
    member_set_role,
)
from core.client_ip import request_client_ip
from core.errors import ApplicationError

logger = logging.getLogger(__name__)

ALGORITHMS = ("RS256", "ES256")
"""Signature algorithms accepted from the provider: never `none`, never a shared secret."""
LEEWAY_SECONDS = 30
METADATA_CACHE_SECONDS = 60 * 60
JWKS_CACHE_SECONDS = 10 * 60
JWKS_REFRESH_COOLDOWN_SECONDS = 10
"""An unknown `kid` refetches the JWKS at most this often (forged kids cannot flood the IdP)."""


class IdpUnavailable(Exception):
    """The provider's discovery document or JWKS could not be fetched (down, slow, broken)."""


class TokenRejected(Exception):
    """A JWT failed verification; `code` is `token_expired` or `token_invalid`."""

    def __init__(self, detail: str, *, code: str = "token_invalid") -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code


class SsoRefusal(Exception):
    """A sign-in the portal refuses; `reason` picks the page shown (`sso_<reason>.html`)."""

    def __init__(self, reason: str, *, email: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.email = email


def sso_enabled() -> bool:
    """SSO is on when both the issuer and the client id are configured (`OIDC_ENABLED`)."""
    return settings.OIDC_ENABLED


def sso_context(request: HttpRequest) -> dict:
    """Template context of the sign-in page: the organisation-account button, and whether
    the password form is for admins only."""
    return {
        "sso_enabled": sso_enabled(),
        "passwords_for_admins_only": not settings.LOCAL_PASSWORDS_FOR_BUILDERS,
    }


# --- provider metadata and keys --------------------------------------------------------------


def _cache_key(kind: str) -> str:
    return f"oidc:{kind}:{hashlib.sha256(settings.OIDC_ISSUER.encode()).hexdigest()[:16]}"


def _fetch_json(url: str) -> dict:
    try:
        response = requests.get(url, timeout=settings.OIDC_TIMEOUT)
        response.raise_for_status()
        document = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise IdpUnavailable(f"{url}: {exc.__class__.__name__}") from exc
    if not isinstance(document, dict):
        raise IdpUnavailable(f"{url}: not a JSON object")
    return document


def provider_metadata() -> dict:
    """The issuer's discovery document (cached an hour). Its `issuer` must be ours (a
    trailing slash aside); tokens must then carry exactly that `iss`."""
    key = _cache_key("metadata")
    metadata = cache.get(key)
    if metadata is None:
        issuer = settings.OIDC_ISSUER.rstrip("/")
        metadata = _fetch_json(f"{issuer}/.well-known/openid-configuration")
        if str(metadata.get("issuer", "")).rstrip("/") != issuer:
            raise IdpUnavailable("the discovery document names another issuer")
        cache.set(key, metadata, METADATA_CACHE_SECONDS)
    return metadata


def provider_endpoint(name: str) -> str:
    """One endpoint of the discovery document (`token_endpoint`, `jwks_uri` …)."""
    url = provider_metadata().get(name)
    if not isinstance(url, str) or not url:
        raise IdpUnavailable(f"the discovery document has no {name}")
    return url


def provider_jwks(*, refresh: bool = False) -> list[dict]:
    """The issuer's signing keys (cached 10 min; `refresh` refetches them)."""
    key = _cache_key("jwks")
    keys = None if refresh else cache.get(key)
    if keys is None:
        document = _fetch_json(provider_endpoint("jwks_uri"))
        keys = [k for k in document.get("keys", []) if isinstance(k, dict)]
        cache.set(key, keys, JWKS_CACHE_SECONDS)
    return keys


def _matching_key(keys: list[dict], kid: str | None, alg: str) -> dict | None:
    for jwk in keys:
        if jwk.get("use", "sig") != "sig" or jwk.get("alg", alg) != alg:
            continue
        if kid is None or jwk.get("kid") == kid:
            return jwk
    return None


def _signing_key(kid: str | None, alg: str):
    jwk = _matching_key(provider_jwks(), kid, alg)
    if jwk is None and cache.add(_cache_key("jwks-refresh"), 1, JWKS_REFRESH_COOLDOWN_SECONDS):
        jwk = _matching_key(provider_jwks(refresh=True), kid, alg)  # a rotated key
    if jwk is None:
        raise TokenRejected("The token is signed by an unknown key.")
    try:
        return jwt.PyJWK(jwk, algorithm=alg).key
    except jwt.PyJWKError as exc:
        raise TokenRejected("The provider's key does not fit the token.") from exc


def verify_jwt(token: str, *, audience: str) -> dict:
    """The claims of `token` once its signature, `alg`, `iss`, `aud`, `exp` and `nbf` hold.

    Raises `TokenRejected` (code `token_expired` or `token_invalid`), or `IdpUnavailable`
    when the keys cannot be fetched.
    """
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError as exc:
        raise TokenRejected("The token is not a JWT.") from exc
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise TokenRejected(f"Tokens signed with {alg!r} are not accepted.")
    key = _signing_key(header.get("kid"), alg)
    try:
        return jwt.decode(
            token,
            key=key,
            algorithms=[alg],
            audience=audience,
            issuer=provider_metadata()["issuer"],
            leeway=LEEWAY_SECONDS,
            options={"require": ["exp", "iss", "aud", "sub"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenRejected("The token has expired.", code="token_expired") from exc
    except jwt.InvalidTokenError as exc:
        raise TokenRejected(f"The token was refused: {exc}.") from exc


# --- members ---------------------------------------------------------------------------------


def _email_verified(claims: dict) -> bool:
    # Some providers send the boolean as a string.
    return claims.get(settings.OIDC_EMAIL_VERIFIED_CLAIM) in (True, "true")


def _is_admin_by_claims(claims: dict) -> bool:
    value = claims.get(settings.OIDC_ADMIN_CLAIM)
    values = value if isinstance(value, list | tuple) else [value]
    return settings.OIDC_ADMIN_VALUE in values


def _sync_role(user: User, claims: dict) -> None:
    """With an admin claim configured, the provider decides the role at each sign-in."""
    if not (settings.OIDC_ADMIN_CLAIM and settings.OIDC_ADMIN_VALUE):
        return
    role = Role.ADMIN if _is_admin_by_claims(claims) else Role.USER
    if user.role == role:
        return
    try:
        member_set_role(user=user, role=role, actor=None)
    except ApplicationError as exc:  # the last admin keeps the role (break-glass)
        logger.warning("SSO role of %s kept: %s", user.email, exc.detail)


def member_for_claims(claims: dict) -> User:
    """The member the provider's claims identify, created (SELF_SIGNUP) or updated (role).

    Raises `SsoRefusal` with reason `unverified`, `domain`, `uninvited` or `suspended`.
    """
    email = normalize_email(claims.get("email") or "")
    if not email or not _email_verified(claims):
        raise SsoRefusal("unverified", email=email)
    domain = email.rpartition("@")[2]
    if settings.OIDC_ALLOWED_DOMAINS and domain not in settings.OIDC_ALLOWED_DOMAINS:
        raise SsoRefusal("domain", email=email)
    user = User.objects.filter(email__iexact=email).first()
    if user is None:
        if not settings.SELF_SIGNUP:
            raise SsoRefusal("uninvited", email=email)
        user = member_create(email=email, role=Role.USER, actor=None)
        member_mark_active(user=user)
    if not user.is_active:
        raise SsoRefusal("suspended", email=email)
    _sync_role(user, claims)
    return user


class PortalOIDCBackend(OIDCAuthenticationBackend):
    """Signs a member in from the authorisation-code callback (PKCE, state, nonce checked
    by the views); inert unless SSO is configured. Endpoints come from discovery, so the
    backend is cheap to build on every request that loads a session's user."""

    def __init__(self, *args, **kwargs) -> None:  # the parent reads OIDC_OP_* settings
        self.UserModel = User
        self.OIDC_RP_CLIENT_ID = settings.OIDC_CLIENT_ID
        self.OIDC_RP_CLIENT_SECRET = settings.OIDC_CLIENT_SECRET

    @property
    def OIDC_OP_TOKEN_ENDPOINT(self) -> str:
        return provider_endpoint("token_endpoint")

    @property
    def OIDC_OP_USER_ENDPOINT(self) -> str:
        return provider_endpoint("userinfo_endpoint")

    def authenticate(self, request, **kwargs):
        if request is None or not sso_enabled() or "code" not in request.GET:
            return None
        try:
            return super().authenticate(request, **kwargs)
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else 500
            logger.warning("SSO provider answered %s: %s", status, exc)
            # 4xx: the provider refused this code (expired, replayed); 5xx: it is broken.
            raise SsoRefusal("failed" if status < 500 else "idp_unavailable") from exc
        except (requests.RequestException, IdpUnavailable) as exc:
            logger.warning("SSO provider unavailable: %s", exc)
            raise SsoRefusal("idp_unavailable") from exc

    def verify_token(self, token, **kwargs) -> dict:
        try:
            claims = verify_jwt(token or "", audience=settings.OIDC_CLIENT_ID)
        except TokenRejected as exc:
            logger.warning("SSO ID token refused: %s", exc.detail)
            raise SsoRefusal("failed") from exc
        if "nonce" in kwargs and claims.get("nonce") != kwargs["nonce"]:
            logger.warning("SSO ID token refused: its nonce is not the one this sign-in sent")
            raise SsoRefusal("failed")
        return claims

    def get_or_create_user(self, access_token, id_token, payload):
        userinfo = self.get_userinfo(access_token, id_token, payload)
        if userinfo.get("sub") != payload.get("sub"):
            logger.warning("SSO sign-in refused: userinfo names another subject")
            raise SsoRefusal("failed")
        return member_for_claims({**payload, **userinfo})

    def get_user(self, user_id):
        user = super().get_user(user_id)
        return user if user is not None and user.is_active else None

    def get_all_permissions(self, user_obj, obj=None) -> set[str]:
        return set()  # permissions are the role's (accounts.User.has_perm)

    def has_perm(self, user_obj, perm, obj=None) -> bool:
        return False


# --- views -----------------------------------------------------------------------------------

REFUSAL_STATUS = {"idp_unavailable": 503, "failed": 400}


def _refusal_page(request: HttpRequest, reason: str, email: str = "") -> HttpResponse:
    admins = User.objects.filter(role=Role.ADMIN, is_active=True).order_by("email")
    context = {"email": email, "admin_emails": list(admins.values_list("email", flat=True)[:3])}
    status = REFUSAL_STATUS.get(reason, 403)
    return render(request, f"registration/sso_{reason}.html", context, status=status)


class SignInView(OIDCAuthenticationRequestView):
    """GET /oidc/authenticate/: off to the provider with state, nonce and a PKCE S256
    challenge kept in the session."""

    def __init__(self, *args, **kwargs) -> None:  # the parent reads OIDC_OP_* settings
        View.__init__(self, *args, **kwargs)
        self.OIDC_RP_CLIENT_ID = settings.OIDC_CLIENT_ID

    def get(self, request):
        if not sso_enabled():
            raise Http404
        try:
            self.OIDC_OP_AUTH_ENDPOINT = provider_endpoint("authorization_endpoint")
        except IdpUnavailable:
            return _refusal_page(request, "idp_unavailable")
        return super().get(request)


class CallbackView(OIDCAuthenticationCallbackView):
    """GET /oidc/callback/: the code is exchanged, the ID token verified, the member
    signed in and audited; every refusal gets its own page and a `member.login_failed`."""

    def get(self, request):
        if not sso_enabled():
            raise Http404
        try:
            return super().get(request)
        except SuspiciousOperation as exc:  # a state this browser never started (forged, replayed)
            logger.warning("SSO callback refused: %s", exc)
            if request.user.is_authenticated:
                # A member signed in already (a reloaded or replayed callback in their own
                # browser): nothing changes; their dashboard, not a "did not complete" page.
                return redirect(settings.LOGIN_REDIRECT_URL)
            return self._refuse(SsoRefusal("failed"))
        except SsoRefusal as refusal:
            return self._refuse(refusal)

    def _refuse(self, refusal: SsoRefusal) -> HttpResponse:
        logger.info("SSO sign-in refused (%s) for %s", refusal.reason, refusal.email or "-")
        if refusal.reason != "idp_unavailable":
            ip = request_client_ip(self.request)
            login_failure_record(email=refusal.email, ip=ip, via="sso")
        return _refusal_page(self.request, refusal.reason, refusal.email)

    def login_success(self):
        response = super().login_success()
        login_success_record(user=self.user, ip=request_client_ip(self.request), via="sso")
        return response

    def login_failure(self):
        return self._refuse(SsoRefusal("failed"))


class SignOutView(OIDCLogoutView):
    """POST /logout/: the portal session ends; an SSO session continues to the provider's
    `end_session_endpoint` when it has one, else back to the sign-in page."""


def provider_logout_url(request: HttpRequest) -> str:
    """Where sign-out goes (mozilla's OIDC_OP_LOGOUT_URL_METHOD): the provider's end-session
    endpoint for an SSO session, the sign-in page otherwise or if the provider is down."""
    back = resolve_url(settings.LOGOUT_REDIRECT_URL)
    id_token = request.session.get("oidc_id_token")
    if not id_token or not sso_enabled():
        return back
    try:
        endpoint = provider_metadata().get("end_session_endpoint")
    except IdpUnavailable:
        return back
    if not endpoint:
        return back
    params = {
        "id_token_hint": id_token,
        "client_id": settings.OIDC_CLIENT_ID,
        "post_logout_redirect_uri": f"{settings.PORTAL_URL}{back}",
    }
    return f"{endpoint}?{urlencode(params)}"
