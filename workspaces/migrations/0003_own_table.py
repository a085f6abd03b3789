from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("workspaces", "0002_tickets_and_clusters"), ("relay", "0002_hand_over_models")]

    operations = [migrations.AlterModelTable(name="ticket", table=None)]
