"""Member sign-in page."""

import pytest
from django.urls import reverse

from accounts.choices import MemberStatus
from accounts.tests.factories import UserFactory
from audit.models import AuditEvent

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"


def test_sign_in_activates_an_invited_member_and_is_audited(client):
    user = UserFactory(email="new@example.com", status=MemberStatus.PENDING)
    response = client.post(reverse("login"), {"username": "New@Example.com", "password": PASSWORD})
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.status == MemberStatus.ACTIVE
    assert AuditEvent.objects.filter(action="member.login", actor=user).exists()


def test_wrong_password_gets_a_generic_error(client):
    UserFactory(email="someone@example.com")
    response = client.post(reverse("login"), {"username": "someone@example.com", "password": "x"})
    assert response.status_code == 200
    assert "do not match" in response.content.decode()
    assert not AuditEvent.objects.filter(action="member.login").exists()


def test_suspended_member_cannot_sign_in(client):
    UserFactory(email="gone@example.com", is_active=False)
    response = client.post(reverse("login"), {"username": "gone@example.com", "password": PASSWORD})
    assert response.status_code == 200 and "_auth_user_id" not in client.session


def test_page_shows_the_organisation_name(client):
    from core.models import OrganizationSettings

    OrganizationSettings.objects.update_or_create(id=1, defaults={"portal_name": "Acme Build"})
    assert "Acme Build" in client.get(reverse("login")).content.decode()
