"""Console pages for clusters and tickets: agent tokens shown once, hashes never."""

import pytest
from django.urls import reverse

from accounts.tests.factories import AdminFactory, UserFactory
from audit.models import AuditEvent
from clusters.models import Cluster
from clusters.tests.factories import ClusterFactory
from core.crypto import hash_secret
from core.tests.admin import assert_refused, changeform_data, messages_of

pytestmark = pytest.mark.django_db


def url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def token_in(message: str) -> str:
    return message.split("<code>")[1].split("</code>")[0]


@pytest.fixture
def console(client):
    client.force_login(AdminFactory())
    return client


def test_cluster_pages_render_without_the_token_hash(console):
    cluster = ClusterFactory(description="eu-west")
    for page in (
        url(Cluster, "changelist"),
        url(Cluster, "add"),
        url(Cluster, "change", cluster.pk),
    ):
        response = console.get(page)
        assert response.status_code == 200, page
        assert cluster.token_hash not in response.content.decode()
    changelist = console.get(url(Cluster, "changelist")).content.decode()
    assert "disconnected" in changelist
    assert cluster.token_prefix in changelist


def test_pages_show_the_isolation_and_a_red_badge_without_a_sandbox(console):
    bare = ClusterFactory(isolation={"sandbox": "none", "network": "shared", "limits": "none"})
    boxed = ClusterFactory(
        isolation={"sandbox": "bubblewrap", "network": "private", "limits": "cgroup"}
    )
    changelist = console.get(url(Cluster, "changelist")).content.decode()
    assert changelist.count("Workspaces are not isolated") == 1
    assert "sandbox: none · network: shared · limits: none" in changelist
    assert "sandbox: bubblewrap · network: private · limits: cgroup" in changelist

    page = console.get(url(Cluster, "change", bare.pk)).content.decode()
    assert "Workspaces are not isolated" in page and "sandbox: none" in page
    page = console.get(url(Cluster, "change", boxed.pk)).content.decode()
    assert "Workspaces are not isolated" not in page and "sandbox: bubblewrap" in page
    silent = ClusterFactory()
    page = console.get(url(Cluster, "change", silent.pk)).content.decode()
    assert "sandbox: unknown" in page and "Workspaces are not isolated" not in page


def test_pages_are_refused_to_a_member(client):
    cluster = ClusterFactory()
    client.force_login(UserFactory())
    for page in (
        url(Cluster, "changelist"),
        url(Cluster, "add"),
        url(Cluster, "change", cluster.pk),
    ):
        assert_refused(client, page)
        assert_refused(client, page, method="post")


def test_adding_a_cluster_shows_the_agent_token_once_and_stores_its_hash(console):
    response = console.post(url(Cluster, "add"), {"name": "edge-1", "description": "Edge"})
    assert response.status_code == 302
    (message,) = messages_of(response)
    raw = token_in(message)
    cluster = Cluster.objects.get(name="edge-1")
    assert cluster.description == "Edge"
    assert cluster.token_hash == hash_secret(raw)
    assert raw not in {cluster.token_hash, cluster.token_prefix}
    assert AuditEvent.objects.filter(action="cluster.create", target_id="edge-1").exists()
    # Shown once, on the page the admin lands on; never again.
    assert console.get(response.url).content.decode().count(raw) == 1
    assert raw not in console.get(response.url).content.decode()


def test_invalid_cluster_name_is_a_form_error(console):
    response = console.post(url(Cluster, "add"), {"name": "Not Valid!", "description": ""})
    assert response.status_code == 200
    assert not Cluster.objects.exists()


def test_rotate_action_shows_the_new_token_once(console):
    clusters = [ClusterFactory(), ClusterFactory()]
    old_hashes = {c.pk: c.token_hash for c in clusters}
    response = console.post(
        url(Cluster, "changelist"),
        {"action": "rotate_token", "_selected_action": [c.pk for c in clusters]},
    )
    assert response.status_code == 302
    (message,) = messages_of(response)
    for cluster in clusters:
        cluster.refresh_from_db()
        raw = message.split(f"{cluster.name}: <code>")[1].split("</code>")[0]
        assert cluster.token_hash == hash_secret(raw) != old_hashes[cluster.pk]
    assert AuditEvent.objects.filter(action="cluster.rotate_token").count() == 2


def test_description_change_is_audited_and_the_name_is_fixed(console):
    cluster = ClusterFactory()
    response = console.get(url(Cluster, "change", cluster.pk))
    assert set(response.context["adminform"].form.fields) == {"description"}
    data = changeform_data(response)
    data.update(description="Moved to eu-central", name="renamed")
    assert console.post(url(Cluster, "change", cluster.pk), data).status_code == 302
    cluster.refresh_from_db()
    assert (cluster.name, cluster.description) == (cluster.name, "Moved to eu-central")
    assert not Cluster.objects.filter(name="renamed").exists()
    assert AuditEvent.objects.filter(action="cluster.update", target_id=cluster.name).exists()


def test_delete_goes_through_the_service_and_bulk_delete_is_off(console):
    unused = ClusterFactory()
    actions = console.get(url(Cluster, "changelist")).context["action_form"].fields["action"]
    assert "delete_selected" not in dict(actions.choices)
    assert console.post(url(Cluster, "delete", unused.pk), {"post": "yes"}).status_code == 302
    assert not Cluster.objects.filter(pk=unused.pk).exists()
    assert AuditEvent.objects.filter(action="cluster.delete", target_id=unused.name).exists()
