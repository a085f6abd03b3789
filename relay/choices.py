from django.db import models


class Runtime(models.TextChoices):
    LOCAL = "local", "Local processes"
    KUBERNETES = "kubernetes", "Kubernetes"


class TicketKind(models.TextChoices):
    SHELL = "shell", "Shell"
    PREVIEW = "preview", "Preview"
