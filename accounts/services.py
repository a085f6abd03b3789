"""Writes of members, tags and API tokens. Each service owns its transaction and audit entry."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.access import member_access_end
from accounts.choices import MemberStatus, Role
from accounts.models import (
    MAX_BUILDER_SECRETS,
    MAX_SECRET_VALUE,
    ApiToken,
    BuilderSecret,
    User,
    UserTag,
    normalize_email,
    validate_secret_name,
)
from audit.choices import AuditOutcome
from audit.services import audit_record
from core import ratelimit
from core.errors import ApplicationError

# Sign-in protection (both password forms): failures are counted per account and per
# client IP in a window that opens at the first failure; once either count reaches its
# limit, every attempt through it is refused, right password or not, until it closes.
LOGIN_WINDOW_SECONDS = 15 * 60
LOGIN_FAILURES_PER_ACCOUNT = 5
LOGIN_FAILURES_PER_IP = 20


def member_invite(*, email: str, role: str = Role.USER, actor: User | None) -> User:
    """Invite a member: a `pending` account without a password, until they first sign in."""
    email = normalize_email(email)
    if User.objects.filter(email=email).exists():
        raise ApplicationError("This member already exists.", code="member_exists", status=409)
    with transaction.atomic():
        user = User.objects.create_user(
            email,
            role=role,
            status=MemberStatus.PENDING,
            invited_at=timezone.now(),
            invited_by=actor if actor is not None and actor.is_authenticated else None,
        )
        audit_record(
            action="member.invite",
            actor=actor,
            target_type="user",
            target_id=user.pk,
            details={"email": email, "role": role},
        )
    return user


def member_set_role(*, user: User, role: str, actor: User | None) -> User:
    """Promote to `admin` or demote to `user` (audited).

    The last active admin cannot be demoted: the console would have no way back in.
    """
    if role not in Role.values:
        raise ApplicationError(f"Unknown role {role!r}.", code="invalid_role")
    with transaction.atomic():
        if role == Role.USER and user.role == Role.ADMIN:
            other_admins = (
                User.objects.select_for_update()
                .filter(role=Role.ADMIN, is_active=True)
                .exclude(pk=user.pk)
            )
            if not other_admins.exists():
                raise ApplicationError(
                    "The last active admin cannot be demoted.", code="last_admin", status=409
                )
        previous = user.role
        User.objects.filter(pk=user.pk).update(role=role)
        user.role = role
        audit_record(
            action="member.set_role",
            actor=actor,
            target_type="user",
            target_id=user.pk,
            details={"email": user.email, "from": previous, "to": role},
        )
    return user


def member_set_active(*, user: User, active: bool, actor: User | None) -> User:
    """Suspend or reactivate a member (audited).

    A suspended member's sign-in sessions, API tokens and unused tickets stop working, and
    their open terminals and preview sessions are closed at once with reason
    `member_suspended` (through `accounts.access`); their workspaces keep running.
    """
    with transaction.atomic():
        if not active and user.role == Role.ADMIN:
            others = User.objects.filter(role=Role.ADMIN, is_active=True).exclude(pk=user.pk)
            if not others.exists():
                raise ApplicationError(
                    "The last active admin cannot be suspended.", code="last_admin", status=409
                )
        User.objects.filter(pk=user.pk).update(is_active=active)
        user.is_active = active
        audit_record(
            action="member.activate" if active else "member.suspend",
            actor=actor,
            target_type="user",
            target_id=user.pk,
            details={"email": user.email},
        )
        if not active:
            member_access_end(user_id=user.pk, actor=actor)
    return user


def member_mark_active(*, user: User) -> None:
    """A pending member signed in for the first time: they become `active`."""
    if user.status == MemberStatus.PENDING:
        User.objects.filter(pk=user.pk).update(status=MemberStatus.ACTIVE)
        user.status = MemberStatus.ACTIVE


def _login_account_key(email: str) -> str:
    # Hashed: cache keys stay short and valid whatever was typed, and hold no address.
    return hashlib.sha256(normalize_email(email).encode()).hexdigest()


def login_wait(*, email: str, ip: str) -> int | None:
    """Seconds before a sign-in for `email` from `ip` may be tried, or None if it may now.

    Reads the shared counters only; it records nothing.
    """
    waits = [
        ratelimit.failure_wait("login-ip", ip, LOGIN_FAILURES_PER_IP, LOGIN_WINDOW_SECONDS),
        ratelimit.failure_wait(
            "login-account",
            _login_account_key(email),
            LOGIN_FAILURES_PER_ACCOUNT,
            LOGIN_WINDOW_SECONDS,
        ),
    ]
    waits = [wait for wait in waits if wait is not None]
    return max(waits) if waits else None


def _login_audit(*, action: str, outcome: str, email: str, ip: str, details: dict) -> None:
    email = normalize_email(email)[:254]
    user_id = None
    if email:
        user_id = User.objects.filter(email=email).values_list("pk", flat=True).first()
    audit_record(
        action=action,
        target_type="user" if user_id else "",
        target_id=user_id or "",
        ip=ip,
        outcome=outcome,
        details={"email": email, **details},
    )


def login_failure_record(*, email: str, ip: str, via: str) -> None:
    """A sign-in failed (wrong credentials, or an account that may not sign in there).

    Counts the failure against the account and the IP, and audits `member.login_failed`
    with the e-mail tried (never the password) and the client IP.
    """
    ratelimit.failure_add("login-account", _login_account_key(email), LOGIN_WINDOW_SECONDS)
    ratelimit.failure_add("login-ip", ip, LOGIN_WINDOW_SECONDS)
    _login_audit(
        action="member.login_failed",
        outcome=AuditOutcome.FAILURE,
        email=email,
        ip=ip,
        details={"via": via},
    )


def login_refusal_record(*, email: str, ip: str, via: str, retry_after: int) -> None:
    """A sign-in was refused unchecked because of earlier failures: audits
    `member.login_throttled` (denied). The refusal itself is not counted as a failure."""
    _login_audit(
        action="member.login_throttled",
        outcome=AuditOutcome.DENIED,
        email=email,
        ip=ip,
        details={"via": via, "retry_after": retry_after},
    )


def login_success_record(*, user: User, ip: str, via: str) -> None:
    """A member signed in: the account's failure count restarts, a first sign-in turns an
    invited member active, and `member.login` is audited with the client IP."""
    ratelimit.failure_reset("login-account", _login_account_key(user.email))
    member_mark_active(user=user)
    audit_record(
        action="member.login",
        actor=user,
        target_type="user",
        target_id=user.pk,
        ip=ip,
        details={"via": via},
    )


def api_token_issue(
    *, user: User, name: str, days: int | None = None, actor: User | None = None
) -> tuple[ApiToken, str]:
    """Create a personal API token; return it with the raw value, which is never shown again."""
    days = settings.API_TOKEN_DEFAULT_DAYS if days is None else days
    if not 1 <= days <= 3650:
        raise ApplicationError("Token lifetime must be 1 to 3650 days.", code="invalid_expiry")
    raw, prefix, digest = ApiToken.generate()
    token = ApiToken(
        user=user,
        name=(name or "token").strip()[:80],
        prefix=prefix,
        token_hash=digest,
        expires_at=timezone.now() + timedelta(days=days),
    )
    token.full_clean()
    with transaction.atomic():
        token.save()
        audit_record(
            action="api_token.issue",
            actor=actor or user,
            target_type="api_token",
            target_id=token.pk,
            details={"user": user.email, "name": token.name, "prefix": prefix, "days": days},
        )
    return token, raw


def api_token_revoke(*, token: ApiToken, actor: User | None) -> ApiToken:
    """Revoke a token at once (audited)."""
    with transaction.atomic():
        ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        token.refresh_from_db()
        audit_record(
            action="api_token.revoke",
            actor=actor,
            target_type="api_token",
            target_id=token.pk,
            details={"user": token.user.email, "prefix": token.prefix},
        )
    return token


def user_tag_create(*, user: User, name: str, color: str = "") -> UserTag:
    """Create one of `user`'s tags (unique name per member)."""
    tag = UserTag(user=user, name=(name or "").strip().lower(), color=color)
    tag.full_clean()
    tag.save()
    return tag


def member_update(
    *,
    user: User,
    actor: User | None,
    role: str | None = None,
    is_active: bool | None = None,
    full_name: str | None = None,
) -> User:
    """Apply an admin's edit of a member in one transaction: all of it or none of it.

    Role and activity go through `member_set_role` / `member_set_active` (so the
    last-admin guard holds, 409 `last_admin`); a new display name is validated and
    audited here. Unchanged values are not touched and not audited.
    """
    with transaction.atomic():
        if full_name is not None and full_name != user.full_name:
            user.full_name = full_name.strip()
            user.full_clean(exclude=["password"], validate_unique=False)
            User.objects.filter(pk=user.pk).update(full_name=user.full_name)
            audit_record(
                action="member.rename",
                actor=actor,
                target_type="user",
                target_id=user.pk,
                details={"email": user.email},
            )
        if role is not None and role != user.role:
            member_set_role(user=user, role=role, actor=actor)
        if is_active is not None and is_active != user.is_active:
            member_set_active(user=user, active=is_active, actor=actor)
    return user


def user_tags_ensure(*, user: User, names: list[str]) -> list[UserTag]:
    """`user`'s tags of these `names`, creating (validated) the ones that do not exist yet."""
    tags = []
    with transaction.atomic():
        for name in names:
            tag = UserTag.objects.filter(user=user, name=name.strip().lower()).first()
            tags.append(tag or user_tag_create(user=user, name=name))
    return tags


def user_tag_delete(*, tag: UserTag) -> None:
    """Delete one of a member's tags; its workspace assignments go with it.

    Callers pass a tag already scoped to its owner (`accounts.selectors.user_tags_for`).
    """
    tag.delete()


PROFILE_FIELDS = ("experience_level", "preferred_language", "role_title", "timezone")


def profile_update(*, user: User, changes: dict[str, str], ip: str | None = None) -> User:
    """Update the member's builder profile (validated; audited with the changed fields).

    It reaches the AI tools of their workspaces (RDE_USER_PROFILE) at each one's next
    restart.
    """
    unknown = set(changes) - set(PROFILE_FIELDS)
    if unknown:
        raise ValueError(f"not profile fields: {sorted(unknown)}")
    changed = [name for name, value in changes.items() if getattr(user, name) != value]
    if not changed:
        return user
    for name in changed:
        setattr(user, name, changes[name])
    user.full_clean(exclude=["password"], validate_unique=False)
    with transaction.atomic():
        User.objects.filter(pk=user.pk).update(**{name: changes[name] for name in changed})
        audit_record(
            action="member.profile",
            actor=user,
            target_type="user",
            target_id=user.pk,
            ip=ip,
            details={"changed": sorted(changed)},
        )
    return user


def builder_secret_set(
    *, user: User, name: str, value: str, ip: str | None = None
) -> BuilderSecret:
    """Store (or replace) one of the member's personal secrets, encrypted at rest.

    Audited as "set" with the name only. Refuses (400 `invalid`) a name that is not an
    environment variable name or is reserved, an empty or oversized value, and past
    `MAX_BUILDER_SECRETS` secrets (409 `secret_limit_reached`).
    """
    name = (name or "").strip()
    if not isinstance(value, str) or not value or len(value) > MAX_SECRET_VALUE:
        raise ApplicationError(
            "Invalid input.",
            code="invalid",
            extra={"errors": {"value": [f"Give a value of 1 to {MAX_SECRET_VALUE} characters."]}},
        )
    if "\x00" in value:
        raise ApplicationError(
            "Invalid input.",
            code="invalid",
            extra={"errors": {"value": ["A value cannot contain a NUL character."]}},
        )
    try:
        validate_secret_name(name)
    except ValidationError as exc:
        raise ApplicationError(
            "Invalid input.", code="invalid", extra={"errors": {"name": exc.messages}}
        ) from exc
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=user.pk).first()  # serialise the count
        secret = BuilderSecret.objects.filter(user=user, name=name).first()
        if secret is None:
            if BuilderSecret.objects.filter(user=user).count() >= MAX_BUILDER_SECRETS:
                raise ApplicationError(
                    f"You already have {MAX_BUILDER_SECRETS} secrets; delete one first.",
                    code="secret_limit_reached",
                    status=409,
                )
            secret = BuilderSecret(user=user, name=name)
        secret.value = value
        secret.save()
        audit_record(
            action="member.secret_set",
            actor=user,
            target_type="user",
            target_id=user.pk,
            ip=ip,
            details={"name": name},
        )
    return secret


def builder_secret_clear(*, user: User, name: str, ip: str | None = None) -> bool:
    """Delete one of the member's secrets; False when they had none of that name."""
    with transaction.atomic():
        deleted, _ = BuilderSecret.objects.filter(user=user, name=name).delete()
        if deleted:
            audit_record(
                action="member.secret_cleared",
                actor=user,
                target_type="user",
                target_id=user.pk,
                ip=ip,
                details={"name": name},
            )
    return bool(deleted)
