"""API tokens move to the accounts app (they are not imaging): first their table takes its new name."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("thumbnails", "0001_initial")]

    operations = [migrations.AlterModelTable(name="ApiToken", table="accounts_apitoken")]
