"""Members of the organisation, their tags and personal API tokens."""

from __future__ import annotations

import secrets
import zoneinfo

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from accounts.choices import ExperienceLevel, MemberStatus, Role
from core.crypto import EncryptedTextField, hash_secret
from core.validators import env_name_problem, hex_colour


def normalize_email(email: str) -> str:
    """The identity form of an e-mail address: trimmed and lowercased as a whole."""
    return (email or "").strip().lower()


class UserManager(BaseUserManager["User"]):
    """Creates members by e-mail; the e-mail is normalised before it is stored."""

    use_in_migrations = True

    def get_by_natural_key(self, username: str) -> User:
        return self.get(email=normalize_email(username))

    def create_user(self, email: str, password: str | None = None, **fields) -> User:
        email = normalize_email(email)
        if not email:
            raise ValueError("An e-mail address is required.")
        user = self.model(email=email, **fields)
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.full_clean(exclude=["password"])
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **fields) -> User:
        fields["role"] = Role.ADMIN
        fields.setdefault("status", MemberStatus.ACTIVE)
        return self.create_user(email, password, **fields)


def validate_timezone(value: str) -> None:
    """An IANA time zone name such as Europe/Paris."""
    if not value:
        return
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(
            f"{value!r} is not a time zone; use a name such as Europe/Paris.",
            code="invalid_timezone",
        ) from exc


class User(AbstractBaseUser):
    """A member, identified by a unique, case-insensitive e-mail address.

    Authorisation is the role: `admin` (platform engineer, reaches the admin console and
    every admin endpoint) or `user` (builder). `pending` members were invited and have
    not signed in yet. There are no per-object Django permissions: an active admin may
    do everything in the console, nobody else may enter it.
    """

    email = models.EmailField(unique=True)
    full_name = models.CharField(max_length=150, blank=True)
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.USER)
    status = models.CharField(
        max_length=10, choices=MemberStatus.choices, default=MemberStatus.ACTIVE
    )
    is_active = models.BooleanField(
        default=True, help_text="Inactive members cannot sign in or use the API."
    )
    invited_at = models.DateTimeField(null=True, blank=True)
    invited_by = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="invitees"
    )
    date_joined = models.DateTimeField(default=timezone.now)
    # The builder profile, which the AI tools of the member's workspaces receive
    # (RDE_USER_PROFILE) so they answer at the member's level, in their language.
    experience_level = models.CharField(
        max_length=20, choices=ExperienceLevel.choices, default=ExperienceLevel.FAMILIAR
    )
    preferred_language = models.CharField(
        max_length=40, blank=True, help_text="The language the AI answers in, e.g. English."
    )
    role_title = models.CharField(max_length=80, blank=True, help_text="e.g. Finance analyst.")
    timezone = models.CharField(max_length=64, blank=True, validators=[validate_timezone])

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        ordering = ["email"]
        constraints = [
            models.UniqueConstraint(Lower("email"), name="user_email_ci_unique"),
            models.CheckConstraint(
                condition=models.Q(role__in=Role.values), name="user_role_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=MemberStatus.values), name="user_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.email

    def clean(self) -> None:
        super().clean()
        self.email = normalize_email(self.email)

    @property
    def is_admin(self) -> bool:
        return self.is_active and self.role == Role.ADMIN

    @property
    def is_staff(self) -> bool:
        """Django admin entry: active admins only."""
        return self.is_admin

    @property
    def is_superuser(self) -> bool:
        return self.is_admin

    def has_perm(self, perm: str, obj: object = None) -> bool:
        return self.is_admin

    def has_perms(self, perm_list, obj: object = None) -> bool:
        return self.is_admin

    def has_module_perms(self, app_label: str) -> bool:
        return self.is_admin

    @property
    def profile(self) -> dict[str, str]:
        """The builder profile as the AI tools receive it (RDE_USER_PROFILE)."""
        return {
            "experience_level": self.experience_level,
            "preferred_language": self.preferred_language,
            "role_title": self.role_title,
            "timezone": self.timezone,
        }

    def get_full_name(self) -> str:
        return self.full_name or self.email

    def get_short_name(self) -> str:
        return self.full_name.split(" ")[0] if self.full_name else self.email


tag_name = RegexValidator(
    r"^[a-z0-9][a-z0-9 _.-]{0,39}$",
    message="Tag names are 1-40 lowercase letters, digits, spaces, '.', '_' or '-'.",
    code="invalid_tag",
)


class UserTag(models.Model):
    """A label a member defines to organise their workspaces (unique per member)."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="tags")
    name = models.CharField(max_length=40, validators=[tag_name])
    color = models.CharField(max_length=7, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["user", "name"]
        constraints = [
            models.UniqueConstraint(fields=["user", "name"], name="usertag_unique_per_user")
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        super().clean()
        self.name = (self.name or "").strip().lower()
        if self.color:
            hex_colour(self.color)


# A public marker at the start of every personal token (shown in the console), no secret.
API_TOKEN_PREFIX = "enc_"  # nosec B105


class ApiToken(models.Model):
    """A personal API token: shown once at creation, stored as a SHA-256 hash.

    The first characters (`prefix`) are kept in the clear so a member can tell tokens
    apart. A token past `expires_at`, revoked, or whose member is inactive authenticates
    nobody.
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=80)
    prefix = models.CharField(max_length=16, editable=False)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def generate() -> tuple[str, str, str]:
        """A new raw token with its display prefix and hash."""
        raw = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
        return raw, raw[:12], hash_secret(raw)

    @property
    def is_usable(self) -> bool:
        return self.revoked_at is None and self.expires_at > timezone.now()

    def clean(self) -> None:
        super().clean()
        if self.expires_at and self._state.adding and self.expires_at <= timezone.now():
            raise ValidationError({"expires_at": "The expiry must be in the future."})


INVITATION_PREFIX = "inv_"


class Invitation(models.Model):
    """A one-time link that lets an invited (pending) member in: stored as a SHA-256 hash.

    Usable once, until `expires_at`, unless a newer link superseded it (`revoked_at`) or
    the member became active another way (single sign-on). The raw token (256 random
    bits, so unguessable without a signature) is only ever in the e-mail and in the page
    that shows a copied link once.
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="invitations")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    emailed = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"invitation of {self.user_id} ({self.created_at:%Y-%m-%d})"

    @staticmethod
    def generate() -> tuple[str, str]:
        """A new raw token and its hash."""
        raw = INVITATION_PREFIX + secrets.token_urlsafe(32)
        return raw, hash_secret(raw)

    @property
    def is_open(self) -> bool:
        return self.used_at is None and self.revoked_at is None


MAX_BUILDER_SECRETS = 50
MAX_SECRET_VALUE = 16 * 1024


def validate_secret_name(value: str) -> None:
    problem = env_name_problem(value)
    if problem:
        raise ValidationError(problem, code="invalid_name")


class BuilderSecret(models.Model):
    """A member's personal secret (e.g. GIT_TOKEN), injected into their workspaces only.

    The value is encrypted at rest (AES-256-GCM, like every other secret) and is
    write-only: no page, API response or audit entry ever shows it.
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="secrets")
    name = models.CharField(max_length=100, validators=[validate_secret_name])
    value = EncryptedTextField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["user", "name"]
        constraints = [
            models.UniqueConstraint(fields=["user", "name"], name="buildersecret_unique_per_user")
        ]

    def __str__(self) -> str:
        return f"{self.name} of {self.user_id}"
