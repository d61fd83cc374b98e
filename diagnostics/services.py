"""Every write in diagnostics: targets, affected-target links, runs and their results.

Services are keyword-only, run in a transaction, lock the rows they change, and record what an
incident should know on its timeline in the same transaction. Work against a target database
(probing it, running checks) happens outside any transaction and row lock: a slow target must
never hold a lock in Quell's own database.

This module holds the affected-target links and the diagnostic runs (their steps are
diagnostics.pipeline's, shared with integrity runs). Target registration lives in
diagnostics.target_services and the errors in diagnostics.errors; both are re-exported here,
so `diagnostics.services.X` stays the one place other apps import writes from.
"""

from __future__ import annotations

import datetime
import json
import logging
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from config.kernel.actors import user_or_none
from config.kernel.secrets import scrub
from incidents.dispatch import Call
from incidents.models import OPEN_STATUSES, Incident, Status
from incidents.services import incident_declare

from . import events, pipeline, selectors

# Re-exported: other apps import every diagnostics write from this module.
from .errors import DiagnosticsError, TargetInUse, finite_number  # noqa: F401
from .models import (
    CheckResult,
    DiagnosticRun,
    Environment,
    IncidentTarget,
    RunStatus,
    TargetDatabase,
    Trigger,
)
from .target_services import (  # noqa: F401
    TARGET_FIELDS,
    diagnostic_timeouts,
    rotate_secrets,
    target_create,
    target_delete,
    target_test_connection,
    target_update,
)

logger = logging.getLogger(__name__)


# --- affected targets ----------------------------------------------------------------------


def _lock_incident(incident_id: int) -> Incident:
    incident = Incident.objects.select_for_update().filter(pk=incident_id).first()
    if incident is None:
        raise DiagnosticsError(f"Incident {incident_id} does not exist.", field="incident")
    return incident


def _target_names(incident_id: int) -> list[str]:
    return list(
        IncidentTarget.objects.filter(incident_id=incident_id)
        .order_by("target__name")
        .values_list("target__name", flat=True)
    )


@transaction.atomic
def incident_target_add(
    *, incident_id: int, target_id: int, actor=None, start_run: bool = True
) -> IncidentTarget:
    """Mark a target as affected by an incident; on an open incident a run starts at once so
    the state at detection is on record."""
    incident = _lock_incident(incident_id)
    if incident.status == Status.CLOSED:
        raise DiagnosticsError("A closed incident cannot be changed.", field="incident")
    target = TargetDatabase.objects.filter(pk=target_id).first()
    if target is None:
        raise DiagnosticsError(f"Target {target_id} does not exist.", field="target")
    link = IncidentTarget.objects.filter(incident=incident, target=target).first()
    if link is not None:
        return link
    before = _target_names(incident.pk)
    link = IncidentTarget.objects.create(
        incident=incident, target=target, added_by=user_or_none(actor)
    )
    events.affected_target_added_event(
        incident_id=incident.pk,
        target=target,
        before=before,
        after=_target_names(incident.pk),
        actor=actor,
    )
    if start_run and incident.status in OPEN_STATUSES and target.enabled:
        diagnostic_run_start(
            target_id=target.pk,
            incident_id=incident.pk,
            trigger=Trigger.INCIDENT,
            requested_by=actor,
        )
    return link


@transaction.atomic
def incident_target_remove(*, incident_id: int, target_id: int, actor=None) -> None:
    """Unmark a target as affected (its runs stay linked to the incident as evidence)."""
    incident = _lock_incident(incident_id)
    if incident.status == Status.CLOSED:
        raise DiagnosticsError("A closed incident cannot be changed.", field="incident")
    link = (
        IncidentTarget.objects.select_related("target")
        .filter(incident=incident, target_id=target_id)
        .first()
    )
    if link is None:
        raise DiagnosticsError(
            f"Target {target_id} is not an affected target of incident #{incident.pk}.",
            field="target",
        )
    before = _target_names(incident.pk)
    name = link.target.name
    link.delete()
    events.affected_target_removed_event(
        incident_id=incident.pk,
        target_id=target_id,
        target_name=name,
        before=before,
        after=_target_names(incident.pk),
        actor=actor,
    )


@transaction.atomic
def incident_declare_with_targets(
    *, target_ids: list[int], actor=None, actor_label: str = "", **declare: Any
) -> tuple[Incident, list[DiagnosticRun]]:
    """Declare an incident and link its affected targets; each gets a run at detection."""
    target_ids = list(dict.fromkeys(int(t) for t in target_ids or []))
    found = set(TargetDatabase.objects.filter(pk__in=target_ids).values_list("pk", flat=True))
    missing = [t for t in target_ids if t not in found]
    if missing:
        raise DiagnosticsError(
            f"Unknown target(s): {', '.join(map(str, missing))}.", field="affected_targets"
        )
    incident = incident_declare(actor=actor, actor_label=actor_label, **declare)
    for target_id in target_ids:
        incident_target_add(incident_id=incident.pk, target_id=target_id, actor=actor)
    runs = list(DiagnosticRun.objects.filter(incident=incident).order_by("id"))
    return incident, runs


def declare_with_targets(*, target_ids: list[int], actor=None, **declare: Any) -> Incident:
    """incident_declare_with_targets for the web declare form (incidents.affected): the
    incident alone (its runs are on the incident page)."""
    incident, _runs = incident_declare_with_targets(target_ids=target_ids, actor=actor, **declare)
    return incident


# --- runs ----------------------------------------------------------------------------------


def normalize_suite(suite: dict | None) -> dict:
    """{} (every check), {"family": f} or {"keys": [...]}; anything else is refused."""
    from .checks import Family, registry

    suite = dict(suite or {})
    keys = suite.pop("keys", None) or []
    family = suite.pop("family", None) or ""
    if suite:
        raise DiagnosticsError(
            f"Unknown suite options: {', '.join(sorted(suite))}. Use keys or family.",
            field="suite",
        )
    if keys and family:
        raise DiagnosticsError("Choose check keys or a family, not both.", field="suite")
    if isinstance(keys, str):
        keys = [k.strip() for k in keys.split(",") if k.strip()]
    if keys:
        known = set(registry.keys())
        unknown = [k for k in keys if k not in known]
        if unknown:
            raise DiagnosticsError(
                f"Unknown check key(s): {', '.join(unknown)}. Known: {', '.join(sorted(known))}.",
                field="keys",
            )
        return {"keys": list(dict.fromkeys(keys))}
    if family:
        if family not in [f.value for f in Family]:
            raise DiagnosticsError(
                f"Unknown family {family!r}. Known: {', '.join(f.value for f in Family)}.",
                field="family",
            )
        if not registry.by_family(family):
            raise DiagnosticsError(
                f"No checks are registered in family {family!r}.", field="family"
            )
        return {"family": family}
    return {}


class DiagnosticRuns(pipeline.RunKind):
    """Diagnostic runs in the run pipeline: a suite of registered checks on one target."""

    model = DiagnosticRun
    label = "Diagnostic run"

    def task(self):
        from . import tasks

        return tasks.run_diagnostics

    def enqueue(self, pairs):
        _enqueue(pairs)  # looked up at call time: tests replace it to stand in for the broker

    def execute_checks(self, run, spec):
        from .checks import registry
        from .runner import run_checks

        try:
            check_classes = registry.select(
                keys=run.suite.get("keys") or None, family=run.suite.get("family") or None
            )
        except KeyError as exc:
            raise pipeline.RunFailed(
                f"The suite names a check that no longer exists: {exc.args[0]}"
            ) from None
        previous = selectors.previous_check_results(run=run, keys=[c.key for c in check_classes])
        executions = run_checks(
            spec,
            check_classes,
            thresholds=run.target.thresholds or None,
            timeouts=diagnostic_timeouts(),
            previous=previous,
        )
        return result_rows(run, executions, secrets=tuple(spec.secrets()))

    def finished_fields(self, run, rows, status):
        from .checks import worst

        if status == RunStatus.FAILED:
            return {"worst_status": "error"}
        return {"worst_status": str(worst(r.status for r in rows)) if rows else "ok"}

    def on_finished(self, run, rows):
        if run.incident_id:
            events.run_summary_event(run, rows=rows, url=run_url(run))


DIAGNOSTIC_RUNS = DiagnosticRuns()


def _enqueue(runs: list[tuple[int, str]]) -> None:
    """Send the tasks for (run id, task id) pairs (diagnostics.pipeline.send)."""
    pipeline.send(DIAGNOSTIC_RUNS, runs)


def queued_run_calls() -> list[Call]:
    """The tasks that send every queued diagnostic run (for a worker becoming ready)."""
    return pipeline.queued_run_calls(DIAGNOSTIC_RUNS)


def _check_trigger(trigger: str) -> None:
    if trigger not in Trigger.values:
        raise DiagnosticsError(
            f"Trigger must be one of {', '.join(Trigger.values)}.", field="trigger"
        )


def _new_run(target, incident_id, trigger, requested_by, suite, now) -> DiagnosticRun:
    return pipeline.create(
        DIAGNOSTIC_RUNS,
        now=now,
        target=target,
        incident_id=incident_id,
        trigger=trigger,
        requested_by=user_or_none(requested_by),
        suite=suite,
    )


@transaction.atomic
def diagnostic_run_start(
    *,
    target_id: int,
    incident_id: int | None = None,
    trigger: str = Trigger.MANUAL,
    requested_by=None,
    suite: dict | None = None,
) -> DiagnosticRun:
    """Queue a run of a suite against one target; the task is sent after commit.

    An identical run (same target, suite and incident) still queued or running is returned
    instead of a second one: a double click does not double the load on a struggling target.
    """
    _check_trigger(trigger)
    suite = normalize_suite(suite)
    # The row lock serialises starts per target: two concurrent clicks cannot both miss the
    # active run.
    target = TargetDatabase.objects.select_for_update().filter(pk=target_id).first()
    if target is None:
        raise DiagnosticsError(f"Target {target_id} does not exist.", field="target")
    if not target.enabled:
        raise DiagnosticsError(
            f"Target {target.name!r} is disabled; enable it to run diagnostics.", field="target"
        )
    if incident_id is not None and not Incident.objects.filter(pk=incident_id).exists():
        raise DiagnosticsError(f"Incident {incident_id} does not exist.", field="incident")
    active = pipeline.active_run(
        DIAGNOSTIC_RUNS, target=target, incident_id=incident_id, suite=suite
    )
    if active is not None:
        return active
    run = _new_run(target, incident_id, trigger, requested_by, suite, timezone.now())
    pipeline.enqueue_on_commit(DIAGNOSTIC_RUNS, [run])
    return run


@transaction.atomic
def diagnostic_runs_fan_out(
    *,
    environment: str | None = None,
    tag: str | None = None,
    target_ids: list[int] | None = None,
    suite: dict | None = None,
    trigger: str = Trigger.MANUAL,
    requested_by=None,
    incident_id: int | None = None,
) -> list[DiagnosticRun]:
    """One run per enabled target matching the selection, sent as a group of parallel tasks."""
    _check_trigger(trigger)
    suite = normalize_suite(suite)
    if not (environment or tag or target_ids):
        raise DiagnosticsError(
            "Choose targets: an environment, a tag or a list of target ids.", field="targets"
        )
    if environment and environment not in Environment.values:
        raise DiagnosticsError(
            f"Environment must be one of {', '.join(Environment.values)}.", field="environment"
        )
    if incident_id is not None and not Incident.objects.filter(pk=incident_id).exists():
        raise DiagnosticsError(f"Incident {incident_id} does not exist.", field="incident")
    qs = TargetDatabase.objects.filter(enabled=True)
    if environment:
        qs = qs.filter(environment=environment)
    if tag:
        qs = qs.filter(tags__contains=[tag.strip().lower()])
    if target_ids:
        qs = qs.filter(pk__in=target_ids)
    targets = list(qs.select_for_update().order_by("name"))
    if not targets:
        raise DiagnosticsError("No enabled target matches that selection.", field="targets")
    now = timezone.now()
    runs, new = [], []
    for target in targets:
        # A target already being examined with this suite keeps its run (no double load).
        run = pipeline.active_run(
            DIAGNOSTIC_RUNS, target=target, incident_id=incident_id, suite=suite
        )
        if run is None:
            run = _new_run(target, incident_id, trigger, requested_by, suite, now)
            new.append(run)
        runs.append(run)
    pipeline.enqueue_on_commit(DIAGNOSTIC_RUNS, new)
    return runs


def run_url(run: DiagnosticRun) -> str:
    """The absolute URL of a run's results page (for timelines and messages)."""
    return settings.QUELL_BASE_URL.rstrip("/") + reverse(
        "diagnostics:run-detail", kwargs={"run_id": run.pk}
    )


# Called with each executed run (or None for a duplicate delivery) by the run task; other apps
# register here (detection judges its monitors' runs) so this app never imports them.
_run_finished_hooks: list = []


def register_run_finished(hook) -> None:
    """Call `hook(run)` after every executed diagnostic run (once per hook)."""
    if hook not in _run_finished_hooks:
        _run_finished_hooks.append(hook)


def run_finished(run: DiagnosticRun | None) -> None:
    for hook in _run_finished_hooks:
        hook(run)


def diagnostic_run_execute(*, run_id: int, task_id: str = "") -> DiagnosticRun | None:
    """Run a queued run's checks once and store the results (the Celery task's body)."""
    return pipeline.execute(DIAGNOSTIC_RUNS, run_id=run_id, task_id=task_id)


class _LenientEncoder(DjangoJSONEncoder):
    """Numbers as numbers (Decimal too: counters are compared), dates, durations and UUIDs as
    Django encodes them, anything else as text."""

    def default(self, o):
        if isinstance(o, Decimal):
            return float(o)
        try:
            return super().default(o)
        except TypeError:
            return str(o)


def _json_safe(value):
    """What a check returned, as plain JSON: one odd value must not lose a run's results."""
    return json.loads(json.dumps(value, cls=_LenientEncoder))


def result_rows(run: DiagnosticRun, executions: list, *, secrets: tuple[str, ...] = ()) -> list:
    """The CheckResult rows (unsaved) of a run's check executions, scrubbed of the secrets."""
    from .checks import registry

    rows = []
    for execution in executions:
        outcome = execution.outcome
        try:
            check_class = registry.get(execution.key)
            title, family = check_class.title, str(check_class.family)
        except KeyError:
            title, family = execution.key, ""
        rows.append(
            CheckResult(
                run=run,
                key=execution.key,
                title=title,
                family=family,
                status=str(outcome.status),
                summary=scrub(outcome.summary, secrets=secrets),
                findings=_json_safe(outcome.findings or []),
                metrics=_json_safe(outcome.metrics or {}),
                duration_ms=max(0, int(execution.duration_ms or 0)),
                error=scrub(outcome.error, secrets=secrets),
                fix=outcome.fix or "",
            )
        )
    return rows


def diagnostic_runs_sweep(*, now: datetime.datetime | None = None) -> dict[str, int]:
    """Runs stuck in queued or running past their deadline: re-queued once, then failed."""
    return pipeline.sweep(DIAGNOSTIC_RUNS, now=now)
