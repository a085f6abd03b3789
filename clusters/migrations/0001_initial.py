# Hand-written: clusters move here from `relay` (the table is kept, state only, then renamed).

import django.core.validators
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [("relay", "0001_initial")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Cluster",
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
                            "name",
                            models.CharField(
                                max_length=50,
                                unique=True,
                                validators=[
                                    django.core.validators.RegexValidator(
                                        "^[a-z0-9](?:[a-z0-9-]{0,48}[a-z0-9])?$",
                                        code="invalid_cluster_name",
                                        message="Cluster names are 1-50 lowercase letters, digits or hyphens.",
                                    )
                                ],
                            ),
                        ),
                        ("description", models.CharField(blank=True, max_length=200)),
                        (
                            "token_hash",
                            models.CharField(editable=False, max_length=64, unique=True),
                        ),
                        ("token_prefix", models.CharField(editable=False, max_length=16)),
                        (
                            "runtime",
                            models.CharField(
                                blank=True,
                                choices=[
                                    ("local", "Local processes"),
                                    ("kubernetes", "Kubernetes"),
                                ],
                                editable=False,
                                max_length=20,
                            ),
                        ),
                        (
                            "agent_version",
                            models.CharField(blank=True, editable=False, max_length=40),
                        ),
                        (
                            "last_seen_at",
                            models.DateTimeField(blank=True, editable=False, null=True),
                        ),
                        (
                            "connected_at",
                            models.DateTimeField(blank=True, editable=False, null=True),
                        ),
                        (
                            "tunnel_channel",
                            models.CharField(blank=True, editable=False, max_length=200),
                        ),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                    ],
                    options={
                        "db_table": "relay_cluster",
                        "ordering": ["name"],
                    },
                ),
            ],
        ),
    ]
