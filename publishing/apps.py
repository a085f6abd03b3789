from django.apps import AppConfig


class PublishingConfig(AppConfig):
    """Publish requests, their review, and trust rules that skip review."""

    name = "publishing"
