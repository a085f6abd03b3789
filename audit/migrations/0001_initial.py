# Hand-written: the audit log moves here from `security_center` (the table is kept, state
# only, then renamed: every entry and the hash chain stay as they are).

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("security_center", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="AuditEvent",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("actor_email", models.CharField(blank=True, max_length=254)),
                        ("action", models.CharField(db_index=True, max_length=80)),
                        ("target_type", models.CharField(blank=True, max_length=50)),
                        ("target_id", models.CharField(blank=True, max_length=100)),
                        ("ip", models.GenericIPAddressField(blank=True, null=True)),
                        (
                            "outcome",
                            models.CharField(
                                choices=[
                                    ("success", "Success"),
                                    ("failure", "Failure"),
                                    ("denied", "Denied"),
                                ],
                                default="success",
                                max_length=10,
                            ),
                        ),
                        ("details", models.JSONField(blank=True, default=dict)),
                        ("created_at", models.DateTimeField()),
                        ("prev_hash", models.CharField(editable=False, max_length=64, unique=True)),
                        ("hash", models.CharField(editable=False, max_length=64, unique=True)),
                        (
                            "actor",
                            models.ForeignKey(
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "db_table": "security_center_auditevent",
                        "ordering": ["-id"],
                    },
                ),
            ],
        ),
    ]
