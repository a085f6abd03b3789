"""Member reads: which member a browser session still signs in."""

import pytest
from django.conf import settings
from django.test import Client

from accounts.selectors import session_member
from accounts.services import member_set_active
from accounts.tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _signed_in(user) -> tuple[Client, str]:
    client = Client()
    client.force_login(user)
    return client, client.cookies[settings.SESSION_COOKIE_NAME].value


def test_a_session_signs_in_its_member(member):
    _, key = _signed_in(member)
    assert session_member(key) == member


def test_no_member_for_an_unknown_or_missing_session():
    assert session_member("no-such-session") is None
    assert session_member(None) is None


def test_no_member_once_signed_out(member):
    client, key = _signed_in(member)
    client.logout()
    assert session_member(key) is None


def test_no_member_once_suspended(member):
    _, key = _signed_in(member)
    member_set_active(user=member, active=False, actor=None)
    assert session_member(key) is None


def test_no_member_once_the_password_changed(member):
    _, key = _signed_in(member)
    member.set_password("a brand new password 1")
    member.save()
    assert session_member(key) is None


def test_each_session_signs_in_its_own_member(member):
    other = UserFactory(email="other@example.com")
    _, mine = _signed_in(member)
    _, theirs = _signed_in(other)
    assert (session_member(mine), session_member(theirs)) == (member, other)
