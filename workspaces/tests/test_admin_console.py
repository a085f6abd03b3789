"""The console's live workspaces page: list, filters, actions through the services."""

import pytest
from django.urls import reverse

from accounts.tests.factories import UserFactory
from audit.models import AuditEvent
from workspaces.services import workspace_launch

pytestmark = pytest.mark.django_db


@pytest.fixture
def launched(blueprint, member, control_plane):
    return workspace_launch(actor=member, blueprint_key=blueprint.key, name="Shop")


def test_admin_sees_every_workspace_with_filters(client, admin_member, launched, control_plane):
    client.force_login(admin_member)
    url = reverse("admin:workspaces_console")
    page = client.get(url)
    assert page.status_code == 200
    assert launched.id in page.content.decode() and "Shop" in page.content.decode()
    assert launched.id not in client.get(url, {"status": "stopped"}).content.decode()
    assert launched.id not in client.get(url, {"owner": "nobody@"}).content.decode()
    assert launched.id in client.get(url, {"cluster": "main", "owner": "builder"}).content.decode()
    index = client.get(reverse("admin:index")).content.decode()
    assert url in index


@pytest.mark.parametrize(("sandbox", "shown"), [("none", True), ("bubblewrap", False)])
def test_workspaces_of_a_cluster_without_a_sandbox_are_marked(
    client, admin_member, launched, cluster, sandbox, shown
):
    cluster.isolation = {"sandbox": sandbox}
    cluster.save()
    client.force_login(admin_member)
    page = client.get(reverse("admin:workspaces_console")).content.decode()
    assert ("Not isolated" in page) is shown


def test_unreachable_cluster_is_named(client, admin_member, launched, control_plane):
    control_plane.set_unreachable("main")
    client.force_login(admin_member)
    page = client.get(reverse("admin:workspaces_console")).content.decode()
    assert "Not answering" in page and "main" in page


@pytest.mark.parametrize(
    ("action", "status"),
    [("stop", "stopped"), ("restart", "running"), ("upgrade", "running")],
)
def test_actions_go_through_the_audited_services(
    client, admin_member, launched, control_plane, action, status
):
    client.force_login(admin_member)
    url = reverse("admin:workspaces_console")
    response = client.post(url, {"action": action, "workspace": launched.id, "next": url})
    assert response.status_code == 302
    record = control_plane.record("main", launched.id)
    assert record["status"] == status
    assert AuditEvent.objects.filter(action=f"workspace.{action}", target_id=launched.id).exists()


def test_delete_action_removes_the_workspace(client, admin_member, launched, control_plane):
    client.force_login(admin_member)
    url = reverse("admin:workspaces_console")
    client.post(url, {"action": "delete", "workspace": launched.id})
    assert not control_plane.exists("main", launched.id)


def test_unknown_workspace_or_action_is_an_error_message(client, admin_member, control_plane):
    client.force_login(admin_member)
    url = reverse("admin:workspaces_console")
    response = client.post(url, {"action": "stop", "workspace": "env-000000000000"}, follow=True)
    assert "not found" in response.content.decode().lower()
    response = client.post(url, {"action": "explode", "workspace": "x"}, follow=True)
    assert "Unknown action" in response.content.decode()


def test_builders_cannot_reach_the_page(client, launched, control_plane):
    client.force_login(UserFactory())
    url = reverse("admin:workspaces_console")
    assert client.get(url).status_code == 302
    client.post(url, {"action": "delete", "workspace": launched.id})
    assert control_plane.exists("main", launched.id)


def test_a_suspended_members_workspace_keeps_running_and_shows_as_orphaned(
    client, admin_member, member, launched, control_plane
):
    from rest_framework.test import APIClient

    from accounts.services import member_set_active

    client.force_login(admin_member)
    url = reverse("admin:workspaces_console")
    badge = ">Orphaned</span>"
    assert badge not in client.get(url).content.decode()
    assert launched.id not in client.get(url, {"orphaned": "1"}).content.decode()

    member_set_active(user=member, active=False, actor=admin_member)
    assert control_plane.record("main", launched.id)["status"] == "running"  # not stopped
    page = client.get(url).content.decode()
    assert badge in page and launched.id in client.get(url, {"orphaned": "1"}).content.decode()

    api = APIClient()
    api.force_authenticate(admin_member)
    (listed,) = api.get("/api/v1/admin/workspaces").json()["results"]
    assert listed["id"] == launched.id and listed["orphaned"] is True
    assert api.get("/api/v1/admin/workspaces?orphaned=false").json()["results"] == []
    assert len(api.get("/api/v1/admin/workspaces?orphaned=true").json()["results"]) == 1
