import factory

from accounts.tests.factories import UserTagFactory
from relay.tests.factories import ClusterFactory
from workspaces.models import WorkspaceTagAssignment


class WorkspaceTagAssignmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WorkspaceTagAssignment

    environment_id = factory.Sequence(lambda n: f"env-{n:012x}")
    cluster = factory.SubFactory(ClusterFactory)
    tag = factory.SubFactory(UserTagFactory)
