from django.db import models


class FirewallAction(models.TextChoices):
    ALLOW = "allow", "Allow"
    DENY = "deny", "Deny"


class ConnectionKind(models.TextChoices):
    SHELL = "shell", "Terminal"
    PREVIEW = "preview", "Preview"


class AuditOutcome(models.TextChoices):
    SUCCESS = "success", "Success"
    FAILURE = "failure", "Failure"
    DENIED = "denied", "Denied"
