"""Writes of members, tags and API tokens. Each service owns its transaction and audit entry."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.choices import MemberStatus, Role
from accounts.models import ApiToken, User, UserTag, normalize_email
from audit.services import audit_record
from core.errors import ApplicationError


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
    """Suspend or reactivate a member; a suspended member's tokens and sessions stop working."""
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
    return user


def member_mark_active(*, user: User) -> None:
    """A pending member signed in for the first time: they become `active`."""
    if user.status == MemberStatus.PENDING:
        User.objects.filter(pk=user.pk).update(status=MemberStatus.ACTIVE)
        user.status = MemberStatus.ACTIVE


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
