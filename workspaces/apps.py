from django.apps import AppConfig


class WorkspacesConfig(AppConfig):
    """Workspaces: discovered in the data plane, operated through the control plane."""

    name = "workspaces"
