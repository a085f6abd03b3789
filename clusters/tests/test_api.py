"""API of the admins' clusters: agent tokens are shown only on create and rotate."""

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from clusters.models import Cluster
from clusters.tests.factories import ClusterFactory
from core.crypto import hash_secret

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("get", "/api/v1/admin/clusters"),
        ("post", "/api/v1/admin/clusters"),
        ("get", "/api/v1/admin/clusters/edge"),
        ("delete", "/api/v1/admin/clusters/edge"),
        ("post", "/api/v1/admin/clusters/edge/rotate-token"),
    ],
)
def test_clusters_need_an_admin(api_client, member, method, url):
    cluster = ClusterFactory(name="edge")
    token_hash = cluster.token_hash

    anonymous = getattr(api_client, method)(url, {"name": "new"}, format="json")
    api_client.force_authenticate(member)
    builder = getattr(api_client, method)(url, {"name": "new"}, format="json")

    assert anonymous.status_code == 401
    assert anonymous.json()["code"] == "not_authenticated"
    assert builder.status_code == 403
    assert builder.json()["code"] == "permission_denied"
    assert list(Cluster.objects.values_list("name", "token_hash")) == [("edge", token_hash)]


def test_cluster_create_shows_token_once(api_client, admin_member):
    api_client.force_authenticate(admin_member)

    response = api_client.post(
        "/api/v1/admin/clusters", {"name": "edge", "description": "Edge site"}, format="json"
    )

    assert response.status_code == 201
    body = response.json()
    token = body["token"]
    assert body["name"] == "edge"
    assert body["status"] == "disconnected"
    assert Cluster.objects.get(name="edge").token_hash == hash_secret(token)
    listing = api_client.get("/api/v1/admin/clusters")
    detail = api_client.get("/api/v1/admin/clusters/edge")
    assert listing.status_code == detail.status_code == 200
    for response in (listing, detail):
        assert token not in response.content.decode()
        assert "token" not in response.content.decode()
    assert set(detail.json()) == {
        "name",
        "description",
        "status",
        "runtime",
        "agent_version",
        "isolation",
        "isolated",
        "last_seen_at",
        "created_at",
    }
    assert (detail.json()["isolation"], detail.json()["isolated"]) == ({}, False)
    assert AuditEvent.objects.filter(action="cluster.create", target_id="edge").exists()


@pytest.mark.parametrize("name", ["Not Valid", "", "-edge"])
def test_cluster_create_invalid(api_client, admin_member, name):
    api_client.force_authenticate(admin_member)

    response = api_client.post("/api/v1/admin/clusters", {"name": name}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert "name" in response.json()["errors"]
    assert not Cluster.objects.exists()


def test_cluster_create_duplicate(api_client, admin_member):
    ClusterFactory(name="edge")
    api_client.force_authenticate(admin_member)

    response = api_client.post("/api/v1/admin/clusters", {"name": "edge"}, format="json")

    assert response.status_code == 400
    assert "name" in response.json()["errors"]
    assert Cluster.objects.count() == 1


def test_cluster_rotate_token(api_client, admin_member):
    cluster = ClusterFactory(name="edge")
    old_hash = cluster.token_hash
    api_client.force_authenticate(admin_member)

    response = api_client.post("/api/v1/admin/clusters/edge/rotate-token")

    assert response.status_code == 200
    token = response.json()["token"]
    cluster.refresh_from_db()
    assert cluster.token_hash == hash_secret(token) != old_hash
    assert token not in api_client.get("/api/v1/admin/clusters/edge").content.decode()
    assert AuditEvent.objects.filter(action="cluster.rotate_token", target_id="edge").exists()


def test_cluster_delete(api_client, admin_member):
    ClusterFactory(name="edge")
    api_client.force_authenticate(admin_member)

    response = api_client.delete("/api/v1/admin/clusters/edge")

    assert response.status_code == 204
    assert not Cluster.objects.exists()
    assert AuditEvent.objects.filter(action="cluster.delete", target_id="edge").exists()


def test_isolation_is_shown_read_only(api_client, admin_member):
    reported = {"sandbox": "bubblewrap", "network": "private", "limits": "prlimit"}
    ClusterFactory(
        name="edge", isolation=reported, tunnel_channel="specific.x", last_seen_at=timezone.now()
    )
    ClusterFactory(name="bare", isolation={"sandbox": "none"})
    api_client.force_authenticate(admin_member)

    edge = api_client.get("/api/v1/admin/clusters/edge").json()
    bare = api_client.get("/api/v1/admin/clusters/bare").json()
    api_client.patch("/api/v1/admin/clusters/edge", {"isolation": {}}, format="json")

    assert (edge["isolation"], edge["isolated"]) == (reported, True)
    assert (bare["isolation"], bare["isolated"]) == ({"sandbox": "none"}, False)
    assert Cluster.objects.get(name="edge").isolation == reported
    schema = api_client.get("/api/v1/schema/", HTTP_ACCEPT="application/json").json()
    cluster = schema["components"]["schemas"]["Cluster"]
    assert cluster["properties"]["isolation"]["readOnly"] is True
    isolation = schema["components"]["schemas"]["Isolation"]["properties"]
    assert set(isolation) == {"sandbox", "network", "limits"}


def test_unknown_cluster_is_not_found(api_client, admin_member):
    api_client.force_authenticate(admin_member)

    assert api_client.get("/api/v1/admin/clusters/none").status_code == 404
    assert api_client.post("/api/v1/admin/clusters/none/rotate-token").status_code == 404
