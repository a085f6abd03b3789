"""The builder's home page: list, launch and act through the same services as the API."""

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from blueprints.choices import BlueprintState
from blueprints.tests.factories import AccessRuleFactory, BlueprintFactory
from clusters.tests.factories import ClusterFactory
from workspaces.services import workspace_launch
from workspaces.tests.test_api import seed

NOT_ISOLATED = "Not isolated: other workspaces on this cluster can reach this one"

pytestmark = pytest.mark.django_db


def test_anonymous_visitors_are_sent_to_sign_in(client):
    response = client.get(reverse("home"))
    assert response.status_code == 302 and response.url == reverse("login")


def test_dashboard_lists_my_workspaces_and_my_catalog(client, member, blueprint, cluster):
    hidden = BlueprintFactory(key="secret", name="Secret tool", cluster=cluster)
    AccessRuleFactory(blueprint=hidden, kind="email", value="someone-else@example.com")
    BlueprintFactory(key="draft", name="Draft tool", cluster=cluster, state=BlueprintState.TESTING)
    mine = workspace_launch(actor=member, blueprint_key=blueprint.key, name="Shop")
    client.force_login(member)
    page = client.get(reverse("home")).content.decode()
    assert "Shop" in page and mine.id in page
    assert reverse("workspace-terminal", args=[mine.id]) in page
    assert "Web app" in page and "Secret tool" not in page and "Draft tool" not in page


def test_launch_and_operate_through_the_services(client, member, blueprint, control_plane):
    client.force_login(member)
    client.post(reverse("workspace-launch"), {"blueprint": blueprint.key, "name": "Blog"})
    launch = AuditEvent.objects.get(action="workspace.launch", details__name="Blog")
    workspace_id = launch.target_id
    assert control_plane.record("main", workspace_id)["status"] == "running"
    client.post(reverse("workspace-operate", args=[workspace_id, "stop"]))
    assert control_plane.record("main", workspace_id)["status"] == "stopped"
    assert AuditEvent.objects.filter(action="workspace.stop", target_id=workspace_id).exists()


def test_refusals_are_messages_not_errors(client, member, blueprint, stranger):
    other = workspace_launch(actor=stranger, blueprint_key=blueprint.key)
    client.force_login(member)
    response = client.post(reverse("workspace-operate", args=[other.id, "delete"]), follow=True)
    assert response.status_code == 200 and "not found" in response.content.decode().lower()
    response = client.post(
        reverse("workspace-launch"), {"blueprint": "nope", "name": ""}, follow=True
    )
    assert "Unknown blueprint" in response.content.decode()


def test_only_workspaces_of_a_cluster_without_a_sandbox_carry_the_red_notice(
    client, member, control_plane, cluster
):
    cluster.isolation = {"sandbox": "bubblewrap", "network": "private", "limits": "cgroup"}
    cluster.save()
    bare = ClusterFactory(
        name="bare",
        isolation={"sandbox": "none", "network": "shared", "limits": "none"},
        tunnel_channel="other-channel",
        last_seen_at=cluster.last_seen_at,
    )
    boxed = seed(control_plane, BlueprintFactory(key="boxed", cluster=cluster), member.email)
    exposed = seed(control_plane, BlueprintFactory(key="exposed", cluster=bare), member.email)
    client.force_login(member)

    page = client.get(reverse("home")).content.decode()

    assert page.count(NOT_ISOLATED) == 1
    rows = {row.split("</tr>")[0] for row in page.split("<tr>")[2:]}
    (exposed_row,) = [row for row in rows if exposed.id in row]
    (boxed_row,) = [row for row in rows if boxed.id in row]
    assert NOT_ISOLATED in exposed_row and NOT_ISOLATED not in boxed_row


def test_no_red_notice_where_every_cluster_has_a_sandbox(client, member, blueprint, cluster):
    cluster.isolation = {"sandbox": "bubblewrap"}
    cluster.save()
    workspace_launch(actor=member, blueprint_key=blueprint.key, name="Shop")
    client.force_login(member)
    assert NOT_ISOLATED not in client.get(reverse("home")).content.decode()
