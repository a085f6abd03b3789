"""A cluster that blueprints still run on is kept: API and console refuse to delete it."""

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from blueprints.tests.factories import BlueprintFactory
from clusters.models import Cluster
from clusters.tests.factories import ClusterFactory

pytestmark = pytest.mark.django_db


def test_the_console_keeps_a_cluster_in_use(client, admin_member):
    used = BlueprintFactory().cluster
    client.force_login(admin_member)
    client.post(reverse("admin:clusters_cluster_delete", args=[used.pk]), {"post": "yes"})
    assert Cluster.objects.filter(pk=used.pk).exists()
    assert not AuditEvent.objects.filter(action="cluster.delete").exists()


def test_cluster_in_use_is_kept(api_client, admin_member):
    BlueprintFactory(cluster=ClusterFactory(name="edge"))
    api_client.force_authenticate(admin_member)

    response = api_client.delete("/api/v1/admin/clusters/edge")

    assert response.status_code == 409
    assert response.json()["code"] == "cluster_in_use"
    assert Cluster.objects.filter(name="edge").exists()
    assert not AuditEvent.objects.filter(action="cluster.delete").exists()
