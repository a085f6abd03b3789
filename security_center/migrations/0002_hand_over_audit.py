# Hand-written: clusters now live in `clusters`, and the audit log in `audit`.
# State only: the tables and their rows stay as they are.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("security_center", "0001_initial"),
        ("clusters", "0001_initial"),
        ("audit", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="connectionsession",
                    name="cluster",
                    field=models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        to="clusters.cluster",
                    ),
                ),
                migrations.DeleteModel(name="AuditEvent"),
            ],
        ),
    ]
