"""The app split (diagnostics.integrity, diagnostics.remediation) keeps every row.

A database at the layout before the split (integrity, remediation and runbook models in the
diagnostics app) is filled with a row of every moved model and rows that point at them, then
migrated to the new layout: the tables are the same, so every row is still there with the same
id and data, reachable through the new apps' models; content types (and the permissions on
them) follow the models to their new app labels.
"""

from __future__ import annotations

import datetime

import pytest
from django.apps import apps as current_apps
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

# The migration heads on main before the split.
BEFORE = [
    ("diagnostics", "0004_own_sessions"),
    ("postmortems", "0004_action_item_integrity_run"),
    ("integrity", None),
    ("remediation", None),
]

MOVED = {
    "integrity": ("IntegrityCheck", "IntegrityRun", "IntegrityResult"),
    "remediation": (
        "RemediationAction",
        "Runbook",
        "RunbookStep",
        "IncidentRunbook",
        "IncidentRunbookStep",
    ),
}
TABLES = [f"diagnostics_{m.lower()}" for models in MOVED.values() for m in models] + [
    "postmortems_actionitem"
]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor


def _leaf_nodes():
    executor = MigrationExecutor(connection)
    return executor.loader.graph.leaf_nodes()


def _rows(table: str) -> list[dict]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {table} ORDER BY id")
        names = [column.name for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _as_before(rows: list[dict], before: list[dict]) -> list[dict]:
    """The rows with only the columns they had before (later migrations add columns)."""
    columns = list(before[0]) if before else []
    return [{name: row[name] for name in columns} for row in rows]


def _fill(apps) -> dict[str, int]:
    """One row of every moved model (and rows that point at them), through the old state."""
    now = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    get = apps.get_model
    incident = get("incidents", "Incident").objects.create(
        title="Split check",
        slug="split-check",
        severity="SEV2",
        channel_name="inc-split-check",
        detected_at=now,
        declared_at=now,
    )
    target = get("diagnostics", "TargetDatabase").objects.create(name="split-target")
    check = get("diagnostics", "IntegrityCheck").objects.create(
        target=target, name="orders have customers", kind="orphans"
    )
    run = get("diagnostics", "IntegrityRun").objects.create(
        target=target, incident=incident, queued_at=now, deadline=now, status="succeeded"
    )
    result = get("diagnostics", "IntegrityResult").objects.create(
        run=run,
        integrity_check=check,
        check_name=check.name,
        kind="orphans",
        severity="high",
        status="violation",
        count=3,
    )
    action = get("diagnostics", "RemediationAction").objects.create(
        incident=incident, target=target, kind="cancel", previewed_at=now
    )
    runbook = get("diagnostics", "Runbook").objects.create(key="split-runbook", title="Split")
    step = get("diagnostics", "RunbookStep").objects.create(runbook=runbook, title="Look")
    incident_runbook = get("diagnostics", "IncidentRunbook").objects.create(
        incident=incident, runbook=runbook, title="Split", started_at=now
    )
    incident_step = get("diagnostics", "IncidentRunbookStep").objects.create(
        run=incident_runbook, title="Look"
    )
    postmortem = get("postmortems", "Postmortem").objects.create(incident=incident, title="Split")
    item = get("postmortems", "ActionItem").objects.create(
        postmortem=postmortem,
        title="Verify",
        category="data_integrity",
        verification_integrity_run=run,
    )
    return {
        "IntegrityCheck": check.pk,
        "IntegrityRun": run.pk,
        "IntegrityResult": result.pk,
        "RemediationAction": action.pk,
        "Runbook": runbook.pk,
        "RunbookStep": step.pk,
        "IncidentRunbook": incident_runbook.pk,
        "IncidentRunbookStep": incident_step.pk,
        "ActionItem": item.pk,
    }


def test_split_keeps_every_row_and_content_type():
    head = _leaf_nodes()
    ContentType = current_apps.get_model("contenttypes", "ContentType")
    types_before = {
        (label, model.lower()): ContentType.objects.get(app_label=label, model=model.lower()).pk
        for label, models in MOVED.items()
        for model in models
    }
    try:
        executor = _migrate(BEFORE)
        old_apps = executor.loader.project_state([n for n in BEFORE if n[1]]).apps
        # At the old layout the moved models are the diagnostics app's, content types too.
        assert not ContentType.objects.filter(app_label__in=list(MOVED)).exists()
        assert ContentType.objects.filter(app_label="diagnostics", model="integrityrun").exists()

        ids = _fill(old_apps)
        before = {table: _rows(table) for table in TABLES}
        assert all(before[table] for table in TABLES)

        executor = _migrate(head)
    finally:
        _migrate(head)  # leave the database at head for the tests that follow

    # Same tables, same rows, same ids, same data.
    assert {table: _as_before(_rows(table), before[table]) for table in TABLES} == before

    # Reachable through the new apps' models, relations included.
    new_apps = executor.loader.project_state(head).apps
    for label, models in MOVED.items():
        for model in models:
            assert new_apps.get_model(label, model).objects.filter(pk=ids[model]).exists()
            assert current_apps.get_model(label, model).objects.filter(pk=ids[model]).exists()
    IntegrityResult = current_apps.get_model("integrity", "IntegrityResult")
    result = IntegrityResult.objects.select_related("run", "integrity_check").get(
        pk=ids["IntegrityResult"]
    )
    assert (result.run.pk, result.integrity_check.pk, result.count) == (
        ids["IntegrityRun"],
        ids["IntegrityCheck"],
        3,
    )
    ActionItem = current_apps.get_model("postmortems", "ActionItem")
    item = ActionItem.objects.select_related("verification_integrity_run").get(pk=ids["ActionItem"])
    assert item.verification_integrity_run.pk == ids["IntegrityRun"]
    IncidentRunbookStep = current_apps.get_model("remediation", "IncidentRunbookStep")
    step = IncidentRunbookStep.objects.select_related("run__runbook").get(
        pk=ids["IncidentRunbookStep"]
    )
    assert step.run.runbook.pk == ids["Runbook"]

    # Content types moved with the models (same rows, so permissions and admin log entries
    # still point at them); none is left under the old label.
    types_after = {
        key: ContentType.objects.get(app_label=key[0], model=key[1]).pk for key in types_before
    }
    assert types_after == types_before
    assert not ContentType.objects.filter(
        app_label="diagnostics", model__in=[m.lower() for ms in MOVED.values() for m in ms]
    ).exists()
    Permission = current_apps.get_model("auth", "Permission")
    assert Permission.objects.filter(
        content_type__app_label="integrity", codename="view_integrityrun"
    ).exists()
