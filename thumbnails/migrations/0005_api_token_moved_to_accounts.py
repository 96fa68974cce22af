"""API tokens now belong to accounts (accounts/migrations/0001_initial.py took the table over): thumbnails
forgets the model, and the table stays as it is."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("thumbnails", "0004_api_token_table_to_accounts"), ("accounts", "0001_initial")]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[migrations.DeleteModel(name="ApiToken")])
    ]
