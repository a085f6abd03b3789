"""Workspace tests run against the in-memory control plane: the only fake, at the edge."""

import pytest
from django.core.cache import cache
from django.test import override_settings
from django.utils import timezone

from accounts.tests.factories import UserFactory
from blueprints.tests.factories import BlueprintFactory
from clusters.tests.factories import ClusterFactory
from workspaces.controlplane.memory import InMemoryControlPlane

MEMORY_CONTROL_PLANE = "workspaces.controlplane.memory.InMemoryControlPlane"


@pytest.fixture(autouse=True)
def control_plane():
    """A fresh, empty data plane (and cache) for every test."""
    InMemoryControlPlane.reset()
    cache.clear()
    with override_settings(CONTROL_PLANE=MEMORY_CONTROL_PLANE):
        yield InMemoryControlPlane
    InMemoryControlPlane.reset()
    cache.clear()


@pytest.fixture
def cluster(db):
    """A cluster whose agent is connected (tunnel recorded, heard from just now)."""
    return ClusterFactory(name="main", tunnel_channel="test-channel", last_seen_at=timezone.now())


@pytest.fixture
def blueprint(cluster):
    """An enabled blueprint, open to every member, on the connected cluster."""
    return BlueprintFactory(key="webapp", name="Web app", cluster=cluster)


@pytest.fixture
def stranger(db):
    return UserFactory(email="stranger@example.com")


@pytest.fixture
def member_api(api_client, member):
    api_client.force_authenticate(member)
    return api_client


@pytest.fixture
def admin_api(api_client, admin_member):
    api_client.force_authenticate(admin_member)
    return api_client
