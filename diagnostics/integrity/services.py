"""Writes for data integrity: defining checks, starting and executing runs, the timeline.

Keyword-only, transactional, row-locked. Work against the target (running the checks) happens
outside any transaction: a slow target never holds a lock in Quell's database.
"""

from __future__ import annotations

import datetime
import logging

from django.conf import settings
from django.db import transaction
from django.urls import reverse

from config.kernel.actors import user_or_none
from config.kernel.secrets import scrub
from diagnostics.integrity.models import (
    IntegrityCheck,
    IntegrityKind,
    IntegrityPurpose,
    IntegrityResult,
    IntegrityRun,
    IntegrityRunStatus,
    IntegritySeverity,
)
from diagnostics.models import TargetDatabase
from incidents.dispatch import Call
from incidents.models import Incident

from .. import crypto, pipeline
from . import events
from .compiler import (
    IntegrityCheckError,
    canonical_predicate,
    canonical_query,
    validate_identifier,
    validate_user_schema,
)

logger = logging.getLogger(__name__)

CHECK_FIELDS = (
    "name",
    "description",
    "kind",
    "enabled",
    "severity",
    "schema_name",
    "table_name",
    "columns",
    "parent_schema",
    "parent_table",
    "parent_columns",
    "predicate",
    "query",
    "min_count",
    "max_count",
    "timeout_ms",
)


# --- checks --------------------------------------------------------------------------------


def _columns(values, *, field: str) -> list[str]:
    if isinstance(values, str):
        values = values.split(",")
    out = [validate_identifier(v, field=field) for v in (values or [])]
    if len(set(out)) != len(out):
        raise IntegrityCheckError("A column is named twice.", field=field)
    return out


def validate_check(check: IntegrityCheck, *, unique_name: bool = True) -> None:
    """Every rule a definition must meet before it is saved (IntegrityCheckError otherwise)."""
    check.name = (check.name or "").strip()
    if not check.name:
        raise IntegrityCheckError("A name is required.", field="name")
    if check.kind not in IntegrityKind.values:
        raise IntegrityCheckError(
            f"Kind must be one of {', '.join(IntegrityKind.values)}.", field="kind"
        )
    if check.severity not in IntegritySeverity.values:
        raise IntegrityCheckError(
            f"Severity must be one of {', '.join(IntegritySeverity.values)}.", field="severity"
        )
    kind = check.kind
    check.schema_name = validate_user_schema(check.schema_name or "public", field="schema_name")
    if kind == IntegrityKind.BUSINESS_RULE and (check.query or "").strip():
        if (check.table_name or "").strip() or (check.predicate or "").strip():
            raise IntegrityCheckError(
                "A business rule is either a table with a predicate or a whole query, not both.",
                field="query",
            )
        canonical_query(check.query)
        check.table_name = ""
    else:
        check.table_name = validate_identifier(check.table_name, field="table_name")
        if (check.query or "").strip():
            raise IntegrityCheckError("Only a business rule takes a whole query.", field="query")
        check.query = ""
    check.columns = _columns(check.columns, field="columns")
    check.parent_columns = _columns(check.parent_columns, field="parent_columns")
    if kind == IntegrityKind.ORPHANS:
        if not check.columns:
            raise IntegrityCheckError("Name the referencing column(s).", field="columns")
        check.parent_table = validate_identifier(check.parent_table, field="parent_table")
        check.parent_schema = validate_user_schema(
            check.parent_schema or check.schema_name, field="parent_schema"
        )
        if not check.parent_columns:
            raise IntegrityCheckError("Name the referenced column(s).", field="parent_columns")
        if len(check.parent_columns) != len(check.columns):
            raise IntegrityCheckError(
                "Name as many referenced columns as referencing ones, in the same order.",
                field="parent_columns",
            )
    else:
        check.parent_table, check.parent_schema, check.parent_columns = "", "", []
        if kind == IntegrityKind.DUPLICATES and not check.columns:
            raise IntegrityCheckError(
                "Name the column(s) whose values must be unique.", field="columns"
            )
        if kind != IntegrityKind.DUPLICATES:
            check.columns = []
    if kind in (IntegrityKind.CRITICAL_COUNT,) and not (check.predicate or "").strip():
        raise IntegrityCheckError(
            "A critical-record count needs a predicate (for example role = 'ADMIN').",
            field="predicate",
        )
    check.predicate = (check.predicate or "").strip()
    if kind == IntegrityKind.BUSINESS_RULE and check.table_name and not check.predicate:
        raise IntegrityCheckError(
            "A business rule needs a predicate matching the rows that break it.",
            field="predicate",
        )
    canonical_predicate(check.predicate)
    for name in ("min_count", "max_count"):
        value = getattr(check, name)
        if value is not None and int(value) < 0:
            raise IntegrityCheckError("Counts cannot be negative.", field=name)
    if (
        check.min_count is not None
        and check.max_count is not None
        and check.min_count > check.max_count
    ):
        raise IntegrityCheckError("The minimum is above the maximum.", field="min_count")
    if check.timeout_ms is not None:
        cap = settings.QUELL_INTEGRITY_MAX_STATEMENT_TIMEOUT_MS
        if not 100 <= int(check.timeout_ms) <= cap:
            raise IntegrityCheckError(
                f"The timeout must be between 100 and {cap} ms.", field="timeout_ms"
            )
    duplicate = IntegrityCheck.objects.filter(target_id=check.target_id, name=check.name)
    if check.pk:
        duplicate = duplicate.exclude(pk=check.pk)
    if unique_name and duplicate.exists():
        raise IntegrityCheckError("This target already has a check with that name.", field="name")


def _lock_target(target_id: int) -> TargetDatabase:
    target = TargetDatabase.objects.select_for_update().filter(pk=target_id).first()
    if target is None:
        raise IntegrityCheckError(f"Target {target_id} does not exist.", field="target")
    return target


@transaction.atomic
def integrity_check_create(*, target_id: int, actor=None, **values) -> IntegrityCheck:
    """Define an integrity check on a target (validated, names as identifiers only)."""
    unknown = set(values) - set(CHECK_FIELDS)
    if unknown:
        raise IntegrityCheckError(f"Unknown fields: {', '.join(sorted(unknown))}.")
    target = _lock_target(target_id)
    check = IntegrityCheck(target=target, created_by=user_or_none(actor), **values)
    validate_check(check)
    check.save()
    return check


def integrity_check_preview(*, target_id: int, **values) -> dict:
    """Validate a definition and EXPLAIN it on the target (nothing saved, nothing executed)."""
    from .runner import explain_check

    unknown = set(values) - set(CHECK_FIELDS)
    if unknown:
        raise IntegrityCheckError(f"Unknown fields: {', '.join(sorted(unknown))}.")
    target = TargetDatabase.objects.filter(pk=target_id).first()
    if target is None:
        raise IntegrityCheckError(f"Target {target_id} does not exist.", field="target")
    values.setdefault("name", "preview")
    check = IntegrityCheck(target=target, **values)
    validate_check(check, unique_name=False)
    try:
        spec = target.to_connection_spec()
    except crypto.SecretError as exc:
        raise IntegrityCheckError(str(exc), field="target") from None
    result = explain_check(spec, check)
    result["error"] = scrub(result["error"], tuple(spec.secrets()))
    return result


@transaction.atomic
def integrity_check_update(*, check_id: int, actor=None, **changes) -> IntegrityCheck:
    """Change a check's definition (validated as a whole)."""
    unknown = set(changes) - set(CHECK_FIELDS)
    if unknown:
        raise IntegrityCheckError(f"Unknown fields: {', '.join(sorted(unknown))}.")
    check = IntegrityCheck.objects.select_for_update().filter(pk=check_id).first()
    if check is None:
        raise IntegrityCheckError(f"Check {check_id} does not exist.", field="check")
    for name, value in changes.items():
        setattr(check, name, value)
    validate_check(check)
    check.save()
    return check


@transaction.atomic
def integrity_check_delete(*, check_id: int, actor=None) -> None:
    """Delete a check; its past results keep their snapshot (name, kind, SQL, counts)."""
    check = IntegrityCheck.objects.select_for_update().filter(pk=check_id).first()
    if check is None:
        raise IntegrityCheckError(f"Check {check_id} does not exist.", field="check")
    check.delete()


# --- runs ----------------------------------------------------------------------------------


def run_url(run: IntegrityRun) -> str:
    """The absolute URL of a run's results page, for timelines and messages."""
    return settings.QUELL_BASE_URL.rstrip("/") + reverse(
        "integrity:integrity-run", kwargs={"run_id": run.pk}
    )


class IntegrityRuns(pipeline.RunKind):
    """Integrity runs in the run pipeline (diagnostics.pipeline): a target's integrity checks."""

    model = IntegrityRun
    label = "Integrity run"

    def task(self):
        from . import tasks

        return tasks.run_integrity

    def enqueue(self, pairs):
        for run_id, task_id in pairs:
            _enqueue(run_id, task_id)  # looked up at call time: tests stand in for the broker

    def execute_checks(self, run, spec):
        from .runner import run_integrity_checks

        checks = _checks_of(run)
        outcomes, error = run_integrity_checks(spec, checks)
        if error:
            raise pipeline.RunFailed(error)
        return _result_rows(run, checks, outcomes, tuple(spec.secrets()))

    def finished_fields(self, run, rows, status):
        return {
            "checks_total": len(rows),
            "checks_violated": sum(1 for r in rows if r.status == "violation"),
            "checks_errored": sum(1 for r in rows if r.status == "error"),
        }

    def on_finished(self, run, rows):
        from .selectors import run_compare

        # A failed run has no results to hold against its baseline.
        succeeded = run.status == IntegrityRunStatus.SUCCEEDED
        comparison = run_compare(run) if succeeded and run.baseline_id else None
        run.summary = summarize(run, rows, comparison)
        run.save(update_fields=["summary", "updated_at"])
        if run.incident_id:
            events.run_summary_event(run, rows=rows, comparison=comparison, url=run_url(run))


INTEGRITY_RUNS = IntegrityRuns()


def _enqueue(run_id: int, task_id: str) -> None:
    """Send the task (diagnostics.pipeline.send)."""
    pipeline.send(INTEGRITY_RUNS, [(run_id, task_id)])


def queued_run_calls() -> list[Call]:
    """The tasks that send every queued integrity run (for a worker becoming ready)."""
    return pipeline.queued_run_calls(INTEGRITY_RUNS)


@transaction.atomic
def integrity_run_start(
    *,
    target_id: int,
    purpose: str = IntegrityPurpose.ADHOC,
    incident_id: int | None = None,
    check_ids: list[int] | None = None,
    requested_by=None,
    baseline_id: int | None = None,
) -> IntegrityRun:
    """Queue a run of a target's enabled checks (or the listed ones); the task is sent after
    commit. An identical run still queued or running is returned instead of a second one."""
    if purpose not in IntegrityPurpose.values:
        raise IntegrityCheckError(
            f"Purpose must be one of {', '.join(IntegrityPurpose.values)}.", field="purpose"
        )
    if purpose == IntegrityPurpose.MONITOR and (incident_id is not None or requested_by):
        raise IntegrityCheckError(
            "Monitor runs are started by monitors; run a baseline, a verification or an ad hoc"
            " check.",
            field="purpose",
        )
    target = _lock_target(target_id)
    if not target.enabled:
        raise IntegrityCheckError(
            f"Target {target.name!r} is disabled; enable it to run checks.", field="target"
        )
    if incident_id is not None and not Incident.objects.filter(pk=incident_id).exists():
        raise IntegrityCheckError(f"Incident {incident_id} does not exist.", field="incident")
    check_ids = sorted({int(c) for c in (check_ids or [])})
    checks = IntegrityCheck.objects.filter(target=target)
    if check_ids:
        found = set(checks.filter(pk__in=check_ids).values_list("pk", flat=True))
        missing = [c for c in check_ids if c not in found]
        if missing:
            raise IntegrityCheckError(
                f"Not checks of this target: {', '.join(map(str, missing))}.", field="checks"
            )
    elif not checks.filter(enabled=True).exists():
        raise IntegrityCheckError(
            f"Target {target.name!r} has no enabled integrity checks; define some first.",
            field="checks",
        )
    baseline = None
    if purpose == IntegrityPurpose.VERIFICATION:
        if baseline_id is not None:
            baseline = IntegrityRun.objects.filter(
                pk=baseline_id, target=target, purpose=IntegrityPurpose.BASELINE
            ).first()
            if baseline is None:
                raise IntegrityCheckError(
                    f"Run {baseline_id} is not a baseline of this target.", field="baseline"
                )
        else:
            candidates = IntegrityRun.objects.filter(
                target=target, purpose=IntegrityPurpose.BASELINE
            ).exclude(status=IntegrityRunStatus.FAILED)
            if incident_id is not None:
                candidates = candidates.filter(incident_id=incident_id)
            baseline = candidates.order_by("-queued_at", "-id").first()
    active = pipeline.active_run(
        INTEGRITY_RUNS,
        target=target,
        incident_id=incident_id,
        purpose=purpose,
        check_ids=check_ids,
    )
    if active is not None:
        return active
    run = pipeline.create(
        INTEGRITY_RUNS,
        target=target,
        incident_id=incident_id,
        purpose=purpose,
        baseline=baseline,
        check_ids=check_ids,
        requested_by=user_or_none(requested_by),
    )
    pipeline.enqueue_on_commit(INTEGRITY_RUNS, [run])
    return run


def _checks_of(run: IntegrityRun) -> list[IntegrityCheck]:
    qs = IntegrityCheck.objects.filter(target_id=run.target_id)
    qs = qs.filter(pk__in=run.check_ids) if run.check_ids else qs.filter(enabled=True)
    return list(qs.order_by("name", "id"))


def integrity_run_execute(*, run_id: int, task_id: str = "") -> IntegrityRun | None:
    """Run a queued run's checks once and store the results (the task's body; callable
    directly). The steps are diagnostics.pipeline's."""
    return pipeline.execute(INTEGRITY_RUNS, run_id=run_id, task_id=task_id)


def _result_rows(run, checks, outcomes, secrets) -> list[IntegrityResult]:
    by_id = {c.pk: c for c in checks}
    rows = []
    for o in outcomes:
        check = by_id[o.check_id]
        rows.append(
            IntegrityResult(
                run=run,
                integrity_check=check,
                check_name=check.name,
                kind=check.kind,
                severity=check.severity,
                status=o.status,
                count=o.count,
                expected=o.expected,
                sample=o.sample,
                sample_columns=o.sample_columns,
                metrics=o.metrics,
                sql=o.sql,
                duration_ms=max(0, o.duration_ms),
                error=scrub(o.error, secrets),
            )
        )
    return rows


PURPOSE_LABEL = {
    IntegrityPurpose.BASELINE: "Integrity baseline",
    IntegrityPurpose.VERIFICATION: "Integrity verification",
    IntegrityPurpose.ADHOC: "Integrity check",
    IntegrityPurpose.MONITOR: "Monitor integrity check",
}


def summarize(run: IntegrityRun, rows: list[IntegrityResult], comparison: dict | None) -> str:
    """The run in one line, e.g. "... on shop: 0 violations in 6 checks; orphans 12 -> 0"."""
    label = f"{PURPOSE_LABEL[run.purpose]} on {run.target.name}"
    if run.status == IntegrityRunStatus.FAILED:
        return f"{label} failed: {run.error}"
    n = len(rows)
    text = (
        f"{label}: {run.checks_violated} violation{'s' if run.checks_violated != 1 else ''} "
        f"in {n} check{'s' if n != 1 else ''}"
    )
    critical = sum(1 for r in rows if r.status == "violation" and r.severity == "critical")
    if critical:
        text += f" ({critical} critical)"
    if run.checks_errored:
        text += f", {run.checks_errored} could not run"
    details = []
    if comparison:
        # What the verification changed first, then record counts that moved (lost rows?).
        moved = [c for c in comparison["checks"] if c["before"] != c["after"]]
        moved.sort(key=lambda c: c["outcome"] == "informational")
        details = [f"{c['name']} {c['before']} -> {c['after']}" for c in moved]
    else:
        details = [f"{r.check_name}: {r.count}" for r in rows if r.status == "violation"]
    if details:
        text += "; " + "; ".join(details[:6])
    return text


def integrity_runs_sweep(*, now: datetime.datetime | None = None) -> dict[str, int]:
    """Runs stuck in queued or running past their deadline: re-queued once, then failed."""
    return pipeline.sweep(INTEGRITY_RUNS, now=now)
