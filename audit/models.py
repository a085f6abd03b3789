"""The audit log: every workspace operation and every admin change, append-only and chained."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from audit.choices import AuditOutcome


class AuditEvent(models.Model):
    """One entry of the append-only audit log, chained to its predecessor.

    `hash` is an HMAC-SHA256, under the audit key `key_id` (`audit.keys`: derived from
    the configured encryption keys, never stored here), over this entry's content and
    `prev_hash`, so altering or removing any row breaks the chain from there on and it
    cannot be recomputed without the key (`manage.py verify_audit_chain`). `prev_hash` is
    unique: two writers can never fork the chain.
    """

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_email = models.CharField(max_length=254, blank=True)
    action = models.CharField(max_length=80, db_index=True)
    target_type = models.CharField(max_length=50, blank=True)
    target_id = models.CharField(max_length=100, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    outcome = models.CharField(
        max_length=10, choices=AuditOutcome.choices, default=AuditOutcome.SUCCESS
    )
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField()
    key_id = models.CharField(max_length=32, editable=False, default="")
    prev_hash = models.CharField(max_length=64, unique=True, editable=False)
    hash = models.CharField(max_length=64, unique=True, editable=False)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_email or 'system'} {self.action}"
