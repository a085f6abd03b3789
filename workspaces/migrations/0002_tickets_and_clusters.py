# Hand-written: tickets move here from `relay`, and clusters now live in `clusters`.
# State only: the tables and their rows stay as they are.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("workspaces", "0001_initial"),
        ("clusters", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="workspacetagassignment",
                    name="cluster",
                    field=models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, to="clusters.cluster"
                    ),
                ),
                migrations.CreateModel(
                    name="Ticket",
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
                        (
                            "kind",
                            models.CharField(
                                choices=[("shell", "Shell"), ("preview", "Preview")], max_length=10
                            ),
                        ),
                        (
                            "token_hash",
                            models.CharField(editable=False, max_length=64, unique=True),
                        ),
                        ("environment_id", models.CharField(max_length=100)),
                        ("port", models.PositiveIntegerField(blank=True, null=True)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("expires_at", models.DateTimeField()),
                        ("used_at", models.DateTimeField(blank=True, null=True)),
                        ("client_ip", models.GenericIPAddressField(blank=True, null=True)),
                        (
                            "cluster",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE, to="clusters.cluster"
                            ),
                        ),
                        (
                            "user",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "db_table": "relay_ticket",
                        "ordering": ["-created_at"],
                        "indexes": [models.Index(fields=["expires_at"], name="ticket_expires_idx")],
                        "constraints": [
                            models.CheckConstraint(
                                condition=models.Q(("kind__in", ["shell", "preview"])),
                                name="ticket_kind_valid",
                            ),
                            models.CheckConstraint(
                                condition=models.Q(
                                    ("kind", "shell"), ("port__isnull", False), _connector="OR"
                                ),
                                name="ticket_preview_has_port",
                            ),
                        ],
                    },
                ),
            ],
        ),
    ]
