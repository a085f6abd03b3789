"""Writes of members, tags and API tokens. Each service owns its transaction and audit entry."""

from __future__ import annotations

import hashlib
import logging
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from accounts.access import member_access_end
from accounts.choices import MemberStatus, Role
from accounts.models import (
    MAX_BUILDER_SECRETS,
    MAX_SECRET_VALUE,
    ApiToken,
    BuilderSecret,
    Invitation,
    User,
    UserTag,
    normalize_email,
    validate_secret_name,
)
from audit.choices import AuditOutcome
from audit.services import audit_record
from core import ratelimit
from core.crypto import hash_secret
from core.errors import ApplicationError
from core.models import OrganizationSettings

logger = logging.getLogger(__name__)

# Sign-in protection (both password forms): failures are counted per account and per
# client IP in a window that opens at the first failure; once either count reaches its
# limit, every attempt through it is refused, right password or not, until it closes.
LOGIN_WINDOW_SECONDS = 15 * 60
LOGIN_FAILURES_PER_ACCOUNT = 5
LOGIN_FAILURES_PER_IP = 20


def member_invite(*, email: str, role: str = Role.USER, actor: User | None) -> User:
    """Invite a member: a `pending` account without a password, until they first sign in,
    and an invitation e-mail with a one-time link (`invitation_issue`).

    The member exists even when the e-mail cannot be sent: `user.invitation_emailed` says
    whether it was, and an admin can copy a new link instead.
    """
    user = member_create(email=email, role=role, actor=actor)
    _, _, emailed = invitation_issue(user=user, actor=actor)
    user.invitation_emailed = emailed
    return user


def member_create(*, email: str, role: str, actor: User | None) -> User:
    """A `pending` member without a password and without an invitation e-mail (self-sign-up
    through single sign-on, which makes them active at once); audited as an invitation."""
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
    """A pending member signed in for the first time: they become `active`, and any
    invitation link still open stops working."""
    if user.status == MemberStatus.PENDING:
        with transaction.atomic():
            User.objects.filter(pk=user.pk).update(status=MemberStatus.ACTIVE)
            Invitation.objects.filter(user=user, used_at=None, revoked_at=None).update(
                revoked_at=timezone.now()
            )
        user.status = MemberStatus.ACTIVE


# --- invitations ------------------------------------------------------------------------------


def invitation_url(raw: str) -> str:
    return settings.PORTAL_URL + reverse("invitation", args=[raw])


def invitation_issue(
    *, user: User, actor: User | None, send: bool = True
) -> tuple[Invitation, str, bool]:
    """A new one-time link for a pending member, replacing any earlier one; e-mailed
    unless ``send`` is false (the console's "Copy invitation link").

    Returns the invitation, its URL (the only place the raw token is) and whether the
    e-mail went out. A failed e-mail is logged (never with the link) and audited; the
    link stays valid. 409 ``member_not_pending`` unless the member is pending and active.
    """
    if user.status != MemberStatus.PENDING or not user.is_active:
        raise ApplicationError(
            "Only a pending member (invited, not yet signed in) has an invitation.",
            code="member_not_pending",
            status=409,
        )
    raw, digest = Invitation.generate()
    now = timezone.now()
    with transaction.atomic():
        Invitation.objects.filter(user=user, used_at=None, revoked_at=None).update(revoked_at=now)
        invitation = Invitation.objects.create(
            user=user,
            token_hash=digest,
            created_by=actor if actor is not None and actor.is_authenticated else None,
            expires_at=now + timedelta(days=settings.INVITATION_DAYS),
        )
    url = invitation_url(raw)
    emailed = False
    if send:
        emailed = _invitation_send(user=user, url=url, expires_at=invitation.expires_at)
        if emailed:
            Invitation.objects.filter(pk=invitation.pk).update(emailed=True)
            invitation.emailed = True
    audit_record(
        action="member.invitation_sent" if send else "member.invitation_link",
        actor=actor,
        target_type="user",
        target_id=user.pk,
        outcome=AuditOutcome.SUCCESS if emailed or not send else AuditOutcome.FAILURE,
        details={
            "email": user.email,
            "expires_at": invitation.expires_at.isoformat(),
            **({"emailed": emailed} if send else {}),
        },
    )
    return invitation, url, emailed


def _invitation_send(*, user: User, url: str, expires_at) -> bool:
    name = OrganizationSettings.load().portal_name
    context = {"name": name, "url": url, "email": user.email, "expires_at": expires_at}
    try:
        send_mail(
            subject=f"You are invited to {name}",
            message=render_to_string("registration/invitation_email.txt", context),
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=[user.email],
        )
    except (OSError, ValueError) as exc:  # smtplib's errors are OSErrors
        logger.warning("invitation e-mail to member %s not sent: %s", user.pk, type(exc).__name__)
        return False
    return True


def invitation_find(raw: str) -> Invitation:
    """The open invitation of a link, or 404 ``invitation_invalid`` / 410
    ``invitation_used`` / ``invitation_expired``."""
    invitation = (
        Invitation.objects.select_related("user").filter(token_hash=hash_secret(raw)).first()
        if raw.startswith("inv_")
        else None
    )
    if invitation is None or not invitation.user.is_active:
        raise ApplicationError(
            "This invitation link is not valid.", code="invitation_invalid", status=404
        )
    if not invitation.is_open or invitation.user.status != MemberStatus.PENDING:
        raise ApplicationError(
            "This invitation link was already used or replaced by a newer one.",
            code="invitation_used",
            status=410,
        )
    if invitation.expires_at <= timezone.now():
        raise ApplicationError(
            "This invitation link has expired.", code="invitation_expired", status=410
        )
    return invitation


def local_password_allowed(user: User) -> bool:
    """Whether ``user`` may sign in with a password: admins always (the break-glass
    account), builders unless the organisation turned local passwords off."""
    return user.role == Role.ADMIN or settings.LOCAL_PASSWORDS_FOR_BUILDERS


def invitation_accept(*, raw: str, password: str, ip: str | None) -> User:
    """Redeem a link by setting a password: once, atomically (two tabs submitting the
    same link: one wins, the other gets 410). The member becomes active."""
    with transaction.atomic():
        invitation = invitation_find(raw)
        user = invitation.user
        if not local_password_allowed(user):
            raise ApplicationError(
                "Your organisation signs you in with its single sign-on, not a password.",
                code="local_password_disabled",
                status=403,
            )
        try:
            validate_password(password, user)
        except ValidationError as exc:
            raise ApplicationError(
                " ".join(exc.messages), code="invalid", extra={"errors": {"password": exc.messages}}
            ) from exc
        now = timezone.now()
        won = Invitation.objects.filter(
            pk=invitation.pk, used_at=None, revoked_at=None, expires_at__gt=now
        ).update(used_at=now)
        if not won:
            raise ApplicationError(
                "This invitation link was already used.", code="invitation_used", status=410
            )
        user.set_password(password)
        user.save(update_fields=["password"])
        member_mark_active(user=user)
        audit_record(
            action="member.invitation_accepted",
            actor=user,
            target_type="user",
            target_id=user.pk,
            ip=ip,
            details={"email": user.email},
        )
    return user


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
    cap = settings.API_TOKEN_MAX_DAYS
    days = min(settings.API_TOKEN_DEFAULT_DAYS, cap) if days is None else days
    if not 1 <= days <= cap:
        raise ApplicationError(
            f"Token lifetime must be 1 to {cap} days (the organisation's limit).",
            code="invalid_expiry",
        )
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
