import datetime

import factory
from django.utils import timezone

from accounts.tests.factories import UserFactory, UserTagFactory
from clusters.tests.factories import ClusterFactory
from core.crypto import hash_secret
from workspaces.choices import TicketKind
from workspaces.models import Ticket, WorkspaceTagAssignment


class WorkspaceTagAssignmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WorkspaceTagAssignment

    environment_id = factory.Sequence(lambda n: f"env-{n:012x}")
    cluster = factory.SubFactory(ClusterFactory)
    tag = factory.SubFactory(UserTagFactory)


class TicketFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Ticket

    kind = TicketKind.SHELL
    token_hash = factory.Sequence(lambda n: hash_secret(f"ticket-{n}"))
    user = factory.SubFactory(UserFactory)
    environment_id = factory.Sequence(lambda n: f"env-{n:012x}")
    cluster = factory.SubFactory(ClusterFactory)
    expires_at = factory.LazyFunction(lambda: timezone.now() + datetime.timedelta(seconds=30))
