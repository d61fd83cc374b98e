"""Install the playbook's communication templates (editable afterwards in the admin)."""

from django.db import migrations


def install(apps, schema_editor):
    from comms.rendering import DEFAULT_TEMPLATES

    MessageTemplate = apps.get_model("comms", "MessageTemplate")
    for d in DEFAULT_TEMPLATES:
        MessageTemplate.objects.get_or_create(
            key=d.key,
            defaults={
                "name": d.name,
                "audience": d.audience,
                "announces_status": d.announces_status,
                "subject": d.subject,
                "body": d.body,
                "position": d.position,
                "is_default": True,
                "active": True,
            },
        )


def remove(apps, schema_editor):
    from comms.rendering import DEFAULT_TEMPLATES

    MessageTemplate = apps.get_model("comms", "MessageTemplate")
    MessageTemplate.objects.filter(
        key__in=[d.key for d in DEFAULT_TEMPLATES], is_default=True, updates__isnull=True
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("comms", "0001_initial")]

    operations = [migrations.RunPython(install, remove)]
