# Reports get an owner (who created them, kept from created_by) and groups they are shared with; names are
# unique per owner instead of across the site.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("reports", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RenameField(model_name="report", old_name="created_by", new_name="owner"),
        migrations.AlterField(
            model_name="report",
            name="owner",
            field=models.ForeignKey(
                blank=True,
                help_text="who created it; without an owner only staff see it",
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="reports_owned",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddField(
            model_name="report",
            name="shared_with",
            field=models.ManyToManyField(
                blank=True,
                help_text="their members see it and upload to it",
                related_name="reports",
                to="auth.group",
            ),
        ),
        migrations.AlterField(model_name="report", name="name", field=models.CharField(max_length=200)),
        migrations.AddConstraint(
            model_name="report",
            constraint=models.UniqueConstraint(fields=("owner", "name"), name="report_name_once_per_owner"),
        ),
    ]
