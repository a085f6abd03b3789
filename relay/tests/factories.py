import datetime

import factory
from django.utils import timezone

from accounts.tests.factories import UserFactory
from relay.choices import TicketKind
from relay.models import Cluster, Ticket, hash_secret


class ClusterFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Cluster
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"cluster-{n}")
    token_hash = factory.Sequence(lambda n: hash_secret(f"agent-token-{n}"))
    token_prefix = factory.Sequence(lambda n: f"enca_{n:07d}")


class TicketFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Ticket

    kind = TicketKind.SHELL
    token_hash = factory.Sequence(lambda n: hash_secret(f"ticket-{n}"))
    user = factory.SubFactory(UserFactory)
    environment_id = factory.Sequence(lambda n: f"env-{n:012x}")
    cluster = factory.SubFactory(ClusterFactory)
    expires_at = factory.LazyFunction(lambda: timezone.now() + datetime.timedelta(seconds=30))
