import factory

from clusters.models import Cluster
from core.crypto import hash_secret


class ClusterFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Cluster
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"cluster-{n}")
    token_hash = factory.Sequence(lambda n: hash_secret(f"agent-token-{n}"))
    token_prefix = factory.Sequence(lambda n: f"enca_{n:07d}")
