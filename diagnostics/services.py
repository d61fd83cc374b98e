"""Every write in diagnostics: targets, affected-target links, runs and their results.

Services are keyword-only, run in a transaction, lock the rows they change, and record what an
incident should know on its timeline in the same transaction. Work against a target database
(probing it, running checks) happens outside any transaction and row lock: a slow target must
never hold a lock in Quell's own database.
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import uuid
from decimal import Decimal
from typing import Any

import psycopg
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from config.kernel.actors import user_or_none
from config.kernel.secrets import scrub
from incidents.dispatch import Call, call, dispatch_calls
from incidents.models import OPEN_STATUSES, EventKind, Incident, Status
from incidents.services import IncidentError, incident_declare, timeline_append

from . import crypto, selectors
from .lifecycle import mark_running, stuck_runs_sweep
from .models import (
    ACTIVE_RUN_STATUSES,
    CheckResult,
    DiagnosticRun,
    Environment,
    IncidentTarget,
    RunStatus,
    SSLMode,
    TargetDatabase,
    Trigger,
)

logger = logging.getLogger(__name__)

ACTOR_LABEL = "diagnostics"
# Statuses whose findings an incident's timeline should carry.
NOTABLE = ("critical", "error", "warning")
# How many findings rows per check the timeline summary keeps (the run page has them all).
TIMELINE_FINDINGS_PER_CHECK = 3


class DiagnosticsError(IncidentError):
    """A request the rules refuse; `field` names the input at fault. The API answers 400."""


def finite_number(value: Any, *, field: str, what: str = "a number") -> float:
    """A user's number as a float: float() also takes "nan", "inf" and "1e400" (inf), which
    compare false with everything and slip past range checks, so those are refused too."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number):
        raise DiagnosticsError(f"{field} must be a finite number of {what}.", field=field)
    return number


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _looks_numeric(text: str) -> bool:
    """Whether float() takes the text (then it must be finite); other strings are left alone."""
    try:
        float(text)
    except ValueError:
        return False
    return True


class TargetInUse(DiagnosticsError):
    code = "target_in_use"


# --- targets -------------------------------------------------------------------------------

TARGET_FIELDS = (
    "name",
    "environment",
    "host",
    "port",
    "database",
    "user",
    "sslmode",
    "options",
    "tags",
    "enabled",
    "remediation_allowed",
    "thresholds",
)


def _clean_tags(tags) -> list[str]:
    if tags is None:
        return []
    if isinstance(tags, str):
        tags = tags.split(",")
    cleaned = []
    for tag in tags:
        tag = str(tag).strip().lower()
        if not tag:
            continue
        if len(tag) > 50:
            raise DiagnosticsError("Tags are at most 50 characters.", field="tags")
        if tag not in cleaned:
            cleaned.append(tag)
    return cleaned


def _dsn_parts(dsn: str) -> dict[str, Any]:
    """The non-secret parts of a DSN (host, port, database, user), for display and checks."""
    try:
        parts = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        # psycopg's message quotes the DSN, password included: never pass it on.
        raise DiagnosticsError(
            "The DSN is not a valid libpq connection string or URI.", field="dsn"
        ) from None
    out: dict[str, Any] = {}
    if parts.get("host"):
        out["host"] = str(parts["host"])
    if parts.get("port"):
        try:
            out["port"] = int(str(parts["port"]).split(",")[0])
        except ValueError:
            raise DiagnosticsError("The DSN's port is not a number.", field="dsn") from None
    if parts.get("dbname"):
        out["database"] = str(parts["dbname"])
    if parts.get("user"):
        out["user"] = str(parts["user"])
    return out


def _validate_target(target: TargetDatabase) -> None:
    name = (target.name or "").strip()
    if not name:
        raise DiagnosticsError("A name is required.", field="name")
    target.name = name
    if target.environment not in Environment.values:
        raise DiagnosticsError(
            f"Environment must be one of {', '.join(Environment.values)}.", field="environment"
        )
    if target.sslmode not in SSLMode.values:
        raise DiagnosticsError(
            f"sslmode must be one of {', '.join(SSLMode.values)}.", field="sslmode"
        )
    try:
        port = int(target.port)
    except (TypeError, ValueError):
        raise DiagnosticsError("Port must be a number between 1 and 65535.", field="port") from None
    if not 1 <= port <= 65535:
        raise DiagnosticsError("Port must be a number between 1 and 65535.", field="port")
    target.port = port
    if not target.has_dsn:
        if not (target.host or "").strip():
            raise DiagnosticsError("A host is required (or give a whole DSN).", field="host")
        if not (target.database or "").strip():
            raise DiagnosticsError("A database is required (or give a DSN).", field="database")
        if not (target.user or "").strip():
            raise DiagnosticsError("A user is required (or give a whole DSN).", field="user")
    if not isinstance(target.thresholds, dict):
        raise DiagnosticsError(
            'Thresholds must be an object of check key to settings, e.g. {"long_running_queries":'
            ' {"warning_s": 60}}.',
            field="thresholds",
        )
    if _has_nul(target.thresholds):
        # PostgreSQL's jsonb cannot hold U+0000: refused here rather than as a 500 on save.
        raise DiagnosticsError("Thresholds may not contain NUL characters.", field="thresholds")
    for key, value in target.thresholds.items():
        if not isinstance(value, dict):
            raise DiagnosticsError(
                f"Thresholds for {key!r} must be an object of setting to value.",
                field="thresholds",
            )
        for setting, number in value.items():
            # Checks read thresholds with float(): "nan" or "inf" would pass every comparison.
            numeric = isinstance(number, (int, float)) and not isinstance(number, bool)
            if numeric or (isinstance(number, str) and _looks_numeric(number)):
                finite_number(number, field="thresholds", what=f"{key}.{setting}")
    qs = TargetDatabase.objects.filter(name__iexact=target.name)
    if target.pk:
        qs = qs.exclude(pk=target.pk)
    if qs.exists():
        raise DiagnosticsError(f"A target named {target.name!r} already exists.", field="name")


@transaction.atomic
def target_create(
    *,
    name: str,
    environment: str = Environment.PRODUCTION,
    host: str = "",
    port: int = 5432,
    database: str = "",
    user: str = "",
    password: str = "",
    dsn: str = "",
    sslmode: str = SSLMode.PREFER,
    options: str = "",
    tags=(),
    enabled: bool = True,
    remediation_allowed: bool = False,
    thresholds: dict | None = None,
    actor=None,
) -> TargetDatabase:
    """Register a target database; the password (or whole DSN) is stored encrypted."""
    target = TargetDatabase(
        name=name,
        environment=environment,
        host=(host or "").strip(),
        port=port,
        database=(database or "").strip(),
        user=(user or "").strip(),
        sslmode=sslmode,
        options=options or "",
        tags=_clean_tags(tags),
        enabled=enabled,
        remediation_allowed=remediation_allowed,
        thresholds=thresholds if thresholds is not None else {},
        created_by=user_or_none(actor),
    )
    if dsn:
        for field, value in _dsn_parts(dsn).items():
            if not getattr(target, field) or (field == "port" and port == 5432):
                setattr(target, field, value)
        target.set_dsn(dsn)
    target.set_password(password or "")
    _validate_target(target)
    target.save()
    logger.info("Target %s (%s) registered", target.name, target.pk)
    return target


@transaction.atomic
def target_update(
    *,
    target_id: int,
    actor=None,
    password: str | None = None,
    dsn: str | None = None,
    **changes: Any,
) -> TargetDatabase:
    """Change a target's settings. password/dsn: None keeps the stored one, "" clears it."""
    unknown = set(changes) - set(TARGET_FIELDS)
    if unknown:
        raise DiagnosticsError(f"Unknown fields: {', '.join(sorted(unknown))}.")
    target = TargetDatabase.objects.select_for_update().filter(pk=target_id).first()
    if target is None:
        raise DiagnosticsError(f"Target {target_id} does not exist.", field="target")
    if "tags" in changes:
        changes["tags"] = _clean_tags(changes["tags"])
    for field in ("host", "database", "user"):
        if field in changes:
            changes[field] = (changes[field] or "").strip()
    for field, value in changes.items():
        setattr(target, field, value)
    if dsn is not None:
        if dsn:
            for field, value in _dsn_parts(dsn).items():
                if field not in changes:
                    setattr(target, field, value)
        target.set_dsn(dsn)
    if password is not None:
        target.set_password(password)
    _validate_target(target)
    target.save()
    logger.info("Target %s (%s) updated", target.name, target.pk)
    return target


@transaction.atomic
def target_delete(*, target_id: int, actor=None) -> None:
    """Delete a target that has no runs and no incident links (those are evidence)."""
    target = TargetDatabase.objects.select_for_update().filter(pk=target_id).first()
    if target is None:
        raise DiagnosticsError(f"Target {target_id} does not exist.", field="target")
    # Integrity runs are evidence too (and protect the target row).
    runs = target.runs.count() + target.integrity_runs.count()
    links = target.incident_links.count()
    if runs or links:
        raise TargetInUse(
            f"Target {target.name!r} has {runs} diagnostic run(s) and {links} incident link(s) "
            "kept as evidence; disable it instead of deleting it.",
            field="target",
        )
    target.delete()


def rotate_secrets() -> dict[str, int]:
    """Re-encrypt every stored credential with the newest key; returns counts."""
    counts = {"targets": 0, "rotated": 0, "failed": 0}
    for target_id in TargetDatabase.objects.values_list("pk", flat=True):
        with transaction.atomic():
            target = TargetDatabase.objects.select_for_update().get(pk=target_id)
            counts["targets"] += 1
            try:
                password = crypto.rotate(target.password_encrypted)
                dsn = crypto.rotate(target.dsn_encrypted)
            except crypto.SecretError:
                counts["failed"] += 1
                logger.warning("Target %s: credential not decryptable, left as is", target.pk)
                continue
            if (password, dsn) != (target.password_encrypted, target.dsn_encrypted):
                target.password_encrypted, target.dsn_encrypted = password, dsn
                target.save(update_fields=["password_encrypted", "dsn_encrypted", "updated_at"])
                counts["rotated"] += 1
    return counts


def _timeouts():
    from .target import Timeouts

    return Timeouts(
        connect_s=settings.QUELL_DIAGNOSTICS_CONNECT_TIMEOUT_S,
        statement_ms=settings.QUELL_DIAGNOSTICS_STATEMENT_TIMEOUT_MS,
        lock_ms=settings.QUELL_DIAGNOSTICS_LOCK_TIMEOUT_MS,
    )


def target_test_connection(*, target_id: int) -> dict[str, Any]:
    """Probe a target: reachability, latency, version, recovery, platform, missing privileges."""
    from .target import probe

    target = TargetDatabase.objects.filter(pk=target_id).first()
    if target is None:
        raise DiagnosticsError(f"Target {target_id} does not exist.", field="target")
    try:
        spec = target.to_connection_spec()
    except crypto.SecretError as exc:
        return {"reachable": False, "error": str(exc), "missing": [], "warnings": []}
    result = dict(probe(spec, _timeouts()))
    secrets = (spec.password, spec.dsn)
    if result.get("error"):
        result["error"] = scrub(result["error"], secrets=secrets)
    result.setdefault("missing", [])
    result.setdefault("warnings", [])
    result["target"] = {"id": target.pk, "name": target.name}
    return result


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
    timeline_append(
        incident_id=incident.pk,
        kind=EventKind.FIELDS_CHANGED,
        message=f"Affected target added: {target.name} ({target.environment})",
        actor=actor,
        actor_label="" if user_or_none(actor) else ACTOR_LABEL,
        data={
            "changes": {"affected_targets": {"from": before, "to": _target_names(incident.pk)}},
            "target_id": target.pk,
        },
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
    timeline_append(
        incident_id=incident.pk,
        kind=EventKind.FIELDS_CHANGED,
        message=f"Affected target removed: {name}",
        actor=actor,
        actor_label="" if user_or_none(actor) else ACTOR_LABEL,
        data={
            "changes": {"affected_targets": {"from": before, "to": _target_names(incident.pk)}},
            "target_id": target_id,
        },
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


def _new_run(
    *,
    target: TargetDatabase,
    incident_id: int | None,
    trigger: str,
    requested_by,
    suite: dict,
    now: datetime.datetime,
) -> DiagnosticRun:
    return DiagnosticRun.objects.create(
        target=target,
        incident_id=incident_id,
        trigger=trigger,
        requested_by=user_or_none(requested_by),
        suite=suite,
        status=RunStatus.QUEUED,
        queued_at=now,
        deadline=now + datetime.timedelta(seconds=settings.QUELL_DIAGNOSTICS_QUEUE_DEADLINE_S),
        celery_task_id=str(uuid.uuid4()),
    )


def _enqueue(runs: list[tuple[int, str]]) -> None:
    """Send the tasks for (run id, task id) pairs, after commit: one task per run, so the
    workers share a fan-out. A broker outage parks them (incidents.dispatch) and the runs stay
    queued in the database, where a ready worker or the sweep sends them again."""
    from . import tasks

    dispatch_calls([call(tasks.run_diagnostics, pk, task_id=task_id) for pk, task_id in runs])


def queued_run_calls() -> list[Call]:
    """The tasks that send every queued diagnostic run (for a worker becoming ready)."""
    from . import tasks

    rows = DiagnosticRun.objects.filter(status=RunStatus.QUEUED).order_by("queued_at", "pk")
    return [
        call(tasks.run_diagnostics, pk, task_id=task_id or None)
        for pk, task_id in rows.values_list("pk", "celery_task_id")[:500]
    ]


def _relaxed_commit() -> None:
    """Run bookkeeping commits without waiting for the WAL flush (SET LOCAL: this transaction
    only). A crash of Quell's database server can then lose the last moments of a run's state,
    which the sweep repairs (re-queue or fail); a run never pays a disk flush per step."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL synchronous_commit TO OFF")


def _check_trigger(trigger: str) -> None:
    if trigger not in Trigger.values:
        raise DiagnosticsError(
            f"Trigger must be one of {', '.join(Trigger.values)}.", field="trigger"
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
    active = DiagnosticRun.objects.filter(
        target=target, incident_id=incident_id, suite=suite, status__in=ACTIVE_RUN_STATUSES
    ).first()
    if active is not None:
        return active
    run = _new_run(
        target=target,
        incident_id=incident_id,
        trigger=trigger,
        requested_by=requested_by,
        suite=suite,
        now=timezone.now(),
    )
    pair = (run.pk, run.celery_task_id)
    transaction.on_commit(lambda: _enqueue([pair]))
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
        run = DiagnosticRun.objects.filter(
            target=target, incident_id=incident_id, suite=suite, status__in=ACTIVE_RUN_STATUSES
        ).first()
        if run is None:
            run = _new_run(
                target=target,
                incident_id=incident_id,
                trigger=trigger,
                requested_by=requested_by,
                suite=suite,
                now=now,
            )
            new.append((run.pk, run.celery_task_id))
        runs.append(run)
    transaction.on_commit(lambda: _enqueue(new))
    return runs


def run_url(run: DiagnosticRun) -> str:
    """The absolute URL of a run's results page (for timelines and messages)."""
    return settings.QUELL_BASE_URL.rstrip("/") + reverse(
        "diagnostics:run-detail", kwargs={"run_id": run.pk}
    )


def _claim(run_id: int, task_id: str) -> tuple[DiagnosticRun | None, str]:
    """Move a queued run to running under its row lock; None when another delivery has it."""
    with transaction.atomic():
        _relaxed_commit()
        run = (
            DiagnosticRun.objects.select_for_update(of=("self",))
            .select_related("target")
            .filter(pk=run_id)
            .first()
        )
        if run is None:
            logger.warning("Diagnostic run %s does not exist; nothing to do", run_id)
            return None, ""
        if run.status != RunStatus.QUEUED:
            # A duplicate delivery (acks_late, a re-sent message): the first one owns the run.
            logger.info("Diagnostic run %s is %s; duplicate delivery ignored", run_id, run.status)
            return None, ""
        return run, mark_running(run, running_status=RunStatus.RUNNING, task_id=task_id)


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
    """Run a queued run's checks once and store the results (the Celery task's body).

    Not one transaction on purpose: the claim commits first so the run shows as running, the
    checks talk to the target with no lock held in Quell's database, and the results commit
    with the final status and the timeline event.
    """
    from .checks import registry
    from .runner import run_checks

    run, token = _claim(run_id, task_id)
    if run is None:
        return None
    target = run.target
    executions: list = []
    error = ""
    secrets: tuple[str, ...] = ()
    try:
        check_classes = registry.select(
            keys=run.suite.get("keys") or None, family=run.suite.get("family") or None
        )
        spec = target.to_connection_spec()
        secrets = tuple(spec.secrets())
        previous = selectors.previous_check_results(run=run, keys=[c.key for c in check_classes])
        executions = run_checks(
            spec,
            check_classes,
            thresholds=target.thresholds or None,
            timeouts=_timeouts(),
            previous=previous,
        )
    except crypto.SecretError as exc:
        error = str(exc)
    except KeyError as exc:
        error = f"The suite names a check that no longer exists: {exc.args[0]}"
    except SoftTimeLimitExceeded:
        error = (
            f"The run took longer than the worker's time limit "
            f"({settings.CELERY_TASK_SOFT_TIME_LIMIT} s) and was stopped."
        )
    except Exception as exc:
        # run_checks never raises for target problems; this is a bug in Quell, not the target.
        logger.exception("Diagnostic run %s failed unexpectedly", run_id)
        error = f"Internal error while running checks: {type(exc).__name__}"
    return _finish(run=run, token=token, executions=executions, error=error, secrets=secrets)


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


def _finish(
    *, run: DiagnosticRun, token: str, executions: list, error: str, secrets: tuple[str, ...]
) -> DiagnosticRun | None:
    """Store the results and the final status, if this execution still owns the run."""
    from .checks import registry, worst

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
    if error:
        status, worst_status, error = RunStatus.FAILED, "error", scrub(error, secrets=secrets)
    else:
        status = RunStatus.SUCCEEDED
        worst_status = str(worst(r.status for r in rows)) if rows else "ok"
    finished_at = timezone.now()
    with transaction.atomic():
        _relaxed_commit()
        # The conditional UPDATE takes the row lock and checks ownership in one statement: an
        # execution the sweep took over (or a duplicate) finds nothing to update.
        owned = DiagnosticRun.objects.filter(
            pk=run.pk, status=RunStatus.RUNNING, execution_token=token
        ).update(status=status, finished_at=finished_at, error=error, worst_status=worst_status)
        if not owned:
            logger.warning("Diagnostic run %s was taken over; late results discarded", run.pk)
            return None
        CheckResult.objects.bulk_create(rows)
        run.status, run.finished_at, run.error, run.worst_status = (
            status,
            finished_at,
            error,
            worst_status,
        )
        if run.incident_id:
            _timeline_summary(run, rows)
    return run


def _timeline_summary(run: DiagnosticRun, rows: list[CheckResult]) -> None:
    """The run's summary event on its incident: worst status, what matters, and the link."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    rank = {"critical": 0, "error": 1, "warning": 2}
    notable = sorted((r for r in rows if r.status in NOTABLE), key=lambda r: rank[r.status])
    url = run_url(run)
    if run.status == RunStatus.FAILED:
        message = f"Diagnostics on {run.target.name} failed: {run.error}"
    else:
        tally = ", ".join(
            f"{counts[s]} {s}"
            for s in ("critical", "error", "warning", "ok", "skipped")
            if counts.get(s)
        )
        message = f"Diagnostics on {run.target.name}: {run.worst_status.upper()} ({tally})"
        if notable:
            message += ". " + "; ".join(f"{r.title}: {r.summary}" for r in notable[:5])
    message += f" — {url}"
    timeline_append(
        incident_id=run.incident_id,
        kind=EventKind.DIAGNOSTIC_RUN,
        message=message,
        actor_label=ACTOR_LABEL,
        data={
            "run_id": run.pk,
            "target_id": run.target_id,
            "target_name": run.target.name,
            "status": run.status,
            "worst_status": run.worst_status,
            "counts": counts,
            "error": run.error,
            "url": url,
            "findings": [
                {
                    "key": r.key,
                    "title": r.title,
                    "status": r.status,
                    "summary": r.summary,
                    "rows": (r.findings or [])[:TIMELINE_FINDINGS_PER_CHECK],
                    "fix": r.fix,
                }
                for r in notable
            ],
        },
    )


def _mark_failed_by_sweep(run: DiagnosticRun) -> list[str]:
    run.worst_status = "error"
    return ["worst_status"]


def diagnostic_runs_sweep(*, now: datetime.datetime | None = None) -> dict[str, int]:
    """Runs stuck in queued or running past their deadline: re-queued once, then failed."""
    return stuck_runs_sweep(
        model=DiagnosticRun,
        active_statuses=ACTIVE_RUN_STATUSES,
        queued_status=RunStatus.QUEUED,
        failed_status=RunStatus.FAILED,
        enqueue=lambda run_id, task_id: _enqueue([(run_id, task_id)]),
        mark_failed=_mark_failed_by_sweep,
        timeline_failed=lambda run: _timeline_summary(run, []),
        label="Diagnostic run",
        now=now,
    )
