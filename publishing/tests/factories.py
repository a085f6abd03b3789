import factory

from accounts.tests.factories import AdminFactory, UserFactory
from blueprints.tests.factories import BlueprintFactory
from clusters.tests.factories import ClusterFactory
from publishing.models import PublishRequest, TrustRule


class PublishRequestFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PublishRequest

    environment_id = factory.Sequence(lambda n: f"env-{n:012x}")
    cluster = factory.SubFactory(ClusterFactory)
    requester = factory.SubFactory(UserFactory)
    blueprint = factory.SubFactory(BlueprintFactory)
    subdomain = factory.Sequence(lambda n: f"app-{n}")
    message = "Please publish"


class TrustRuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TrustRule

    user = factory.SubFactory(UserFactory)
    blueprint = factory.SubFactory(BlueprintFactory)
    granted_by = factory.SubFactory(AdminFactory)
