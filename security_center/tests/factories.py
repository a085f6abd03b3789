import factory

from accounts.tests.factories import UserFactory
from security_center.choices import ConnectionKind, FirewallAction
from security_center.models import ConnectionSession, FirewallEvent, FirewallRule


class FirewallRuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = FirewallRule

    action = FirewallAction.DENY
    cidr = "203.0.113.0/24"
    description = "test rule"
    priority = factory.Sequence(lambda n: (n + 1) * 10)


class FirewallEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = FirewallEvent

    ip = "203.0.113.7"
    rule = factory.SubFactory(FirewallRuleFactory)
    rule_summary = factory.LazyAttribute(lambda o: str(o.rule))
    kind = ConnectionKind.SHELL


class ConnectionSessionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ConnectionSession

    user = factory.SubFactory(UserFactory)
    email = factory.LazyAttribute(lambda o: o.user.email)
    ip = "198.51.100.4"
    kind = ConnectionKind.SHELL
    environment_id = factory.Sequence(lambda n: f"env-{n:012x}")
