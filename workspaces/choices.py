"""Choices of the workspaces app, built on the vocabulary both sides of the tunnel share."""

from django.db import models

from agent.protocol import environments as env


class WorkspaceStatus(models.TextChoices):
    """What the data plane reports for an environment (`agent.protocol.environments`)."""

    DEPLOYING = env.DEPLOYING, "Deploying"
    RUNNING = env.RUNNING, "Running"
    STOPPING = env.STOPPING, "Stopping"
    STOPPED = env.STOPPED, "Stopped"
    ERROR = env.ERROR, "Error"
    DELETING = env.DELETING, "Deleting"


class TicketKind(models.TextChoices):
    SHELL = "shell", "Shell"
    PREVIEW = "preview", "Preview"
