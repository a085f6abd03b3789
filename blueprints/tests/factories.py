import factory

from blueprints.choices import AccessRuleKind, AIProviderKind, BlueprintState
from blueprints.models import AIProvider, Blueprint, BlueprintAccessRule
from clusters.tests.factories import ClusterFactory


class BlueprintFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Blueprint
        django_get_or_create = ("key",)

    key = factory.Sequence(lambda n: f"blueprint-{n}")
    name = factory.Sequence(lambda n: f"Blueprint {n}")
    description = "A test blueprint"
    state = BlueprintState.ENABLED
    cluster = factory.SubFactory(ClusterFactory)
    start_command = 'exec python3 -m http.server "$PORT" --bind 127.0.0.1'
    ports = factory.LazyFunction(lambda: [{"port": 3000, "name": "app"}])


class AccessRuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BlueprintAccessRule

    blueprint = factory.SubFactory(BlueprintFactory)
    kind = AccessRuleKind.DOMAIN
    value = "example.com"


class AIProviderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AIProvider

    blueprint = factory.SubFactory(BlueprintFactory)
    provider = AIProviderKind.ANTHROPIC
    model = "claude-sonnet-4-6"
    api_key = factory.Sequence(lambda n: f"sk-ant-test-secret-{n:06d}")
