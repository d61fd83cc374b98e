"""The group whose members are invited to every post-incident review as database specialists
(settings.QUELL_DATABASE_SPECIALISTS_GROUP). Created empty; admins add people in the admin."""

from django.conf import settings
from django.db import migrations


def create_group(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Group.objects.get_or_create(name=settings.QUELL_DATABASE_SPECIALISTS_GROUP)


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("postmortems", "0002_revision_editor"),
    ]

    operations = [migrations.RunPython(create_group, migrations.RunPython.noop)]
