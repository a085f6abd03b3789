from django.apps import AppConfig


class RelayConfig(AppConfig):
    """Clusters (agents), the outbound tunnel and one-time connection tickets."""

    name = "relay"
