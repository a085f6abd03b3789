from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Members (identified by e-mail), their roles, tags and personal API tokens."""

    name = "accounts"
