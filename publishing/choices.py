from django.db import models


class PublishStatus(models.TextChoices):
    PENDING = "pending", "Pending review"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    PUBLISHING = "publishing", "Publishing"
    PUBLISHED = "published", "Published"
    FAILED = "failed", "Failed"


OPEN_STATUSES = (PublishStatus.PENDING, PublishStatus.APPROVED, PublishStatus.PUBLISHING)
