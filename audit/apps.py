from django.apps import AppConfig


class AuditConfig(AppConfig):
    """The tamper-evident audit log. It is the lowest app: every other app, the base
    included, records its writes into it, and it imports none of them."""

    name = "audit"
