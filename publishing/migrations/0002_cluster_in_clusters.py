# Hand-written: clusters now live in `clusters` (state only, the column is unchanged).

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("publishing", "0001_initial"), ("clusters", "0001_initial")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="publishrequest",
                    name="cluster",
                    field=models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT, to="clusters.cluster"
                    ),
                ),
            ],
        ),
    ]
