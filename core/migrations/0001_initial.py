# Hand-written: the organisation settings move here from the `portal` project package.
# The table is kept as it is (state only), then renamed: existing rows stay.

import django.core.validators
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [("portal", "0001_initial")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="OrganizationSettings",
                    fields=[
                        (
                            "id",
                            models.PositiveSmallIntegerField(
                                default=1, editable=False, primary_key=True, serialize=False
                            ),
                        ),
                        ("portal_name", models.CharField(default="Enclave", max_length=80)),
                        (
                            "logo_light_url",
                            models.URLField(
                                blank=True,
                                help_text="URL of the logo shown on light backgrounds.",
                                verbose_name="logo (light theme)",
                            ),
                        ),
                        (
                            "logo_dark_url",
                            models.URLField(
                                blank=True,
                                help_text="URL of the logo shown on dark backgrounds.",
                                verbose_name="logo (dark theme)",
                            ),
                        ),
                        (
                            "accent_color",
                            models.CharField(
                                default="#4f46e5",
                                max_length=7,
                                validators=[
                                    django.core.validators.RegexValidator(
                                        "^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$",
                                        code="invalid_colour",
                                        message="Enter a hex colour such as #4f46e5 or #fff.",
                                    )
                                ],
                            ),
                        ),
                        (
                            "welcome_title",
                            models.CharField(default="Build something", max_length=120),
                        ),
                        (
                            "welcome_description",
                            models.TextField(
                                blank=True,
                                default="Pick a blueprint, launch a workspace and start building.",
                            ),
                        ),
                        (
                            "welcome_cta",
                            models.CharField(
                                default="Launch", max_length=60, verbose_name="welcome button label"
                            ),
                        ),
                        (
                            "max_running_workspaces_per_user",
                            models.PositiveSmallIntegerField(
                                default=3,
                                validators=[
                                    django.core.validators.MinValueValidator(1),
                                    django.core.validators.MaxValueValidator(100),
                                ],
                            ),
                        ),
                        (
                            "launch_rate_per_minute",
                            models.PositiveSmallIntegerField(
                                default=5,
                                help_text="Workspace launches per user per minute.",
                                validators=[
                                    django.core.validators.MinValueValidator(1),
                                    django.core.validators.MaxValueValidator(1000),
                                ],
                            ),
                        ),
                        (
                            "api_rate_per_minute",
                            models.PositiveIntegerField(
                                default=200,
                                help_text="API requests per user per minute.",
                                validators=[
                                    django.core.validators.MinValueValidator(1),
                                    django.core.validators.MaxValueValidator(100000),
                                ],
                            ),
                        ),
                        (
                            "idle_auto_stop_minutes",
                            models.PositiveIntegerField(
                                default=0,
                                help_text="Stop a workspace idle this long; 0 never stops it.",
                            ),
                        ),
                        ("updated_at", models.DateTimeField(auto_now=True)),
                    ],
                    options={
                        "db_table": "portal_organizationsettings",
                        "verbose_name": "organisation settings",
                        "verbose_name_plural": "organisation settings",
                        "constraints": [
                            models.CheckConstraint(
                                condition=models.Q(("id", 1)),
                                name="organization_settings_singleton",
                            )
                        ],
                    },
                ),
            ],
        ),
    ]
