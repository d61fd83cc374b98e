"""Monitors: periodic sweeps that run a monitoring suite on the enabled targets and turn a
breach of the playbook's automated-monitoring thresholds into an incident.

A sweep (`monitor_sweep`, the Celery task diagnostics.monitor_sweep on a django-celery-beat
schedule) starts one diagnostic run per target with trigger "monitor". When such a run finishes,
the run task calls `after_run`, which queues `monitor_evaluate`: the run's stored results are
judged against the rules and the run's breaches go, as one delivery, through
diagnostics.detection.services.signals_ingest, the routing path alerts take (the target's most
severe open incident, else a new one; a persisting breach is recorded at most once per
QUELL_DETECTION_REPEAT_WINDOW_S). A rule that breached before and is healthy again adds
"back within thresholds"; nothing resolves an incident by itself.

Integrity checks (diagnostics.integrity) are monitored too: every `every_s` seconds a sweep
starts an ad hoc integrity run per target that has enabled checks, and later sweeps judge the
finished ones (violations -> data integrity incident).

Rules, weakest first: DEFAULT_RULES < settings.QUELL_MONITOR_RULES < the PeriodicTask's
`rules` kwarg < the target's thresholds["monitor"]. A rule keyed by a check key (e.g.
"replication_lag") also adds that check to the monitoring suite.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import logging
from typing import Any

from django.conf import settings
from django.db import transaction
from django.urls import NoReverseMatch
from django.utils import timezone

from diagnostics.models import CheckResult, DiagnosticRun, RunStatus, TargetDatabase, Trigger
from diagnostics.services import DiagnosticsError, diagnostic_run_start, run_url
from incidents.dispatch import dispatch
from incidents.models import Kind
from incidents.severity import SEVERITY_RANK, Severity

from .models import MonitorJudgement

logger = logging.getLogger(__name__)

# Runs finished this recently and not yet judged are judged by the next sweep (the hook's
# task was lost: broker down at that moment).
CATCH_UP_S = 15 * 60

_STATUS_RULE = {
    "enabled": True,
    "kind": Kind.PERFORMANCE,
    "at": "warning",
    "severity": {"warning": Severity.SEV3, "critical": Severity.SEV2},
}

# The playbook's "Detection Methods > Automated Monitoring" list, as rules over check results.
DEFAULT_RULES: dict[str, dict[str, Any]] = {
    # Error monitoring: database connection errors (unreachable, refusing connections).
    "connection": {"enabled": True, "kind": Kind.AVAILABILITY, "severity": Severity.SEV1},
    # Performance monitoring: connection pool utilisation (check: 90 % warning, 95 % critical).
    "connections": dict(_STATUS_RULE),
    # Performance monitoring: query execution time.
    "long_running_queries": dict(_STATUS_RULE),
    "blocking_locks": dict(_STATUS_RULE),
    # pg_stat_statements is cumulative: only a critical mean (>= 1 s by default) is a breach.
    "slow_queries": {**_STATUS_RULE, "at": "critical", "severity": {"critical": Severity.SEV3}},
    # Error monitoring: deadlock detection (new deadlocks since the previous sweep).
    "deadlocks": {
        "enabled": True,
        "kind": Kind.PERFORMANCE,
        "min_new": 1,
        "severity": Severity.SEV3,
    },
    # Data integrity monitoring: page checksum failures (corruption) since the previous sweep.
    "checksum_failures": {
        "enabled": True,
        "kind": Kind.DATA_INTEGRITY,
        "severity": Severity.SEV1,
    },
    # Data integrity monitoring: the target's integrity checks, by their own severity.
    "integrity": {
        "enabled": True,
        "kind": Kind.DATA_INTEGRITY,
        "every_s": 900,
        "severity": {
            "critical": Severity.SEV1,
            "high": Severity.SEV2,
            "medium": Severity.SEV3,
            "low": Severity.SEV4,
        },
    },
}
# Rules read from a check other than their own key.
DERIVED_FROM = {"deadlocks": "database_errors", "checksum_failures": "database_errors"}
SPECIAL_RULES = {"deadlocks", "checksum_failures", "integrity"}
_LEVELS = {"warning": 1, "critical": 2}


@dataclasses.dataclass
class Breach:
    rule: str
    kind: str
    severity: str
    title: str
    summary: str
    findings: list = dataclasses.field(default_factory=list)
    check_key: str = ""


# --- rules ---------------------------------------------------------------------------------


def _merge(base: dict, override: dict | None) -> dict:
    merged = copy.deepcopy(base)
    for key, value in (override or {}).items():
        current = merged.get(key)
        if isinstance(current, dict) and isinstance(value, dict):
            merged[key] = _merge(current, value)
        elif isinstance(value, dict) and key not in merged:
            merged[key] = {**_STATUS_RULE, **value} if key not in SPECIAL_RULES else value
        else:
            merged[key] = value
    return merged


def _check_keys() -> set[str]:
    from diagnostics.checks import registry

    return set(registry.keys())


def validate_rules(rules: dict) -> dict:
    """Refuse rules that would misbehave silently; returns them unchanged."""
    if not isinstance(rules, dict):
        raise DiagnosticsError("Monitor rules must be an object of rule name to settings.")
    known = _check_keys() | SPECIAL_RULES
    for name, rule in rules.items():
        if not isinstance(rule, dict):
            raise DiagnosticsError(f"Monitor rule {name!r} must be an object.", field="rules")
        if name not in known:
            raise DiagnosticsError(
                f"Monitor rule {name!r} names no check. Known: {', '.join(sorted(known))}.",
                field="rules",
            )
        if "kind" in rule and rule["kind"] not in Kind.values:
            raise DiagnosticsError(
                f"Monitor rule {name!r}: kind must be one of {', '.join(Kind.values)}.",
                field="rules",
            )
        if "at" in rule and rule["at"] not in _LEVELS:
            raise DiagnosticsError(
                f"Monitor rule {name!r}: at must be warning or critical.", field="rules"
            )
        severity = rule.get("severity")
        values = severity.values() if isinstance(severity, dict) else [severity]
        if severity is not None and any(v not in Severity.values for v in values):
            raise DiagnosticsError(
                f"Monitor rule {name!r}: severities must be SEV1-SEV4.", field="rules"
            )
    return rules


def effective_rules(
    *, monitor_rules: dict | None = None, target: TargetDatabase | None = None
) -> dict:
    """The rules that apply to a target under a monitor (see the module docstring)."""
    rules = _merge(DEFAULT_RULES, settings.QUELL_MONITOR_RULES)
    rules = validate_rules(_merge(rules, monitor_rules))
    override = (target.thresholds or {}).get("monitor") if target is not None else None
    if override:
        try:
            rules = validate_rules(_merge(rules, override))
        except DiagnosticsError as exc:
            # A target's bad override must not stop its monitoring: the monitor's rules apply.
            logger.warning("Target %s: monitor thresholds ignored: %s", target.name, exc)
    return rules


def suite_keys(rules: dict) -> list[str]:
    """The checks a monitoring run needs for these rules, in registry order."""
    from diagnostics.checks import registry

    wanted = set()
    for name, rule in rules.items():
        if not rule.get("enabled", True) or name == "integrity":
            continue
        wanted.add(DERIVED_FROM.get(name, name))
    return [key for key in registry.keys() if key in wanted]  # noqa: SIM118 (a method)


def _severity(rule: dict, level: str) -> str:
    severity = rule.get("severity", Severity.SEV3)
    if isinstance(severity, dict):
        return severity.get(level) or severity.get("critical") or Severity.SEV3
    return severity


# --- evaluation ----------------------------------------------------------------------------


def _previous_errors(run: DiagnosticRun) -> CheckResult | None:
    """The target's last database_errors result before this run (for the deltas)."""
    return (
        CheckResult.objects.filter(
            run__target_id=run.target_id,
            key="database_errors",
            run__status=RunStatus.SUCCEEDED,
            run__queued_at__lt=run.queued_at,
        )
        .exclude(run_id=run.pk)
        .exclude(status="error")
        .select_related("run")
        .order_by("-run__queued_at", "-run_id")
        .first()
    )


def evaluate_results(
    *, run: DiagnosticRun, results: dict[str, CheckResult], rules: dict
) -> tuple[list[Breach], list[str]]:
    """(breaches, rules known to be healthy) for one finished monitoring run."""
    target = run.target
    breaches: list[Breach] = []
    healthy: list[str] = []
    for name, rule in rules.items():
        if not rule.get("enabled", True) or name == "integrity":
            continue
        source = DERIVED_FROM.get(name, name)
        result = results.get(source)
        if result is None or result.status in ("skipped",):
            continue
        if name == "connection":
            # Unreachable or refusing connections (the runner's CRITICAL with an error); a
            # slow but working connection is the latency check's business, not availability.
            if result.status == "critical" and result.error:
                breaches.append(
                    Breach(
                        name,
                        rule["kind"],
                        _severity(rule, "critical"),
                        f"{target.name} unreachable: {result.summary}",
                        result.error,
                        result.findings[:3],
                        result.key,
                    )
                )
            elif result.status != "error":
                healthy.append(name)
            continue
        if result.status == "error":
            continue  # could not tell (timeout, target unreachable): neither breach nor healthy
        if name in ("deadlocks", "checksum_failures"):
            breach = _counter_breach(name, rule, run, result)
            if breach is not None:
                breaches.append(breach)
            else:
                healthy.append(name)
            continue
        level = _LEVELS.get(result.status, 0)
        if level and level >= _LEVELS[rule.get("at", "warning")]:
            breaches.append(
                Breach(
                    name,
                    rule["kind"],
                    _severity(rule, result.status),
                    f"{target.name}: {result.title}",
                    result.summary,
                    (result.findings or [])[:3],
                    result.key,
                )
            )
        else:
            healthy.append(name)
    return breaches, healthy


def _counter_breach(
    name: str, rule: dict, run: DiagnosticRun, result: CheckResult
) -> Breach | None:
    counter = "deadlocks" if name == "deadlocks" else "checksum_failures"
    current = float((result.metrics or {}).get(counter) or 0)
    previous = _previous_errors(run)
    if previous is None:
        # First look at this target: only corruption counts from the lifetime total.
        if counter != "checksum_failures" or current <= 0:
            return None
        new, since = current, "since statistics reset"
    else:
        before = float((previous.metrics or {}).get(counter) or 0)
        new = current - before
        if new < 0:  # statistics were reset in between
            return None
        age = (run.queued_at - previous.run.queued_at).total_seconds()
        since = f"in the last {int(age)} s"
    minimum = float(rule.get("min_new", 1))
    if new < minimum:
        return None
    what = "deadlock" if counter == "deadlocks" else "checksum failure"
    summary = f"{new:.0f} new {what}{'s' if new != 1 else ''} {since}"
    return Breach(
        name,
        rule["kind"],
        _severity(rule, "critical"),
        f"{run.target.name}: {what}s detected",
        summary,
        (result.findings or [])[:1],
        result.key,
    )


def _signals(
    *, target: TargetDatabase, breaches: list[Breach], healthy: list[str], rules: dict, data: dict
):
    from diagnostics.detection.services import FIRING, RESOLVED, Signal

    # Worst first: the first breach of a kind declares the incident with its severity.
    breaches = sorted(breaches, key=lambda b: SEVERITY_RANK[Severity(b.severity)])
    out = []
    for breach in breaches:
        out.append(
            Signal(
                source="monitor",
                fingerprint=f"monitor:{target.pk}:{breach.rule}",
                name=breach.rule,
                status=FIRING,
                title=breach.title,
                severity=breach.severity,
                kind=breach.kind,
                summary=breach.summary,
                target=target,
                detected_by=f"monitor/{data.get('monitor') or 'default'}",
                url=data.get("run_url", ""),
                data={
                    **data,
                    "rule": breach.rule,
                    "check": breach.check_key,
                    "findings": breach.findings,
                },
            )
        )
    for name in healthy:
        rule = rules[name]
        out.append(
            Signal(
                source="monitor",
                fingerprint=f"monitor:{target.pk}:{name}",
                name=name,
                status=RESOLVED,
                title=f"{target.name}: {name.replace('_', ' ')}",
                severity=_severity(rule, "critical"),
                kind=rule["kind"],
                target=target,
                detected_by=f"monitor/{data.get('monitor') or 'default'}",
                url=data.get("run_url", ""),
                data={**data, "rule": name},
                only_if_firing=True,
            )
        )
    return out


def _judgement(monitor: str = "default", **run) -> MonitorJudgement | None:
    """The run's judgement row, locked (created for a monitor run started without one); None
    when the run was judged already (the hook and the sweep's catch-up both may ask)."""
    MonitorJudgement.objects.get_or_create(**run, defaults={"monitor": monitor})
    judgement = MonitorJudgement.objects.select_for_update().get(**run)
    return None if judgement.evaluated_at is not None else judgement


def _judged(judgement: MonitorJudgement) -> None:
    judgement.evaluated_at = timezone.now()
    judgement.save(update_fields=["evaluated_at"])


def monitor_run_evaluate(*, run_id: int) -> list[dict]:
    """Judge a finished monitoring run; open or update incidents for its breaches."""
    from diagnostics.detection.services import Delivery, signals_ingest

    run = (
        DiagnosticRun.objects.select_related("target")
        .filter(pk=run_id, trigger=Trigger.MONITOR)
        .first()
    )
    if run is None or run.status not in (RunStatus.SUCCEEDED, RunStatus.FAILED):
        return []
    with transaction.atomic():
        judgement = _judgement(diagnostic_run_id=run.pk)
        if judgement is None:
            return []
        if run.status == RunStatus.FAILED:
            # The run itself could not proceed (credentials, worker limits): Quell's problem,
            # not the target's; the run page and the sweep's log say why.
            logger.warning("Monitor run %s on %s failed: %s", run.pk, run.target.name, run.error)
            _judged(judgement)
            return []
        rules = effective_rules(monitor_rules=judgement.rules, target=run.target)
        results = {r.key: r for r in run.results.all()}
        breaches, healthy = evaluate_results(run=run, results=results, rules=rules)
        data = {"monitor": judgement.monitor, "run_id": run.pk, "run_url": run_url(run)}
        # One run's judgement of one target is one delivery: its breaches go to one incident.
        signals = _signals(
            target=run.target, breaches=breaches, healthy=healthy, rules=rules, data=data
        )
        outcomes = [o.as_dict() for o in signals_ingest(delivery=Delivery(signals))]
        _judged(judgement)
    return [o for o in outcomes if o["action"] != "ignored"]


def after_run(run: DiagnosticRun | None) -> None:
    """Called by the run task when a run finishes: a monitoring run gets judged."""
    if run is None or run.trigger != Trigger.MONITOR:
        return
    from diagnostics.detection.tasks import monitor_evaluate

    # A broker outage parks the task; the next sweep also judges finished runs that were not
    # judged (CATCH_UP_S).
    dispatch(monitor_evaluate, run.pk)


# --- integrity ------------------------------------------------------------------------------


def _integrity_started(
    targets: list[TargetDatabase], rule: dict, now, *, monitor: str, rules: dict
) -> int:
    from diagnostics.integrity.models import IntegrityCheck, IntegrityPurpose, IntegrityRun
    from diagnostics.integrity.services import integrity_run_start

    started = 0
    every = datetime.timedelta(seconds=float(rule.get("every_s", 900)))
    with_checks = set(
        IntegrityCheck.objects.filter(target__in=targets, enabled=True).values_list(
            "target_id", flat=True
        )
    )
    for target in targets:
        if target.pk not in with_checks:
            continue
        recent = IntegrityRun.objects.filter(
            target=target, purpose=IntegrityPurpose.MONITOR, queued_at__gte=now - every
        ).exists()
        if recent:
            continue
        try:
            run = integrity_run_start(target_id=target.pk, purpose=IntegrityPurpose.MONITOR)
            MonitorJudgement.objects.get_or_create(
                integrity_run=run, defaults={"monitor": monitor, "rules": rules}
            )
            started += 1
        except DiagnosticsError as exc:
            logger.warning("Monitor: no integrity run on %s: %s", target.name, exc)
    return started


def integrity_run_evaluate(*, run_id: int, rules: dict | None = None) -> list[dict]:
    """Judge a finished monitor-started integrity run: violations open or update a data
    integrity incident; a clean run after a violation says so. Judged once (its
    MonitorJudgement), by its monitor's rules unless `rules` are given."""
    from diagnostics.integrity.models import IntegrityRun, IntegrityRunStatus

    run = IntegrityRun.objects.select_related("target").filter(pk=run_id).first()
    finished = (IntegrityRunStatus.SUCCEEDED, IntegrityRunStatus.FAILED)
    if run is None or run.status not in finished:
        return []
    with transaction.atomic():
        judgement = _judgement(integrity_run_id=run.pk, monitor="integrity")
        if judgement is None:
            return []
        outcomes = _integrity_judge(run, rules if rules is not None else judgement.rules)
        _judged(judgement)
    return [o for o in outcomes if o["action"] != "ignored"]


def _integrity_judge(run, rules: dict) -> list[dict]:
    from diagnostics.detection.services import FIRING, RESOLVED, Signal, signal_ingest
    from diagnostics.integrity.models import IntegrityRunStatus
    from diagnostics.integrity.services import run_url as integrity_url

    if run.status != IntegrityRunStatus.SUCCEEDED:
        return []
    target = run.target
    rule = effective_rules(monitor_rules=rules, target=target)["integrity"]
    if not rule.get("enabled", True):
        return []
    severities = rule.get("severity") or {}
    violations = list(run.results.filter(status="violation").order_by("id"))
    try:
        url = integrity_url(run)
    except NoReverseMatch:  # the integrity API is not mounted in this deployment
        url = ""
    base = {"monitor": "integrity", "integrity_run_id": run.pk, "run_url": url, "rule": "integrity"}
    signals = []
    if violations:
        worst = min(
            (severities.get(v.severity, Severity.SEV2) for v in violations),
            key=lambda s: SEVERITY_RANK[Severity(s)],
        )
        names = ", ".join(v.check_name for v in violations[:5])
        signals.append(
            Signal(
                source="monitor",
                fingerprint=f"monitor:{target.pk}:integrity",
                name="integrity",
                status=FIRING,
                title=f"{target.name}: data integrity check{'s' if len(violations) > 1 else ''}"
                f" violated",
                severity=worst,
                kind=rule["kind"],
                summary=f"{len(violations)} violated: {names}",
                target=target,
                detected_by="monitor/integrity",
                url=url,
                data={
                    **base,
                    "violations": [
                        {"check": v.check_name, "severity": v.severity, "count": v.count}
                        for v in violations[:20]
                    ],
                },
            )
        )
    elif not run.checks_errored:
        signals.append(
            Signal(
                source="monitor",
                fingerprint=f"monitor:{target.pk}:integrity",
                name="integrity",
                status=RESOLVED,
                title=f"{target.name}: data integrity checks",
                severity=Severity.SEV3,
                kind=rule["kind"],
                target=target,
                detected_by="monitor/integrity",
                url=url,
                data=base,
                only_if_firing=True,
            )
        )
    return [signal_ingest(signal=s).as_dict() for s in signals]


# --- the sweep ------------------------------------------------------------------------------


def _select_targets(*, environment=None, tag=None, targets=None) -> list[TargetDatabase]:
    qs = TargetDatabase.objects.filter(enabled=True)
    if environment:
        qs = qs.filter(environment=environment)
    if tag:
        qs = qs.filter(tags__contains=[str(tag).strip().lower()])
    if targets:
        ids = [t for t in targets if isinstance(t, int) or str(t).isdigit()]
        names = [str(t) for t in targets if not (isinstance(t, int) or str(t).isdigit())]
        qs = qs.filter(pk__in=[int(i) for i in ids]) | qs.filter(name__in=names)
    return list(qs.order_by("name"))


def _catch_up(now) -> int:
    """Judge recently finished monitoring runs whose evaluation was never queued or ran."""
    from diagnostics.integrity.models import IntegrityPurpose, IntegrityRun, IntegrityRunStatus

    judged = 0
    since = now - datetime.timedelta(seconds=CATCH_UP_S)
    judged_runs = MonitorJudgement.objects.filter(evaluated_at__isnull=False)
    run_ids = (
        DiagnosticRun.objects.filter(
            trigger=Trigger.MONITOR,
            status__in=(RunStatus.SUCCEEDED, RunStatus.FAILED),
            finished_at__gte=since,
        )
        .exclude(pk__in=judged_runs.filter(diagnostic_run__isnull=False).values("diagnostic_run"))
        .values_list("pk", flat=True)
    )
    for run_id in run_ids:
        monitor_run_evaluate(run_id=run_id)
        judged += 1
    integrity_ids = (
        IntegrityRun.objects.filter(
            purpose=IntegrityPurpose.MONITOR,
            status__in=(IntegrityRunStatus.SUCCEEDED, IntegrityRunStatus.FAILED),
            finished_at__gte=now - datetime.timedelta(days=1),
        )
        .exclude(pk__in=judged_runs.filter(integrity_run__isnull=False).values("integrity_run"))
        .values_list("pk", flat=True)
    )
    for run_id in integrity_ids:
        integrity_run_evaluate(run_id=run_id)
        judged += 1
    return judged


def monitor_sweep(
    *,
    name: str = "default",
    environment: str | None = None,
    tag: str | None = None,
    targets: list | None = None,
    rules: dict | None = None,
    keys: list[str] | None = None,
    integrity: bool = True,
) -> dict[str, int]:
    """One monitoring pass: judge what finished since the last one, then start a monitoring
    run on every enabled target of the selection (and integrity runs when due)."""
    now = timezone.now()
    rules = validate_rules(rules or {})
    counts = {"judged": _catch_up(now), "started": 0, "integrity_started": 0}
    selected = _select_targets(environment=environment, tag=tag, targets=targets)
    if not selected:
        return counts
    merged = effective_rules(monitor_rules=rules)
    for target in selected:
        # Per target: its own thresholds["monitor"] may add checks to its suite.
        target_rules = effective_rules(monitor_rules=rules, target=target)
        suite = {"keys": list(keys) if keys else suite_keys(target_rules)}
        if not suite["keys"]:
            continue
        try:
            run = diagnostic_run_start(target_id=target.pk, suite=suite, trigger=Trigger.MONITOR)
        except DiagnosticsError as exc:  # disabled meanwhile, a check removed from the code
            logger.warning("Monitor %s: no run on %s: %s", name, target.name, exc)
            continue
        if run.trigger == Trigger.MONITOR:
            # A run still in flight from an earlier sweep keeps the monitor that started it.
            MonitorJudgement.objects.get_or_create(
                diagnostic_run=run, defaults={"monitor": name, "rules": rules}
            )
        counts["started"] += 1
    if integrity and merged["integrity"].get("enabled", True):
        counts["integrity_started"] = _integrity_started(
            selected, merged["integrity"], now, monitor=name, rules=rules
        )
    return counts


# --- retention ------------------------------------------------------------------------------


def monitor_runs_prune(*, now: datetime.datetime | None = None, batch: int = 2000) -> dict:
    """Delete monitoring runs (and monitor integrity runs) older than
    QUELL_MONITOR_RETENTION_DAYS that no incident's timeline cites; returns counts."""
    from diagnostics.integrity.models import IntegrityPurpose, IntegrityRun
    from incidents.models import EventKind, TimelineEvent

    counts = {"runs": 0, "integrity_runs": 0}
    days = settings.QUELL_MONITOR_RETENTION_DAYS
    if days <= 0:
        return counts
    cutoff = (now or timezone.now()) - datetime.timedelta(days=days)
    # Runs a breach event links to stay: they are the evidence behind an incident.
    cited = TimelineEvent.objects.filter(kind=EventKind.ALERT, data__source="monitor")
    cited_runs = {r for r in cited.values_list("data__run_id", flat=True) if r}
    cited_integrity = {r for r in cited.values_list("data__integrity_run_id", flat=True) if r}
    run_ids = list(
        DiagnosticRun.objects.filter(
            trigger=Trigger.MONITOR,
            incident__isnull=True,
            queued_at__lt=cutoff,
            status__in=(RunStatus.SUCCEEDED, RunStatus.FAILED),
        )
        .exclude(pk__in=cited_runs)
        .values_list("pk", flat=True)[:batch]
    )
    if run_ids:
        DiagnosticRun.objects.filter(pk__in=run_ids).delete()  # results cascade
    integrity_ids = list(
        IntegrityRun.objects.filter(
            purpose=IntegrityPurpose.MONITOR,
            queued_at__lt=cutoff,
            finished_at__isnull=False,
        )
        .exclude(pk__in=cited_integrity)
        .values_list("pk", flat=True)[:batch]
    )
    if integrity_ids:
        IntegrityRun.objects.filter(pk__in=integrity_ids).delete()
    counts.update(runs=len(run_ids), integrity_runs=len(integrity_ids))
    if run_ids or integrity_ids:
        logger.info("Monitor retention: deleted %s", counts)
    return counts
