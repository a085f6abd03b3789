"""The builder's home page: list, launch and act through the same services as the API.

The page renders its list from the JSON it embeds (`dashboard-data`) and keeps it current
over /ws/events/; these tests read that JSON and the server-rendered catalog.
"""

import json
import re

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from audit.services import audit_record
from blueprints.choices import BlueprintState
from blueprints.tests.factories import AccessRuleFactory, BlueprintFactory
from clusters.tests.factories import ClusterFactory
from core.tests.factories import OrganizationSettingsFactory
from workspaces.selectors import workspace_for
from workspaces.services import workspace_delete, workspace_launch
from workspaces.tests.test_api import seed

pytestmark = pytest.mark.django_db


def page_data(response) -> dict:
    match = re.search(
        r'<script id="dashboard-data" type="application/json">(.*?)</script>',
        response.content.decode(),
        re.S,
    )
    assert match, "the dashboard embeds its data"
    return json.loads(match.group(1))


def test_anonymous_visitors_are_sent_to_sign_in(client):
    response = client.get(reverse("home"))
    assert response.status_code == 302 and response.url == reverse("login")


def test_dashboard_lists_my_workspaces_and_my_catalog(client, member, blueprint, cluster):
    hidden = BlueprintFactory(key="secret", name="Secret tool", cluster=cluster)
    AccessRuleFactory(blueprint=hidden, kind="email", value="someone-else@example.com")
    BlueprintFactory(key="draft", name="Draft tool", cluster=cluster, state=BlueprintState.TESTING)
    mine = workspace_launch(actor=member, blueprint_key=blueprint.key, name="Shop")
    client.force_login(member)
    response = client.get(reverse("home"))
    data = page_data(response)
    page = response.content.decode()
    assert [w["id"] for w in data["workspaces"]] == [mine.id]
    assert data["blueprints"]["webapp"] == "Web app"  # names, never keys, on screen
    assert data["urls"]["editor"] == reverse("workspace-editor", args=["__id__"])
    assert 'aria-label="Launch Web app"' in page
    assert "Secret tool" not in page
    # A testing blueprint is announced to builders, never launchable by them.
    assert "Draft tool" in page and "Coming soon" in page
    assert 'aria-label="Launch Draft tool"' not in page


def test_an_admin_can_launch_testing_blueprints(client, admin_member, cluster):
    BlueprintFactory(key="draft", name="Draft tool", cluster=cluster, state=BlueprintState.TESTING)
    client.force_login(admin_member)
    page = client.get(reverse("home")).content.decode()
    assert 'aria-label="Launch Draft tool"' in page and "Coming soon" not in page


def test_the_welcome_screen_shows_only_without_workspaces(client, member, blueprint):
    OrganizationSettingsFactory(
        welcome_title="Build your first app", max_running_workspaces_per_user=3
    )
    client.force_login(member)
    page = client.get(reverse("home")).content.decode()
    assert re.search(r'<section class="hero" id="welcome">\s*<h1>Build your first app', page)
    workspace_launch(actor=member, blueprint_key=blueprint.key, name="Shop")
    response = client.get(reverse("home"))
    assert '<section class="hero" id="welcome" hidden>' in response.content.decode()
    assert page_data(response)["limit"] == 3


def test_the_launch_form_keeps_the_name_the_dialog_showed(client, member, blueprint):
    blueprint.naming_template = "{user}-{name}"
    blueprint.save()
    client.force_login(member)
    page = client.get(reverse("home")).content.decode()
    default = re.search(r'data-default-name="([^"]+)"', page).group(1)
    assert default == "builder-webapp"
    client.post(
        reverse("workspace-launch"),
        {"blueprint": blueprint.key, "name": default, "exact_name": "1"},
    )
    assert AuditEvent.objects.filter(action="workspace.launch", details__name="builder-webapp")


def test_an_unreachable_cluster_is_mentioned_only_to_members_with_workspaces_there(
    client, member, stranger, control_plane, blueprint, cluster
):
    far = ClusterFactory(
        name="far", tunnel_channel="far-channel", last_seen_at=cluster.last_seen_at
    )
    there = seed(control_plane, BlueprintFactory(key="far-app", cluster=far), member.email)
    audit_record(
        action="workspace.launch",
        actor=member,
        target_type="workspace",
        target_id=there.id,
        details={"cluster": "far"},
    )
    control_plane.set_unreachable("far")
    client.force_login(member)
    assert page_data(client.get(reverse("home")))["unreachable"] == ["far"]
    client.force_login(stranger)
    assert page_data(client.get(reverse("home")))["unreachable"] == []


def test_a_deleted_workspace_no_longer_ties_its_member_to_an_unreachable_cluster(
    client, member, control_plane, blueprint, cluster
):
    gone = workspace_launch(actor=member, blueprint_key=blueprint.key, name="Old")
    workspace, _ = workspace_for(member, gone.id)
    workspace_delete(actor=member, workspace=workspace, cluster=cluster)
    control_plane.set_unreachable("main")
    client.force_login(member)
    assert page_data(client.get(reverse("home")))["unreachable"] == []


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


def test_only_clusters_without_a_sandbox_are_flagged(client, member, control_plane, cluster):
    cluster.isolation = {"sandbox": "bubblewrap", "network": "private", "limits": "cgroup"}
    cluster.save()
    bare = ClusterFactory(
        name="bare",
        isolation={"sandbox": "none", "network": "shared", "limits": "none"},
        tunnel_channel="other-channel",
        last_seen_at=cluster.last_seen_at,
    )
    seed(control_plane, BlueprintFactory(key="boxed", cluster=cluster), member.email)
    seed(control_plane, BlueprintFactory(key="exposed", cluster=bare), member.email)
    client.force_login(member)
    assert page_data(client.get(reverse("home")))["not_isolated"] == ["bare"]


def test_no_red_notice_where_every_cluster_has_a_sandbox(client, member, blueprint, cluster):
    cluster.isolation = {"sandbox": "bubblewrap"}
    cluster.save()
    workspace_launch(actor=member, blueprint_key=blueprint.key, name="Shop")
    client.force_login(member)
    assert page_data(client.get(reverse("home")))["not_isolated"] == []
