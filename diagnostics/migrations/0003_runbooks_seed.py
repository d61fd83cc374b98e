# The playbook's resolution strategies as the default runbooks (edit them in the admin).
# The tables come with 0002 (generated with them); this migration only seeds the data.

from django.db import migrations


def seed(apps, schema_editor):
    from diagnostics.remediation.runbooks.defaults import seed_runbooks

    seed_runbooks(apps.get_model("diagnostics", "Runbook"), apps.get_model("diagnostics", "RunbookStep"))


class Migration(migrations.Migration):

    dependencies = [
        ('diagnostics', '0002_integrity'),
    ]

    operations = [
        migrations.RunPython(seed, migrations.RunPython.noop),
    ]
