"""Reads of members, tags and API tokens scoped by owner: the only place they are filtered."""

from __future__ import annotations

from importlib import import_module

from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY
from django.db.models import Q, QuerySet
from django.utils.crypto import constant_time_compare

from accounts.models import ApiToken, BuilderSecret, User, UserTag


def user_tags_for(user: User) -> QuerySet[UserTag]:
    """`user`'s own tags; nobody else's tag is ever in it."""
    return UserTag.objects.filter(user=user).order_by("name")


def user_tag_search(*, owner_email: str | None = None) -> QuerySet[UserTag]:
    """Every member's tags (for admins), optionally only one member's, by e-mail."""
    tags = UserTag.objects.select_related("user").order_by("user__email", "name")
    if owner_email:
        tags = tags.filter(user__email__iexact=owner_email.strip())
    return tags


def orphaned_emails(emails) -> set[str]:
    """Those of ``emails`` (normalised) that belong to no active member: the owner was
    suspended or is gone. Their workspaces keep running; admins see them as orphaned."""
    wanted = {e.strip().lower() for e in emails if e}
    if not wanted:
        return set()
    active = set(
        User.objects.filter(email__in=wanted, is_active=True).values_list("email", flat=True)
    )
    return wanted - {e.lower() for e in active}


def api_tokens_for(user: User) -> QuerySet[ApiToken]:
    """`user`'s own API tokens (revoked and expired included), newest first."""
    return ApiToken.objects.filter(user=user).order_by("-created_at")


def member_search(
    *, role: str | None = None, status: str | None = None, q: str | None = None
) -> QuerySet[User]:
    """Every member, optionally filtered by role, status and a text in e-mail or name."""
    members = User.objects.all().order_by("email")
    if role:
        members = members.filter(role=role)
    if status:
        members = members.filter(status=status)
    if q:
        members = members.filter(Q(email__icontains=q) | Q(full_name__icontains=q))
    return members


def session_member(session_key: str | None) -> User | None:
    """The active member a browser session still signs in, or None (signed out, expired,
    suspended, or its password changed since). Only reads: the session is left as it is,
    for the member's next request to end."""
    session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    user_id = session.get(SESSION_KEY)
    user = User.objects.filter(pk=user_id, is_active=True).first() if user_id else None
    session_hash = session.get(HASH_SESSION_KEY) or ""
    if user is None or not constant_time_compare(session_hash, user.get_session_auth_hash()):
        return None
    return user


def builder_secrets_for(user: User) -> QuerySet[BuilderSecret]:
    """The member's personal secrets (callers show names and dates only)."""
    return BuilderSecret.objects.filter(user=user).order_by("name")
