from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("clusters", "0002_own_table")]

    operations = [
        migrations.AddField(
            model_name="cluster",
            name="isolation",
            field=models.JSONField(blank=True, default=dict, editable=False),
        )
    ]
