"""Member and console sign-in pages: throttling, audit, generic errors."""

import json
import logging

import pytest
from django.test import Client
from django.urls import reverse

from accounts.choices import MemberStatus
from accounts.forms import LOGIN_ERROR
from accounts.services import (
    LOGIN_FAILURES_PER_ACCOUNT,
    LOGIN_FAILURES_PER_IP,
    LOGIN_WINDOW_SECONDS,
)
from accounts.tests.factories import AdminFactory, UserFactory
from audit.choices import AuditOutcome
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


# --- sign-in protection (both password forms) -----------------------------------------------

LOGIN_URLS = ["login", "admin:login"]
IP = "203.0.113.7"


def _attempt(client, url_name, email, password, ip=IP):
    return client.post(reverse(url_name), {"username": email, "password": password}, REMOTE_ADDR=ip)


def _owner(url_name):
    factory = AdminFactory if url_name == "admin:login" else UserFactory
    return factory(email="owner@example.com")


@pytest.mark.parametrize("url_name", LOGIN_URLS)
def test_wrong_password_is_audited_with_the_ip_and_no_password(url_name, client, caplog):
    caplog.set_level(logging.DEBUG)
    user = _owner(url_name)
    _attempt(client, url_name, "Owner@Example.com", "hunter2-wrong")
    event = AuditEvent.objects.get(action="member.login_failed")
    assert event.outcome == AuditOutcome.FAILURE and event.ip == IP
    assert event.details["email"] == "owner@example.com"
    assert event.target_id == str(user.pk)
    assert "hunter2-wrong" not in json.dumps(event.details)
    assert "hunter2-wrong" not in caplog.text


@pytest.mark.parametrize("url_name", LOGIN_URLS)
def test_unknown_account_and_wrong_password_get_the_same_error(url_name, client):
    _owner(url_name)
    wrong = _attempt(client, url_name, "owner@example.com", "nope").content.decode()
    unknown = _attempt(client, url_name, "nobody@example.com", "nope").content.decode()
    assert LOGIN_ERROR in wrong and LOGIN_ERROR in unknown
    assert AuditEvent.objects.filter(action="member.login_failed").count() == 2


def test_console_refuses_a_non_admin_with_the_generic_error(client):
    UserFactory(email="plain@example.com")
    response = _attempt(client, "admin:login", "plain@example.com", PASSWORD)
    assert LOGIN_ERROR in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert AuditEvent.objects.filter(action="member.login_failed").exists()


def test_console_sign_in_is_audited(client):
    admin = AdminFactory(email="boss@example.com")
    response = _attempt(client, "admin:login", "boss@example.com", PASSWORD)
    assert response.status_code == 302
    event = AuditEvent.objects.get(action="member.login")
    assert event.actor == admin and event.ip == IP and event.details == {"via": "console"}


@pytest.mark.parametrize("url_name", LOGIN_URLS)
def test_sixth_attempt_is_refused_even_with_the_right_password(url_name, client):
    _owner(url_name)
    for _ in range(LOGIN_FAILURES_PER_ACCOUNT):
        assert _attempt(client, url_name, "owner@example.com", "nope").status_code == 200
    response = _attempt(client, url_name, "owner@example.com", PASSWORD)
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= LOGIN_WINDOW_SECONDS
    assert "Too many sign-in attempts. Try again in 15 minutes." in response.content.decode()
    assert "_auth_user_id" not in client.session
    event = AuditEvent.objects.get(action="member.login_throttled")
    assert event.outcome == AuditOutcome.DENIED and event.ip == IP
    assert event.details["email"] == "owner@example.com"
    assert PASSWORD not in json.dumps(event.details)
    assert not AuditEvent.objects.filter(action="member.login").exists()


def test_the_account_limit_holds_from_any_ip(client):
    UserFactory(email="owner@example.com")
    for n in range(LOGIN_FAILURES_PER_ACCOUNT):
        _attempt(client, "login", "owner@example.com", "nope", ip=f"198.51.100.{n}")
    response = _attempt(client, "login", "owner@example.com", PASSWORD, ip="192.0.2.1")
    assert response.status_code == 429


def test_the_ip_limit_spans_accounts(client):
    UserFactory(email="owner@example.com")
    for n in range(LOGIN_FAILURES_PER_IP):
        _attempt(client, "login", f"guess{n}@example.com", "nope")
    assert _attempt(client, "login", "owner@example.com", PASSWORD).status_code == 429
    other_ip = _attempt(client, "login", "owner@example.com", PASSWORD, ip="192.0.2.1")
    assert other_ip.status_code == 302


def test_the_client_ip_comes_from_trusted_proxies_only(client, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    UserFactory(email="owner@example.com")
    client.post(
        reverse("login"),
        {"username": "owner@example.com", "password": "nope"},
        REMOTE_ADDR="10.0.0.2",
        HTTP_X_FORWARDED_FOR=IP,
    )
    assert AuditEvent.objects.get(action="member.login_failed").ip == IP


def test_success_resets_the_account_counter(client):
    UserFactory(email="owner@example.com")
    for _ in range(2):
        for _ in range(LOGIN_FAILURES_PER_ACCOUNT - 1):
            _attempt(client, "login", "owner@example.com", "nope")
        assert _attempt(client, "login", "owner@example.com", PASSWORD).status_code == 302
        client.logout()


def test_counters_are_shared_between_processes():
    """Two clients stand for two portal processes: the counts live in the shared cache."""
    UserFactory(email="owner@example.com")
    first, second = Client(), Client()
    for client in (first, second, first, second, first):
        _attempt(client, "login", "owner@example.com", "nope")
    assert _attempt(second, "login", "owner@example.com", PASSWORD).status_code == 429
