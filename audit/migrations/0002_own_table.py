from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial"), ("security_center", "0002_hand_over_audit")]

    operations = [migrations.AlterModelTable(name="auditevent", table=None)]
