from django.db import models


class Runtime(models.TextChoices):
    LOCAL = "local", "Local processes"
    KUBERNETES = "kubernetes", "Kubernetes"


class TunnelCloseReason(models.TextChoices):
    """Why the portal ended an agent's live tunnel (audited as `cluster.tunnel_closed`)."""

    TOKEN_ROTATED = "token_rotated", "Agent token rotated"
    CLUSTER_DELETED = "cluster_deleted", "Cluster deleted"
