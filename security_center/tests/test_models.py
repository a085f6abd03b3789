"""Firewall rules (CIDR normalisation, unique priority) and the display of every record."""

import re

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from audit.tests.factories import AuditEventFactory
from security_center.choices import FirewallAction
from security_center.models import FirewallRule, normalize_cidr
from security_center.tests.factories import (
    ConnectionSessionFactory,
    FirewallEventFactory,
    FirewallRuleFactory,
)


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("10.0.0.0/8", "10.0.0.0/8"),
        (" 192.168.1.0/24 ", "192.168.1.0/24"),
        ("0.0.0.0/0", "0.0.0.0/0"),
        ("203.0.113.7", "203.0.113.7/32"),
        ("2001:db8::/32", "2001:db8::/32"),
        ("2001:DB8:0:0::/64", "2001:db8::/64"),
        ("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1/128"),
        ("::1", "::1/128"),
        ("::/0", "::/0"),
        # IPv4-mapped IPv6 rules are stored as the IPv4 network their clients are matched as.
        ("::ffff:10.0.0.0/104", "10.0.0.0/8"),
        ("::ffff:203.0.113.7", "203.0.113.7/32"),
        ("::ffff:0:0/96", "0.0.0.0/0"),
    ],
)
def test_normalize_cidr(raw, normal):
    assert normalize_cidr(raw) == normal


@pytest.mark.django_db
@pytest.mark.parametrize("client", ["10.1.2.3", "::ffff:10.1.2.3"])
def test_a_mapped_ipv6_rule_matches_ipv4_clients(client):
    from security_center.services import firewall_evaluate

    rule = FirewallRuleFactory(cidr="::ffff:10.0.0.0/104", action="deny", priority=1)
    rule.full_clean()
    rule.save()
    decision = firewall_evaluate(client)
    assert not decision.allowed and decision.rule == rule


@pytest.mark.parametrize(
    ("raw", "suggestion"),
    [
        ("10.0.0.1/8", "10.0.0.0/8"),
        ("192.168.1.77/24", "192.168.1.0/24"),
        ("2001:db8::1/32", "2001:db8::/32"),
    ],
)
def test_host_bits_are_refused_with_a_suggestion(raw, suggestion):
    with pytest.raises(ValidationError, match=re.escape(f"did you mean {suggestion}")):
        normalize_cidr(raw)


@pytest.mark.parametrize(
    "raw", ["", "not-an-ip", "10.0.0.0/33", "256.0.0.1", "10.0.0/8", "2001:db8::/129", "::g"]
)
def test_invalid_cidrs_are_refused(raw):
    with pytest.raises(ValidationError, match="not an IPv4 or IPv6"):
        normalize_cidr(raw)


@pytest.mark.django_db
def test_full_clean_normalises_the_rule_cidr():
    rule = FirewallRule(action=FirewallAction.DENY, cidr=" 2001:DB8::1 ", priority=1)
    rule.full_clean()
    assert rule.cidr == "2001:db8::1/128"
    rule.save()
    assert rule.network.version == 6


@pytest.mark.django_db
def test_full_clean_puts_cidr_errors_on_the_rule():
    rule = FirewallRule(action=FirewallAction.DENY, cidr="10.0.0.1/8", priority=1)
    with pytest.raises(ValidationError, match=re.escape("did you mean 10.0.0.0/8")):
        rule.full_clean()


@pytest.mark.django_db
def test_firewall_priority_is_unique():
    FirewallRuleFactory(priority=10)
    with pytest.raises(IntegrityError), transaction.atomic():
        FirewallRule.objects.create(action="allow", cidr="10.0.0.0/8", priority=10)
    with pytest.raises(ValidationError) as excinfo:
        FirewallRule(action="allow", cidr="10.0.0.0/8", priority=10).full_clean()
    assert "priority" in excinfo.value.message_dict


@pytest.mark.django_db
def test_firewall_action_is_constrained():
    with pytest.raises(IntegrityError), transaction.atomic():
        FirewallRule.objects.create(action="drop", cidr="10.0.0.0/8", priority=1)
    with pytest.raises(ValidationError) as excinfo:
        FirewallRule(action="drop", cidr="10.0.0.0/8", priority=2).full_clean()
    assert "action" in excinfo.value.message_dict


@pytest.mark.django_db
def test_str_of_every_security_record(member):
    rule = FirewallRuleFactory(priority=5, action="deny", cidr="203.0.113.0/24")
    assert str(rule) == "#5 deny 203.0.113.0/24"
    event = FirewallEventFactory(rule=rule, ip="203.0.113.9", kind="preview")
    assert str(event) == "preview from 203.0.113.9 blocked by #5 deny 203.0.113.0/24"
    session = ConnectionSessionFactory(user=member, environment_id="env-1", kind="shell")
    assert str(session) == "shell builder@example.com → env-1"
    assert session.is_active
    audit = AuditEventFactory(action="blueprint.create", actor=member)
    assert str(audit).endswith(" builder@example.com blueprint.create")
    assert str(AuditEventFactory(action="cluster.create")).endswith(" system cluster.create")
