from django.db import models


class FirewallAction(models.TextChoices):
    ALLOW = "allow", "Allow"
    DENY = "deny", "Deny"


class ConnectionKind(models.TextChoices):
    SHELL = "shell", "Terminal"
    PREVIEW = "preview", "Preview"
    LOGS = "logs", "Logs"
