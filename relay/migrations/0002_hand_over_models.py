# Hand-written: clusters move to `clusters` and tickets to `workspaces`; the relay keeps
# no table. State only: once every foreign key points at the new owners, the models
# leave the relay's state (the tables are renamed by their new owners).

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("relay", "0001_initial"),
        ("workspaces", "0002_tickets_and_clusters"),
        ("blueprints", "0002_cluster_in_clusters"),
        ("publishing", "0002_cluster_in_clusters"),
        ("security_center", "0002_hand_over_audit"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="Ticket"),
                migrations.DeleteModel(name="Cluster"),
            ]
        )
    ]
