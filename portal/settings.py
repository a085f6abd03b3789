"""The one settings module of the portal, driven by the environment.

Every value comes from an environment variable (or a `.env` file beside
`manage.py`); `.env.example` lists them all. When nothing is configured the
embedded defaults apply (with DEBUG on, which `make run`'s var dir turns on by
itself through its `DEVELOPMENT` marker): SQLite under `var/`, an in-process channel layer and
cache, and a secret key and encryption key generated once into `var/`. Those
generated keys are only used with ``DEBUG`` on: in production a missing
``DJANGO_SECRET_KEY`` or ``PORTAL_ENCRYPTION_KEYS`` stops start-up with a
one-line message naming the variable. What the portal creates in `var/` is private to
its user: the directory 0700, the keys and the SQLite database 0600 (the database file
is created 0600 before SQLite first opens it, and SQLite gives its journal the same mode).
"""

from __future__ import annotations

import base64
import os
import secrets
import sys
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

VAR_DIR = Path(env.str("PORTAL_VAR_DIR", default=str(BASE_DIR / "var")))
# `make run` marks its var dir as a development install, so every command run from that
# checkout (changepassword, issue_api_token …) gets the embedded defaults without an
# exported DEBUG. A production var dir never has the marker; DEBUG=false overrides it.
DEVELOPMENT_MARKER = VAR_DIR / "DEVELOPMENT"
DEBUG = env.bool("DEBUG", default=DEVELOPMENT_MARKER.exists())


def _missing(name: str) -> ImproperlyConfigured:
    message = f"{name} is not set: it is required when DEBUG is off (see .env.example)."
    print(f"enclave: {message}", file=sys.stderr)
    return ImproperlyConfigured(message)


def _private_file(path: Path, content: str = "") -> None:
    """Make sure `path` exists readable by this user only (mode 0600, its directory 0700
    when created here): a missing file is created with `content`, already 0600, and an
    existing one of ours loses any group or other permission it had."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        info = path.stat()
        if info.st_mode & 0o077 and info.st_uid == os.getuid():
            path.chmod(0o600)
        return
    with os.fdopen(fd, "w") as handle:
        handle.write(content)


def _generated_secret(filename: str, make: callable) -> str:
    """Read a development secret from `var/`, creating it (mode 0600) on first use."""
    path = VAR_DIR / filename
    _private_file(path, "" if path.exists() else make())
    return path.read_text().strip()


# --- secrets -------------------------------------------------------------------------------

if env.str("DJANGO_SECRET_KEY", default=""):
    SECRET_KEY = env.str("DJANGO_SECRET_KEY")
elif DEBUG:
    SECRET_KEY = _generated_secret("secret_key", lambda: secrets.token_urlsafe(50))
else:
    raise _missing("DJANGO_SECRET_KEY")

# Comma-separated "key-id:base64(32 bytes)" entries; the last one encrypts, all decrypt.
if env.str("PORTAL_ENCRYPTION_KEYS", default=""):
    PORTAL_ENCRYPTION_KEYS = env.list("PORTAL_ENCRYPTION_KEYS")
elif DEBUG:
    PORTAL_ENCRYPTION_KEYS = [
        _generated_secret(
            "encryption.key", lambda: "k1:" + base64.b64encode(secrets.token_bytes(32)).decode()
        )
    ]
else:
    raise _missing("PORTAL_ENCRYPTION_KEYS")

# --- hosts and origins ---------------------------------------------------------------------

PORTAL_URL = env.str("PORTAL_URL", default="http://portal.localhost:8000").rstrip("/")
PREVIEW_DOMAIN = env.str("PREVIEW_DOMAIN", default="preview.portal.localhost").lower()
APPS_DOMAIN = env.str("APPS_DOMAIN", default="apps.portal.localhost").lower()
_portal_host = PORTAL_URL.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[_portal_host, "localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[PORTAL_URL])
# Proxies whose X-Forwarded-For is believed (CIDRs); empty: the socket address is the client.
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])
# CPUs the server process runs on (Linux CPU list, e.g. "0-1"); empty: all. Applied by
# the launcher (`python -m portal`), never by a management command; see
# docs/operator-guide.md.
PORTAL_CPUS = env.str("PORTAL_CPUS", default="").strip()

# --- applications --------------------------------------------------------------------------

INSTALLED_APPS = [
    "daphne",
    "csp",
    "portal.apps.PortalAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    # The apps, bottom to top: a lower one never imports a higher one (.importlinter).
    "core",
    "audit",
    "accounts",
    "clusters",
    "security_center",
    "blueprints",
    "workspaces",
    "publishing",
    "relay",
    # The project: its legacy migrations only (see portal/migrations).
    "portal.apps.PortalConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "core.middleware.AuditContextMiddleware",
    "csp.middleware.CSPMiddleware",
    "core.middleware.PermissionsPolicyMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "portal.urls"
ASGI_APPLICATION = "portal.asgi.application"
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "core.context_processors.organization",
                "accounts.oidc.sso_context",
            ],
        },
    },
]

# --- data stores ---------------------------------------------------------------------------

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'portal.sqlite3'}"),
}
if not env.str("DATABASE_URL", default=""):
    # The embedded default: created 0600 here, so SQLite never makes it world-readable.
    _private_file(VAR_DIR / "portal.sqlite3")
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL + IMMEDIATE transactions: concurrent async consumers and the API never see
    # "database is locked" on the embedded default.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    )
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=0))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # redis-py's default 5 s socket timeout equals channels-redis' 5 s blocking
            # pop: the read would time out under it, so give reads room.
            "CONFIG": {
                "hosts": [{"address": REDIS_URL, "socket_timeout": 30}],
                "capacity": 1000,
                "expiry": 30,
            },
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "enclave",
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 1000}}
    }
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- authentication ------------------------------------------------------------------------

# The password backend first: harness and tooling sessions name it. The OIDC backend only
# answers the /oidc/callback/ request, and only when SSO is configured.
AUTHENTICATION_BACKENDS = ["accounts.backends.EmailBackend", "accounts.oidc.PortalOIDCBackend"]
# One-time values (new tokens) shown in admin messages stay server-side, never in a cookie.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
API_TOKEN_DEFAULT_DAYS = env.int("API_TOKEN_DEFAULT_DAYS", default=90)

# --- OIDC single sign-on (docs/sso.md) -----------------------------------------------------

# SSO is on when both the issuer and the client id are set. The issuer's discovery document
# (<issuer>/.well-known/openid-configuration) is fetched on first use and cached; so is its
# JWKS (refreshed once when a token names an unknown `kid`).
OIDC_ISSUER = env.str("OIDC_ISSUER", default="")
OIDC_CLIENT_ID = env.str("OIDC_CLIENT_ID", default="")
OIDC_CLIENT_SECRET = env.str("OIDC_CLIENT_SECRET", default="")
OIDC_ENABLED = bool(OIDC_ISSUER and OIDC_CLIENT_ID)
OIDC_SCOPES = env.str("OIDC_SCOPES", default="openid email profile")
# A claim (e.g. "groups") and the value in it (e.g. "enclave-admins") that make a member an
# admin; applied at each SSO sign-in (without it, a member's role is the portal's own).
OIDC_ADMIN_CLAIM = env.str("OIDC_ADMIN_CLAIM", default="")
OIDC_ADMIN_VALUE = env.str("OIDC_ADMIN_VALUE", default="")
# The claim that vouches for the e-mail address (Entra ID: "xms_edov"); sign-in needs it true.
OIDC_EMAIL_VERIFIED_CLAIM = env.str("OIDC_EMAIL_VERIFIED_CLAIM", default="email_verified")
# E-mail domains allowed to sign in with SSO (empty: any the provider vouches for).
OIDC_ALLOWED_DOMAINS = [d.lower().lstrip("@") for d in env.list("OIDC_ALLOWED_DOMAINS", default=[])]
# The `aud` that API bearer tokens (the provider's JWT access tokens) must carry.
OIDC_AUDIENCE = env.str("OIDC_AUDIENCE", default="") or OIDC_CLIENT_ID
# Seconds before a call to the provider (discovery, JWKS, token, userinfo) gives up.
OIDC_TIMEOUT = env.float("OIDC_TIMEOUT", default=3.0)
# false: only invited members sign in; true: an unknown, verified e-mail becomes a builder.
SELF_SIGNUP = env.bool("SELF_SIGNUP", default=False)
# false: only admins (the break-glass admin included) may use the password form
# (accounts.services.local_password_allowed).
LOCAL_PASSWORDS_FOR_BUILDERS = env.bool("LOCAL_PASSWORDS_FOR_BUILDERS", default=True)

# mozilla-django-oidc's own settings, from the ones above. accounts.oidc takes the client,
# the endpoints (discovery) and the accepted algorithms (RS256, ES256) from its own.
OIDC_RP_SCOPES = OIDC_SCOPES
OIDC_USE_PKCE = True
OIDC_PKCE_CODE_CHALLENGE_METHOD = "S256"
OIDC_USE_NONCE = True
OIDC_STORE_ID_TOKEN = True  # the `id_token_hint` of the provider's sign-out
OIDC_OP_LOGOUT_URL_METHOD = "accounts.oidc.provider_logout_url"
LOGOUT_REDIRECT_URL = "login"
# The organisation's cap on a personal API token's lifetime (days).
API_TOKEN_MAX_DAYS = env.int("API_TOKEN_MAX_DAYS", default=365)
# Days an invitation link stays usable (single-use; a new link replaces the previous one).
INVITATION_DAYS = env.int("INVITATION_DAYS", default=7)

# --- E-mail (invitations) --------------------------------------------------------------------
# EMAIL_URL: smtp://user:password@host:587 (or submission:// for STARTTLS on 587, smtps://
# for TLS); default: printed on the portal's console.
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default=f"Enclave <noreply@{_portal_host}>")

# --- Content-Security-Policy (django-csp) ---------------------------------------------------
# Portal pages run only their own scripts (no inline script, no eval); inline styles are
# allowed (Monaco and the palette use them). Frames: only the preview origins. Nobody but
# the portal frames a portal page. Forms post to the portal (and sign-out continues to the
# identity provider). Preview and app origins are served by the relay, never through this.
_portal_scheme = PORTAL_URL.split("://", 1)[0]
_preview_frames = f"{_portal_scheme}://*.{PREVIEW_DOMAIN}:*"
_sso_origin = "/".join(OIDC_ISSUER.split("/")[:3]) if OIDC_ISSUER else ""
CONTENT_SECURITY_POLICY = {
    # The load balancers' health check is JSON, not a page (browser tests also build
    # their own portal-origin test pages on it).
    "EXCLUDE_URL_PREFIXES": ["/healthz"],
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "https:"],  # organisation logos may live elsewhere
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],  # CSP 3: 'self' covers the same host's ws:/wss: too
        "worker-src": ["'self'", "blob:"],  # the editor's language workers
        "frame-src": [_preview_frames],
        "frame-ancestors": ["'self'"],
        "form-action": ["'self'", *([_sso_origin] if _sso_origin else [])],
        "base-uri": ["'self'"],
        "object-src": ["'none'"],
    },
}
# Powerful browser features no portal page uses (core.middleware.PermissionsPolicyMiddleware).
PERMISSIONS_POLICY = (
    "camera=(), microphone=(), geolocation=(), payment=(), usb=(), serial=(), "
    "bluetooth=(), magnetometer=(), gyroscope=(), accelerometer=()"
)

# --- API -----------------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.api.authentication.ApiTokenAuthentication",
        "accounts.api.bearer.OIDCBearerAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["core.api.permissions.IsActiveMember"],
    "DEFAULT_THROTTLE_CLASSES": ["core.api.throttles.OrganizationApiRateThrottle"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": None,
    "EXCEPTION_HANDLER": "core.api.exceptions.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "core.api.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Enclave API",
    "DESCRIPTION": "Self-hosted portal for governed AI app building and remote development.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    # Served by the portal itself: a self-hosted product loads nothing from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- static files, i18n --------------------------------------------------------------------

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "core.storage.PortalStaticStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG
LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- transport security --------------------------------------------------------------------

SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("BEHIND_TLS_PROXY", default=False) else None
)
_https = PORTAL_URL.startswith("https://")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=_https)
# Browsers treat HTTPS and loopback (localhost, *.localhost, 127.0.0.1) as secure: there
# the portal's cookies are `__Host-` cookies (Secure, Path=/, no Domain), which no page of
# another host — a previewed app on a sibling domain — can set or overwrite (no cookie
# tossing). Any other plain-HTTP host (a trial on a LAN name) gets plain names.
COOKIES_HOST_ONLY_PREFIX = (
    _https
    or _portal_host in ("localhost", "127.0.0.1", "::1")
    or (_portal_host.endswith(".localhost"))
)
_cookie_prefix = "__Host-" if COOKIES_HOST_ONLY_PREFIX else ""
SESSION_COOKIE_SECURE = COOKIES_HOST_ONLY_PREFIX
CSRF_COOKIE_SECURE = COOKIES_HOST_ONLY_PREFIX
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_NAME = f"{_cookie_prefix}enclave_session"
CSRF_COOKIE_NAME = f"{_cookie_prefix}enclave_csrftoken"
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000 if _https else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = _https
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
# Preload-list submission is the operator's opt-in (SECURE_HSTS_PRELOAD), not a defect.
SILENCED_SYSTEM_CHECKS = ["security.W021"]
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# --- logging -------------------------------------------------------------------------------

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    # Terminal tickets travel in query strings: no logged path keeps its query string.
    "filters": {"redact_query": {"()": "core.logging.RedactQueryStrings"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        "null": {"class": "logging.NullHandler"},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "uvicorn.error": {"filters": ["redact_query"]},
        "uvicorn.access": {"filters": ["redact_query"]},
        "django.request": {"filters": ["redact_query"]},
        # Scanners send random Host headers; the 400 answer is enough, no traceback.
        "django.security.DisallowedHost": {"handlers": ["null"], "propagate": False},
    },
}

# --- data plane ----------------------------------------------------------------------------

CONTROL_PLANE = "workspaces.controlplane.agent.AgentControlPlane"
# Seconds an RPC to an agent may take before the call fails with `cluster_unavailable`.
AGENT_RPC_TIMEOUT = env.float("AGENT_RPC_TIMEOUT", default=10.0)
# Seconds a workspace listing stays cached (agent events invalidate it sooner).
DISCOVERY_CACHE_SECONDS = env.int("DISCOVERY_CACHE_SECONDS", default=5)
