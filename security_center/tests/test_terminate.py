"""Ending a live session: the service, the API action and the console action."""

from unittest import mock

import pytest
from django.urls import reverse

from accounts.services import member_set_active
from accounts.tests.factories import AdminFactory, UserFactory
from audit.models import AuditEvent
from core.tests.admin import messages_of
from security_center.models import ConnectionSession
from security_center.services import connection_terminate, connections_end_for_member
from security_center.tests.factories import ConnectionSessionFactory

pytestmark = pytest.mark.django_db

NOTIFY = "security_center.services._notify_consumer"


def test_terminate_closes_audits_and_notifies_after_commit(django_capture_on_commit_callbacks):
    admin = AdminFactory()
    session = ConnectionSessionFactory(channel_name="specific.abc!def", bytes_out=10)
    with mock.patch(NOTIFY) as notify, django_capture_on_commit_callbacks(execute=True):
        assert connection_terminate(session=session, actor=admin, ip="192.0.2.1") is True
    notify.assert_called_once_with("specific.abc!def", "terminated_by_admin")
    session.refresh_from_db()
    assert session.ended_at is not None and session.close_reason == "terminated_by_admin"
    assert session.bytes_out == 10
    entry = AuditEvent.objects.get(action="connection.terminate")
    assert entry.actor_email == admin.email and entry.target_id == str(session.pk)
    assert entry.details == {
        "kind": "shell",
        "email": session.email,
        "environment_id": session.environment_id,
        "reason": "terminated_by_admin",
    }


def test_terminating_an_ended_session_changes_nothing(django_capture_on_commit_callbacks):
    session = ConnectionSessionFactory(
        ended_at="2030-01-01T00:00:00Z", close_reason="client_closed"
    )
    with mock.patch(NOTIFY) as notify, django_capture_on_commit_callbacks(execute=True):
        assert connection_terminate(session=session, actor=AdminFactory()) is False
    notify.assert_not_called()
    session.refresh_from_db()
    assert session.close_reason == "client_closed"
    assert not AuditEvent.objects.filter(action="connection.terminate").exists()


def test_api_terminate(api_client, admin_member, member):
    session = ConnectionSessionFactory(channel_name="specific.x!y")
    url = f"/api/v1/admin/connections/{session.pk}/terminate"
    api_client.force_authenticate(member)
    assert api_client.post(url).status_code == 403
    assert ConnectionSession.objects.get(pk=session.pk).ended_at is None
    api_client.force_authenticate(admin_member)
    with mock.patch(NOTIFY):
        response = api_client.post(url)
    assert response.status_code == 200, response.content
    assert response.json()["close_reason"] == "terminated_by_admin"
    assert response.json()["ended_at"]
    again = api_client.post(url)
    assert again.status_code == 409 and again.json()["code"] == "connection_ended"
    assert api_client.post("/api/v1/admin/connections/999999/terminate").status_code == 404


def test_console_end_session_action(client):
    client.force_login(AdminFactory())
    live, ended = (
        ConnectionSessionFactory(),
        ConnectionSessionFactory(ended_at="2030-01-01T00:00:00Z", close_reason="client_closed"),
    )
    changelist = reverse("admin:security_center_connectionsession_changelist")
    with mock.patch(NOTIFY):
        response = client.post(
            changelist,
            {"action": "end_session", "_selected_action": [live.pk, ended.pk]},
            follow=True,
        )
    assert response.status_code == 200
    [message] = messages_of(response)
    assert "Ended 1 session(s)." in message and "Refused (1)" in message
    live.refresh_from_db()
    assert live.close_reason == "terminated_by_admin"
    assert ConnectionSession.objects.get(pk=ended.pk).close_reason == "client_closed"


def test_suspending_a_member_ends_their_live_sessions_with_audit(
    django_capture_on_commit_callbacks,
):
    admin, member = AdminFactory(), UserFactory()
    shell = ConnectionSessionFactory(user=member, channel_name="specific.a!shell")
    preview = ConnectionSessionFactory(user=member, kind="preview", channel_name="specific.b!p")
    ended = ConnectionSessionFactory(
        user=member, ended_at="2030-01-01T00:00:00Z", close_reason="client_closed"
    )
    someone_else = ConnectionSessionFactory(channel_name="specific.c!other")
    with mock.patch(NOTIFY) as notify, django_capture_on_commit_callbacks(execute=True):
        member_set_active(user=member, active=False, actor=admin)
    assert sorted(notify.call_args_list) == [
        mock.call("specific.a!shell", "member_suspended"),
        mock.call("specific.b!p", "member_suspended"),
    ]
    for session in (shell, preview):
        session.refresh_from_db()
        assert session.ended_at is not None and session.close_reason == "member_suspended"
    assert ConnectionSession.objects.get(pk=ended.pk).close_reason == "client_closed"
    assert ConnectionSession.objects.get(pk=someone_else.pk).ended_at is None
    entries = AuditEvent.objects.filter(action="connection.terminate").order_by("target_id")
    assert [(e.target_id, e.actor_email, e.details["reason"]) for e in entries] == sorted(
        (str(s.pk), admin.email, "member_suspended") for s in (shell, preview)
    )


def test_reactivating_a_member_ends_nothing(django_capture_on_commit_callbacks):
    member = UserFactory(is_active=False)
    session = ConnectionSessionFactory(user=member)
    with mock.patch(NOTIFY) as notify, django_capture_on_commit_callbacks(execute=True):
        member_set_active(user=member, active=True, actor=AdminFactory())
        assert connections_end_for_member(user_id=UserFactory().pk, actor=None) == 0
    notify.assert_not_called()
    assert ConnectionSession.objects.get(pk=session.pk).ended_at is None


# --- the firewall on open sessions -----------------------------------------------------------


def test_a_new_deny_rule_ends_the_live_sessions_it_denies(django_capture_on_commit_callbacks):
    from security_center.models import FirewallEvent, FirewallRule
    from security_center.services import firewall_rule_save

    admin = AdminFactory()
    denied = ConnectionSessionFactory(ip="203.0.113.9", channel_name="specific.a!b")
    preview = ConnectionSessionFactory(ip="::ffff:203.0.113.10", kind="preview")
    allowed = ConnectionSessionFactory(ip="198.51.100.4", channel_name="specific.c!d")
    rule = FirewallRule(cidr="203.0.113.0/24", action="deny", priority=5, description="lab")
    with mock.patch(NOTIFY) as notify, django_capture_on_commit_callbacks(execute=True):
        firewall_rule_save(rule=rule, actor=admin)
    notify.assert_called_once_with("specific.a!b", "firewall_denied")
    for session in (denied, preview):
        session.refresh_from_db()
        assert session.ended_at is not None and session.close_reason == "firewall_denied"
    allowed.refresh_from_db()
    assert allowed.ended_at is None
    events = FirewallEvent.objects.all()
    assert {(e.kind, e.user_email, e.rule_id) for e in events} == {
        (denied.kind, denied.email, rule.pk),
        ("preview", preview.email, rule.pk),
    }
    reasons = AuditEvent.objects.filter(action="connection.terminate").values_list(
        "details__reason", flat=True
    )
    assert list(reasons) == ["firewall_denied", "firewall_denied"]


def test_enabling_a_rule_or_deleting_an_allow_rule_enforces_too():
    from security_center.models import FirewallRule
    from security_center.services import (
        firewall_rule_delete,
        firewall_rule_save,
        firewall_rule_set_enabled,
    )

    admin = AdminFactory()
    live = ConnectionSessionFactory(ip="192.0.2.50")
    allow = firewall_rule_save(
        rule=FirewallRule(cidr="192.0.2.50/32", action="allow", priority=1), actor=admin
    )
    deny = firewall_rule_save(
        rule=FirewallRule(cidr="192.0.2.0/24", action="deny", priority=2, enabled=False),
        actor=admin,
    )
    with mock.patch(NOTIFY):
        firewall_rule_set_enabled(rule=deny, enabled=True, actor=admin)
        live.refresh_from_db()
        assert live.ended_at is None  # the allow rule comes first
        firewall_rule_delete(rule=allow, actor=admin)
    live.refresh_from_db()
    assert live.close_reason == "firewall_denied"
