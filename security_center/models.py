"""The security centre's records: firewall rules and events, connection sessions."""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from security_center.choices import ConnectionKind, FirewallAction

_MAPPED = ipaddress.ip_network("::ffff:0:0/96")


def normalize_cidr(value: str) -> str:
    """The canonical text of an IPv4/IPv6 network; a bare address becomes a /32 or /128;
    an IPv4-mapped IPv6 network (``::ffff:10.0.0.0/104``) becomes its IPv4 one
    (``10.0.0.0/8``), which is how mapped clients are matched.

    Host bits must be zero (``10.0.0.1/8`` is refused, naming ``10.0.0.0/8``), so a rule
    always means what it says.
    """
    text = (value or "").strip()
    try:
        network = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        try:
            loose = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ValidationError(
                f"{text!r} is not an IPv4 or IPv6 address or CIDR block.", code="invalid_cidr"
            ) from exc
        raise ValidationError(
            f"{text} has host bits set; did you mean {loose}?", code="invalid_cidr"
        ) from exc
    if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_MAPPED):
        # Clients reached over IPv6 as ::ffff:a.b.c.d are matched as the IPv4 address they
        # are: the rule is stored as that IPv4 network, so it cannot silently match nothing.
        first = network.network_address.ipv4_mapped
        network = ipaddress.ip_network(f"{first}/{network.prefixlen - 96}")
    return str(network)


class FirewallRule(models.Model):
    """An allow/deny rule on client IPs for terminal and preview connections.

    Enabled rules are evaluated by ascending `priority` (unique); the first match
    decides, and an address no rule matches is allowed.
    """

    action = models.CharField(max_length=5, choices=FirewallAction.choices)
    cidr = models.CharField("CIDR", max_length=49, help_text="e.g. 10.0.0.0/8 or 2001:db8::/32")
    description = models.CharField(max_length=200, blank=True)
    priority = models.PositiveIntegerField(unique=True, help_text="Lower is evaluated first.")
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["priority"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(action__in=FirewallAction.values), name="firewall_action_valid"
            )
        ]

    def __str__(self) -> str:
        return f"#{self.priority} {self.action} {self.cidr}"

    def clean(self) -> None:
        super().clean()
        self.cidr = normalize_cidr(self.cidr)

    @property
    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        return ipaddress.ip_network(self.cidr)


class FirewallEvent(models.Model):
    """A connection attempt the firewall blocked (append-only)."""

    ip = models.GenericIPAddressField()
    rule = models.ForeignKey(FirewallRule, null=True, on_delete=models.SET_NULL, related_name="+")
    rule_summary = models.CharField(max_length=120, blank=True)
    kind = models.CharField(max_length=10, choices=ConnectionKind.choices)
    user_email = models.EmailField(blank=True)
    environment_id = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind} from {self.ip} blocked by {self.rule_summary}"


class ConnectionSession(models.Model):
    """One terminal session or one preview cookie session, from start to end.

    `channel_name` addresses the live consumer so an admin can end it; `ended_at` and
    `close_reason` are written once, whatever ended the session.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    email = models.EmailField()
    ip = models.GenericIPAddressField()
    kind = models.CharField(max_length=10, choices=ConnectionKind.choices)
    environment_id = models.CharField(max_length=100)
    cluster = models.ForeignKey("clusters.Cluster", null=True, on_delete=models.SET_NULL)
    port = models.PositiveIntegerField(null=True, blank=True)
    started_at = models.DateTimeField(auto_now_add=True, db_index=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    last_activity_at = models.DateTimeField(null=True, blank=True)
    bytes_in = models.BigIntegerField(default=0)
    bytes_out = models.BigIntegerField(default=0)
    requests = models.PositiveIntegerField(default=0)
    close_reason = models.CharField(max_length=100, blank=True)
    channel_name = models.CharField(max_length=200, blank=True, editable=False)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["ended_at"], name="connection_active_idx")]

    def __str__(self) -> str:
        return f"{self.kind} {self.email} → {self.environment_id}"

    @property
    def is_active(self) -> bool:
        return self.ended_at is None
