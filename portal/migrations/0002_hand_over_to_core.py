# Hand-written: `core` now owns the organisation settings (same table, state only).

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("portal", "0001_initial"), ("core", "0001_initial")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="OrganizationSettings")]
        )
    ]
