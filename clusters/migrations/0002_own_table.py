from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("clusters", "0001_initial"), ("relay", "0002_hand_over_models")]

    operations = [migrations.AlterModelTable(name="cluster", table=None)]
