"""Invitations: the e-mail, the one-time link (once, until it expires, replaced by a new
one), choosing a password, the console's buttons and the API."""

from __future__ import annotations

import re
import threading
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts import services
from accounts.choices import MemberStatus, Role
from accounts.models import Invitation, User
from accounts.tests.factories import AdminFactory, UserFactory
from audit.models import AuditEvent
from core.crypto import hash_secret
from core.errors import ApplicationError
from core.tests.admin import messages_of

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a long and new passphrase"
LINK = re.compile(r"https?://\S+/invitation/(inv_[A-Za-z0-9_-]+)/")


@pytest.fixture
def boss():
    return AdminFactory(email="boss@example.com")


def invite(boss, email="new@example.com", role=Role.USER) -> tuple[User, str]:
    """Invite ``email``; return the member and the raw token of the e-mailed link."""
    user = services.member_invite(email=email, role=role, actor=boss)
    token = LINK.search(mail.outbox[-1].body).group(1)
    return user, token


def page(token: str) -> str:
    return reverse("invitation", args=[token])


def test_inviting_sends_one_email_with_a_link_stored_hashed(boss, settings):
    settings.PORTAL_URL = "https://portal.example.com"
    user, token = invite(boss)
    (message,) = mail.outbox
    assert message.to == ["new@example.com"]
    assert "invited" in message.subject
    assert f"https://portal.example.com/invitation/{token}/" in message.body
    assert "new@example.com" in message.body
    invitation = Invitation.objects.get(user=user)
    assert invitation.token_hash == hash_secret(token) and token not in invitation.token_hash
    assert invitation.emailed and invitation.created_by == boss
    assert invitation.expires_at - timezone.now() > timedelta(days=6, hours=23)
    sent = AuditEvent.objects.get(action="member.invitation_sent")
    assert sent.details["emailed"] is True and token not in str(sent.details)
    assert user.status == MemberStatus.PENDING and not user.has_usable_password()


def test_the_link_sets_a_password_once_and_signs_in(boss, client):
    user, token = invite(boss)
    shown = client.get(page(token))
    assert shown.status_code == 200 and "new@example.com" in shown.content.decode()
    assert shown["Cache-Control"] == "no-store"
    done = client.post(page(token), {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert done.status_code == 302 and done["Location"] == reverse("home")
    user.refresh_from_db()
    assert user.status == MemberStatus.ACTIVE and user.check_password(NEW_PASSWORD)
    assert client.get(reverse("account")).status_code == 200  # signed in
    assert AuditEvent.objects.filter(action="member.invitation_accepted", actor=user).exists()

    again = Client().get(page(token))
    assert again.status_code == 410 and "already used" in again.content.decode()
    replay = Client().post(page(token), {"password1": "x" * 20, "password2": "x" * 20})
    assert replay.status_code == 410
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)  # the replay changed nothing


def test_a_weak_or_mismatched_password_is_a_form_error_and_keeps_the_link(boss, client):
    user, token = invite(boss)
    weak = client.post(page(token), {"password1": "password", "password2": "password"})
    assert weak.status_code == 400 and "too common" in weak.content.decode()
    differ = client.post(page(token), {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD + "!"})
    assert differ.status_code == 400 and "differ" in differ.content.decode()
    user.refresh_from_db()
    assert user.status == MemberStatus.PENDING and not user.has_usable_password()
    assert (
        client.post(page(token), {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD}).status_code
        == 302
    )


def test_an_expired_unknown_or_replaced_link_is_refused_clearly(boss, client):
    user, first = invite(boss)
    _, _, emailed = services.invitation_issue(user=user, actor=boss)  # "Resend invitation"
    assert emailed
    second = LINK.search(mail.outbox[-1].body).group(1)
    replaced = client.get(page(first))
    assert replaced.status_code == 410 and "newer one" in replaced.content.decode()
    assert client.get(page("inv_not-a-real-token")).status_code == 404
    assert client.get(page("something-else")).status_code == 404
    Invitation.objects.filter(token_hash=hash_secret(second)).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    expired = client.get(page(second))
    assert expired.status_code == 410 and "expired" in expired.content.decode()
    assert "ask an administrator" in expired.content.decode().lower()


def test_a_suspended_or_already_active_member_has_no_invitation(boss):
    user, token = invite(boss)
    services.member_set_active(user=user, active=False, actor=boss)
    with pytest.raises(ApplicationError) as refused:
        services.invitation_find(token)
    assert refused.value.code == "invitation_invalid"
    with pytest.raises(ApplicationError) as not_pending:
        services.invitation_issue(user=UserFactory(), actor=boss)
    assert (not_pending.value.code, not_pending.value.status) == ("member_not_pending", 409)


def test_signing_in_another_way_closes_the_open_link(boss):
    user, token = invite(boss)
    services.member_mark_active(user=user)  # e.g. first single sign-on
    with pytest.raises(ApplicationError) as used:
        services.invitation_find(token)
    assert used.value.code == "invitation_used"


def test_a_failed_email_keeps_the_member_and_says_so(boss, settings):
    settings.EMAIL_BACKEND = "accounts.tests.test_invitations.FailingBackend"
    user = services.member_invite(email="far@example.com", role=Role.USER, actor=boss)
    assert user.invitation_emailed is False
    assert User.objects.filter(email="far@example.com", status=MemberStatus.PENDING).exists()
    sent = AuditEvent.objects.get(action="member.invitation_sent")
    assert sent.outcome == "failure" and sent.details["emailed"] is False


class FailingBackend:
    def __init__(self, *args, **kwargs):
        pass

    def send_messages(self, messages):
        raise ConnectionRefusedError("smtp down")


@pytest.mark.django_db(transaction=True)
def test_two_submissions_of_one_link_only_one_wins(boss):
    if connection.vendor == "sqlite":
        pytest.skip("SQLite serialises writers: the race needs PostgreSQL")
    _, token = invite(boss)
    results: list[str] = []
    barrier = threading.Barrier(2)

    def submit(password: str) -> None:
        barrier.wait()
        try:
            services.invitation_accept(raw=token, password=password, ip=None)
            results.append("won")
        except ApplicationError as exc:
            results.append(exc.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=submit, args=(f"{NEW_PASSWORD} {n}",)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["invitation_used", "won"]


def test_local_passwords_off_for_builders_leaves_admins_their_password(boss, client, settings):
    settings.LOCAL_PASSWORDS_FOR_BUILDERS = False
    builder, token = invite(boss)
    shown = client.get(page(token)).content.decode()
    assert "Choose a password" not in shown
    refused = client.post(page(token), {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert refused.status_code == 403
    assert not User.objects.get(pk=builder.pk).has_usable_password()
    # The password form refuses a builder who has one, and keeps the break-glass admin.
    UserFactory(email="old@example.com")
    login = client.post(
        reverse("login"),
        {"username": "old@example.com", "password": "correct horse battery staple"},
    )
    assert login.status_code == 200 and "single sign-on" in login.content.decode()
    admin_login = client.post(
        reverse("login"),
        {"username": "boss@example.com", "password": "correct horse battery staple"},
    )
    assert admin_login.status_code == 302


# --- console and API ---------------------------------------------------------------------------


def test_console_resends_and_shows_a_new_link_once(boss, client):
    user, first = invite(boss)
    client.force_login(boss)
    change = reverse("admin:accounts_user_change", args=[user.pk])
    shown = client.get(change).content.decode()
    assert "Resend invitation" in shown and "Copy invitation link" in shown
    action = reverse("admin:accounts_user_invitation", args=[user.pk])
    assert client.get(action).status_code == 405

    resent = client.post(action, {"invitation": "resend"}, follow=True)
    assert "Invitation e-mailed to new@example.com" in " ".join(messages_of(resent))
    assert len(mail.outbox) == 2

    linked = client.post(action, {"invitation": "link"}, follow=True)
    (text,) = messages_of(linked)
    token = LINK.search(text).group(1)
    assert len(mail.outbox) == 2  # shown, not e-mailed
    assert services.invitation_find(token).user == user
    with pytest.raises(ApplicationError):
        services.invitation_find(first)
    assert AuditEvent.objects.filter(action="member.invitation_link").count() == 1

    active = UserFactory()
    shown = client.get(reverse("admin:accounts_user_change", args=[active.pk])).content.decode()
    assert "Resend invitation" not in shown


def test_console_add_form_sends_the_invitation(boss, client):
    client.force_login(boss)
    response = client.post(
        reverse("admin:accounts_user_add"), {"email": "Fresh@Example.com", "role": Role.USER}
    )
    assert response.status_code == 302
    (message,) = mail.outbox
    assert message.to == ["fresh@example.com"]


def test_api_invites_and_issues_links(boss):
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(boss)
    created = api.post("/api/v1/admin/members", {"email": "api@example.com"}, format="json")
    assert created.status_code == 201 and created.json()["invitation_emailed"] is True
    assert "url" not in created.json()
    member_id = created.json()["id"]
    resent = api.post(f"/api/v1/admin/members/{member_id}/invitation", {}, format="json")
    assert resent.status_code == 201 and resent.json()["emailed"] is True
    assert "url" not in resent.json() and len(mail.outbox) == 2
    linked = api.post(
        f"/api/v1/admin/members/{member_id}/invitation", {"send": False}, format="json"
    )
    assert linked.status_code == 201 and linked.json()["emailed"] is False
    token = LINK.search(linked.json()["url"]).group(1)
    assert services.invitation_find(token).user.email == "api@example.com"
    active = UserFactory()
    refused = api.post(f"/api/v1/admin/members/{active.pk}/invitation", {}, format="json")
    assert refused.status_code == 409 and refused.json()["code"] == "member_not_pending"


def test_with_sso_the_invitation_offers_the_organisation_account(boss, client, settings):
    settings.OIDC_ENABLED = True
    _, token = invite(boss)
    shown = client.get(page(token)).content.decode()
    assert "Sign in with your organisation account" in shown
    assert reverse("oidc_authentication_init") in shown
    assert "or choose a password" in shown  # local passwords still allowed for builders
