from django.apps import AppConfig


class CoreConfig(AppConfig):
    """The base every domain app builds on: errors, API plumbing, admin bases, crypto,
    validators and the organisation settings singleton. It imports no other app."""

    name = "core"
    verbose_name = "Organisation"
