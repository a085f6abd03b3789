"""Audit entries written while serving a request carry its client IP by themselves
(`audit.context`, bound by `core.middleware.AuditContextMiddleware`)."""

import pytest

from accounts.tests.factories import AdminFactory, UserFactory
from audit.context import request_ip
from audit.models import AuditEvent
from audit.services import audit_record

pytestmark = pytest.mark.django_db


def test_an_admins_change_through_the_api_carries_the_admins_ip(client):
    admin = AdminFactory()
    member = UserFactory()
    client.force_login(admin)
    response = client.patch(
        f"/api/v1/admin/members/{member.pk}",
        {"role": "admin"},
        content_type="application/json",
        REMOTE_ADDR="198.51.100.7",
    )
    assert response.status_code == 200
    event = AuditEvent.objects.get(action="member.set_role")
    assert event.ip == "198.51.100.7" and event.actor == admin


def test_outside_a_request_there_is_no_ip_and_an_explicit_one_wins():
    assert audit_record(action="system.job").ip is None
    with request_ip("203.0.113.9"):
        assert audit_record(action="a").ip == "203.0.113.9"
        assert audit_record(action="b", ip="192.0.2.1").ip == "192.0.2.1"
    assert audit_record(action="c").ip is None
