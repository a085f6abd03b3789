from django.apps import AppConfig


class ClustersConfig(AppConfig):
    """Clusters and their agents' credentials: below every app that runs workspaces."""

    name = "clusters"
