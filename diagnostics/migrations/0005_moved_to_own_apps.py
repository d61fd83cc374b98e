# Integrity checks and runs moved to diagnostics.integrity (label "integrity"), remediation
# records and runbooks to diagnostics.remediation (label "remediation"). Their tables keep their
# names (Meta.db_table): the models leave this app's state only, nothing is dropped. Content
# types follow the models so permissions, group grants and admin log entries keep pointing at
# them.

from django.db import migrations

MOVED = {
    "integrity": ("integrityresult", "integrityrun", "integritycheck"),
    "remediation": (
        "incidentrunbookstep",
        "incidentrunbook",
        "runbookstep",
        "runbook",
        "remediationaction",
    ),
}


def _relabel(apps, schema_editor, *, forward: bool) -> None:
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    for label, models in MOVED.items():
        old_label, new_label = ("diagnostics", label) if forward else (label, "diagnostics")
        for model in models:
            old = ContentType.objects.filter(app_label=old_label, model=model).first()
            if old is None:
                continue  # a new database: post_migrate creates the content type later
            stale = ContentType.objects.filter(app_label=new_label, model=model).first()
            if stale is not None:
                # Created by a post_migrate under the other label: the row with history wins.
                with schema_editor.connection.cursor() as cursor:
                    if "django_admin_log" in schema_editor.connection.introspection.table_names(
                        cursor
                    ):
                        cursor.execute(
                            "UPDATE django_admin_log SET content_type_id = %s "
                            "WHERE content_type_id = %s",
                            [old.pk, stale.pk],
                        )
                Permission.objects.filter(content_type=stale).delete()
                stale.delete()
            old.app_label = new_label
            old.save(update_fields=["app_label"])


def forward(apps, schema_editor):
    _relabel(apps, schema_editor, forward=True)


def backward(apps, schema_editor):
    _relabel(apps, schema_editor, forward=False)


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("diagnostics", "0004_own_sessions"),
        ("integrity", "0001_initial"),
        ("remediation", "0001_initial"),
        ("postmortems", "0005_integrity_run_moved"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            # Dependents first, so no model left in the state points at a deleted one.
            state_operations=[
                migrations.DeleteModel(name="IntegrityResult"),
                migrations.DeleteModel(name="IntegrityRun"),
                migrations.DeleteModel(name="IntegrityCheck"),
                migrations.DeleteModel(name="IncidentRunbookStep"),
                migrations.DeleteModel(name="IncidentRunbook"),
                migrations.DeleteModel(name="RunbookStep"),
                migrations.DeleteModel(name="Runbook"),
                migrations.DeleteModel(name="RemediationAction"),
            ],
            database_operations=[],
        ),
        migrations.RunPython(forward, backward),
    ]
