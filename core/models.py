"""Organisation-wide configuration: one `OrganizationSettings` row for the whole portal."""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from core.validators import hex_colour


class OrganizationSettings(models.Model):
    """The organisation singleton: branding, welcome screen and limits.

    Exactly one row exists (primary key 1, enforced by a check constraint); `load()`
    creates it with the defaults on first use. Limits take effect on the next request:
    nothing caches them across requests, so a change needs no restart.
    """

    SINGLETON_PK = 1

    id = models.PositiveSmallIntegerField(primary_key=True, default=SINGLETON_PK, editable=False)
    portal_name = models.CharField(max_length=80, default="Enclave")
    logo_light_url = models.URLField(
        "logo (light theme)", blank=True, help_text="URL of the logo shown on light backgrounds."
    )
    logo_dark_url = models.URLField(
        "logo (dark theme)", blank=True, help_text="URL of the logo shown on dark backgrounds."
    )
    accent_color = models.CharField(max_length=7, default="#4f46e5", validators=[hex_colour])
    welcome_title = models.CharField(max_length=120, default="Build something")
    welcome_description = models.TextField(
        blank=True, default="Pick a blueprint, launch a workspace and start building."
    )
    welcome_cta = models.CharField("welcome button label", max_length=60, default="Launch")
    max_running_workspaces_per_user = models.PositiveSmallIntegerField(
        default=3, validators=[MinValueValidator(1), MaxValueValidator(100)]
    )
    launch_rate_per_minute = models.PositiveSmallIntegerField(
        default=5,
        validators=[MinValueValidator(1), MaxValueValidator(1000)],
        help_text="Workspace launches per user per minute.",
    )
    api_rate_per_minute = models.PositiveIntegerField(
        default=200,
        validators=[MinValueValidator(1), MaxValueValidator(100000)],
        help_text="API requests per user per minute.",
    )
    idle_auto_stop_minutes = models.PositiveIntegerField(
        default=0, help_text="Stop a workspace idle this long; 0 never stops it."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "organisation settings"
        verbose_name_plural = "organisation settings"
        constraints = [
            models.CheckConstraint(condition=models.Q(id=1), name="organization_settings_singleton")
        ]

    def __str__(self) -> str:
        return f"Settings of {self.portal_name}"

    @classmethod
    def load(cls) -> OrganizationSettings:
        """The singleton, created with defaults when missing."""
        obj, _ = cls.objects.get_or_create(id=cls.SINGLETON_PK)
        return obj
