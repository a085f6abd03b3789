"""Member, tag and API token services, and API token authentication through DRF."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.test import APIRequestFactory

from accounts.api.authentication import ApiTokenAuthentication
from accounts.choices import MemberStatus, Role
from accounts.models import ApiToken, User
from accounts.services import (
    api_token_issue,
    api_token_revoke,
    member_invite,
    member_mark_active,
    member_set_active,
    member_set_role,
    user_tag_create,
)
from accounts.tests.factories import AdminFactory, ApiTokenFactory
from audit.models import AuditEvent
from audit.services import audit_verify_chain
from core.crypto import hash_secret
from core.errors import ApplicationError

pytestmark = pytest.mark.django_db


def audit(action: str) -> AuditEvent:
    return AuditEvent.objects.get(action=action)


# --- member_invite -------------------------------------------------------------------------


def test_member_invite_creates_a_pending_member_without_password(admin_member):
    user = member_invite(email="  New.Person@Example.COM ", role=Role.USER, actor=admin_member)
    user.refresh_from_db()
    assert user.email == "new.person@example.com"
    assert (user.status, user.role) == (MemberStatus.PENDING, Role.USER)
    assert not user.has_usable_password()
    assert user.invited_by == admin_member
    assert user.invited_at is not None
    event = audit("member.invite")
    assert event.actor_email == admin_member.email
    assert event.target_id == str(user.pk)
    assert event.details == {"email": "new.person@example.com", "role": "user"}


def test_member_invite_can_invite_an_admin(admin_member):
    assert member_invite(email="ops@example.com", role=Role.ADMIN, actor=admin_member).is_admin


@pytest.mark.parametrize("email", ["builder@example.com", "BUILDER@example.com"])
def test_member_invite_refuses_an_existing_member(admin_member, member, email):
    with pytest.raises(ApplicationError) as excinfo:
        member_invite(email=email, actor=admin_member)
    assert (excinfo.value.code, excinfo.value.status) == ("member_exists", 409)
    assert User.objects.count() == 2
    assert not AuditEvent.objects.filter(action="member.invite").exists()


def test_member_mark_active_activates_a_pending_member(admin_member):
    user = member_invite(email="p@example.com", actor=admin_member)
    member_mark_active(user=user)
    user.refresh_from_db()
    assert user.status == MemberStatus.ACTIVE


# --- roles ---------------------------------------------------------------------------------


def test_member_set_role_promotes_and_demotes_with_audit(admin_member, member):
    member_set_role(user=member, role=Role.ADMIN, actor=admin_member)
    member.refresh_from_db()
    assert member.role == Role.ADMIN
    member_set_role(user=member, role=Role.USER, actor=admin_member)
    member.refresh_from_db()
    assert member.role == Role.USER
    details = [
        e.details for e in AuditEvent.objects.filter(action="member.set_role").order_by("id")
    ]
    assert details == [
        {"email": member.email, "from": "user", "to": "admin"},
        {"email": member.email, "from": "admin", "to": "user"},
    ]


def test_the_last_active_admin_cannot_be_demoted(admin_member):
    with pytest.raises(ApplicationError) as excinfo:
        member_set_role(user=admin_member, role=Role.USER, actor=admin_member)
    assert (excinfo.value.code, excinfo.value.status) == ("last_admin", 409)
    admin_member.refresh_from_db()
    assert admin_member.role == Role.ADMIN
    assert not AuditEvent.objects.exists()


def test_an_inactive_admin_does_not_count_as_another_admin(admin_member):
    AdminFactory(is_active=False)
    with pytest.raises(ApplicationError, match="last active admin"):
        member_set_role(user=admin_member, role=Role.USER, actor=admin_member)


def test_an_admin_can_be_demoted_when_another_is_active(admin_member):
    other = AdminFactory()
    member_set_role(user=admin_member, role=Role.USER, actor=other)
    admin_member.refresh_from_db()
    assert admin_member.role == Role.USER


def test_member_set_role_refuses_an_unknown_role(admin_member, member):
    with pytest.raises(ApplicationError) as excinfo:
        member_set_role(user=member, role="owner", actor=admin_member)
    assert excinfo.value.code == "invalid_role"


# --- activity ------------------------------------------------------------------------------


def test_member_set_active_suspends_and_reactivates_with_audit(admin_member, member):
    member_set_active(user=member, active=False, actor=admin_member)
    member.refresh_from_db()
    assert member.is_active is False
    member_set_active(user=member, active=True, actor=admin_member)
    member.refresh_from_db()
    assert member.is_active is True
    assert list(
        AuditEvent.objects.filter(target_id=str(member.pk))
        .order_by("id")
        .values_list("action", flat=True)
    ) == ["member.suspend", "member.activate"]


def test_the_last_active_admin_cannot_be_suspended(admin_member):
    with pytest.raises(ApplicationError) as excinfo:
        member_set_active(user=admin_member, active=False, actor=admin_member)
    assert excinfo.value.code == "last_admin"
    admin_member.refresh_from_db()
    assert admin_member.is_active


# --- API tokens ----------------------------------------------------------------------------


def test_api_token_issue_stores_only_the_hash(member):
    token, raw = api_token_issue(user=member, name="  laptop ", days=30)
    assert raw.startswith("enc_")
    assert token.token_hash == hash_secret(raw)
    assert token.prefix == raw[:12]
    assert token.name == "laptop"
    assert timedelta(days=29) < token.expires_at - timezone.now() <= timedelta(days=30)
    # The raw value appears in no column of any token row, nor in the audit log.
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {ApiToken._meta.db_table}")  # noqa: S608
        rows = cursor.fetchall()
    assert rows
    assert all(raw not in str(value) for row in rows for value in row)
    event = audit("api_token.issue")
    assert raw not in str(event.details)
    assert event.details["prefix"] == raw[:12]
    assert event.actor_email == member.email


def test_api_token_issue_uses_the_default_lifetime(member, settings):
    settings.API_TOKEN_DEFAULT_DAYS = 7
    token, _ = api_token_issue(user=member, name="x")
    assert timedelta(days=6) < token.expires_at - timezone.now() <= timedelta(days=7)


@pytest.mark.parametrize("days", [-5, 0, 3651])
def test_api_token_issue_refuses_a_bad_lifetime(member, days):
    with pytest.raises(ApplicationError) as excinfo:
        api_token_issue(user=member, name="x", days=days)
    assert excinfo.value.code == "invalid_expiry"
    assert not ApiToken.objects.exists()


def test_api_token_revoke_revokes_once_with_audit(admin_member):
    token = ApiTokenFactory()
    api_token_revoke(token=token, actor=admin_member)
    assert token.revoked_at is not None
    first = token.revoked_at
    api_token_revoke(token=token, actor=admin_member)
    token.refresh_from_db()
    assert token.revoked_at == first
    assert not token.is_usable
    assert AuditEvent.objects.filter(action="api_token.revoke").count() == 2


# --- ApiTokenAuthentication ----------------------------------------------------------------


def request_with(header: str | None):
    extra = {} if header is None else {"HTTP_AUTHORIZATION": header}
    return APIRequestFactory().get("/api/v1/workspaces", **extra)


def test_a_valid_token_authenticates_its_member_and_records_use():
    token = ApiTokenFactory()
    user, auth = ApiTokenAuthentication().authenticate(request_with(f"Token {token.raw}"))
    assert (user, auth) == (token.user, token)
    token.refresh_from_db()
    assert token.last_used_at is not None


def test_the_keyword_is_case_insensitive():
    token = ApiTokenFactory()
    user, _ = ApiTokenAuthentication().authenticate(request_with(f"token {token.raw}"))
    assert user == token.user


@pytest.mark.parametrize(
    "state",
    ["expired", "revoked", "inactive user", "unknown token"],
)
def test_unusable_tokens_fail(state):
    token = ApiTokenFactory()
    raw = token.raw
    if state == "expired":
        ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(1))
    elif state == "revoked":
        ApiToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now())
    elif state == "inactive user":
        User.objects.filter(pk=token.user.pk).update(is_active=False)
    else:
        raw = raw + "x"
    with pytest.raises(exceptions.AuthenticationFailed, match="Invalid, expired or revoked"):
        ApiTokenAuthentication().authenticate(request_with(f"Token {raw}"))


@pytest.mark.parametrize("header", ["Token", "Token a b", "Token  "])
def test_malformed_token_headers_fail(header):
    with pytest.raises(exceptions.AuthenticationFailed, match="Malformed"):
        ApiTokenAuthentication().authenticate(request_with(header))


@pytest.mark.parametrize("header", [None, "", "Bearer abc.def.ghi", "Basic dXNlcjpwdw=="])
def test_other_schemes_are_left_to_other_authenticators(header):
    assert ApiTokenAuthentication().authenticate(request_with(header)) is None


def test_authenticate_header_names_the_scheme():
    assert ApiTokenAuthentication().authenticate_header(request_with(None)) == "Token"


# --- tags and the audit trail -------------------------------------------------------------


def test_user_tag_create_normalises_the_name(member):
    tag = user_tag_create(user=member, name="  Frontend ", color="#fff")
    assert (tag.name, tag.color, tag.user) == ("frontend", "#fff", member)


def test_services_keep_the_audit_chain_intact(admin_member, member):
    member_invite(email="a@example.com", actor=admin_member)
    member_set_role(user=member, role=Role.ADMIN, actor=admin_member)
    api_token_issue(user=member, name="x")
    assert AuditEvent.objects.count() == 4  # the invitation e-mail is audited too
    assert audit_verify_chain() is None


def test_a_personal_token_also_works_as_a_bearer_token(member):
    _, raw = api_token_issue(user=member, name="ci")
    user, _ = ApiTokenAuthentication().authenticate(request_with(f"Bearer {raw}"))
    assert user == member


def test_token_lifetime_is_capped_by_the_organisation(member, settings):
    settings.API_TOKEN_MAX_DAYS = 30
    settings.API_TOKEN_DEFAULT_DAYS = 90
    token, _ = api_token_issue(user=member, name="default")
    assert 29 < (token.expires_at - timezone.now()).days + 1 <= 30  # the default, capped
    with pytest.raises(ApplicationError) as refused:
        api_token_issue(user=member, name="long", days=31)
    assert refused.value.code == "invalid_expiry"
