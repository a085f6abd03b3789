from django.apps import AppConfig


class BlueprintsConfig(AppConfig):
    """Workspace templates with access rules, AI providers and editor layout."""

    name = "blueprints"
