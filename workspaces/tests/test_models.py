"""Workspace tag assignments: the only workspace data the portal keeps."""

import pytest
from django.db import IntegrityError, transaction

from accounts.tests.factories import UserTagFactory
from clusters.tests.factories import ClusterFactory
from workspaces.models import WorkspaceTagAssignment
from workspaces.tests.factories import WorkspaceTagAssignmentFactory

pytestmark = pytest.mark.django_db


def test_a_tag_is_assigned_to_a_workspace_once():
    assignment = WorkspaceTagAssignmentFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        WorkspaceTagAssignment.objects.create(
            cluster=assignment.cluster,
            environment_id=assignment.environment_id,
            tag=assignment.tag,
        )


def test_the_same_tag_on_other_workspaces_and_other_tags_on_the_same_workspace():
    assignment = WorkspaceTagAssignmentFactory()
    WorkspaceTagAssignmentFactory(cluster=assignment.cluster, tag=assignment.tag)
    WorkspaceTagAssignmentFactory(
        cluster=ClusterFactory(), environment_id=assignment.environment_id, tag=assignment.tag
    )
    WorkspaceTagAssignmentFactory(
        cluster=assignment.cluster,
        environment_id=assignment.environment_id,
        tag=UserTagFactory(user=assignment.tag.user),
    )
    assert WorkspaceTagAssignment.objects.count() == 4


@pytest.mark.parametrize("deleted", ["tag", "cluster", "user"])
def test_assignments_go_with_their_tag_cluster_or_member(deleted):
    assignment = WorkspaceTagAssignmentFactory()
    {"tag": assignment.tag, "cluster": assignment.cluster, "user": assignment.tag.user}[
        deleted
    ].delete()
    assert not WorkspaceTagAssignment.objects.exists()


def test_str():
    assignment = WorkspaceTagAssignmentFactory(
        tag=UserTagFactory(name="frontend"), environment_id="env-42"
    )
    assert str(assignment) == "frontend on env-42"
