# Hand-written: clusters now live in `clusters` (state only, the column is unchanged).

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("blueprints", "0001_initial"), ("clusters", "0001_initial")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="blueprint",
                    name="cluster",
                    field=models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="blueprints",
                        to="clusters.cluster",
                    ),
                ),
            ],
        ),
    ]
