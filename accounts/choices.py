from django.db import models


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    USER = "user", "User"


class MemberStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    PENDING = "pending", "Pending"


class ExperienceLevel(models.TextChoices):
    NON_TECHNICAL = "non_technical", "Not technical: explain in plain words"
    FAMILIAR = "familiar", "Familiar with the basics"
    DEVELOPER = "developer", "Developer"
