"""Reads: targets, runs and results, comparisons, and the incident summary other apps show.

Nothing here connects to a target database: results are read from Quell's own tables, so they
stay readable when the target is down.
"""

from __future__ import annotations

from typing import Any

from django.db.models import OuterRef, Prefetch, QuerySet, Subquery
from django.utils import timezone

from incidents.models import OPEN_STATUSES

from .models import CheckResult, DiagnosticRun, IncidentTarget, RunStatus, TargetDatabase

# Result statuses worth a responder's attention, worst first.
NOTABLE_ORDER = {"critical": 0, "error": 1, "warning": 2}
CONNECTION_CHECK_FAMILY = "connection"


def target_list(*, filters: dict | None = None) -> QuerySet[TargetDatabase]:
    """Targets by name."""
    qs = TargetDatabase.objects.all()
    if filters:
        qs = qs.filter(**filters)
    return qs.order_by("name")


def target_choices() -> list[tuple[int, str]]:
    """(id, "name (environment)") of every target, by name, for pickers such as the declare
    form (disabled ones are marked: they are linked but get no run)."""
    return [
        (pk, f"{name} ({environment}){'' if enabled else ' (disabled)'}")
        for pk, name, environment, enabled in TargetDatabase.objects.order_by("name").values_list(
            "pk", "name", "environment", "enabled"
        )
    ]


def target_filter_choices(limit: int = 500) -> list[tuple[int, str]]:
    """(id, name) of targets, by name, for the incident list's database filter (only those two
    columns: targets also hold encrypted credentials)."""
    return list(TargetDatabase.objects.order_by("name").values_list("pk", "name")[:limit])


def target_names(ids: set[int]) -> dict[int, str]:
    """Names of the targets with these ids."""
    return dict(TargetDatabase.objects.filter(pk__in=ids).values_list("pk", "name"))


def target_overview() -> QuerySet[TargetDatabase]:
    """Targets by name, each annotated with its latest run (latest_run_id, _status, _worst,
    _queued_at) and its most severe open incident (open_incident_id), in one query."""
    latest = DiagnosticRun.objects.filter(target=OuterRef("pk")).order_by("-queued_at", "-id")
    open_incident = IncidentTarget.objects.filter(
        target=OuterRef("pk"), incident__status__in=OPEN_STATUSES
    ).order_by("incident__severity", "-incident__declared_at")
    return TargetDatabase.objects.annotate(
        # The most severe open incident on the target (SEV1 sorts first), if any.
        open_incident_id=Subquery(open_incident.values("incident_id")[:1]),
        latest_run_id=Subquery(latest.values("id")[:1]),
        latest_run_status=Subquery(latest.values("status")[:1]),
        latest_run_worst=Subquery(latest.values("worst_status")[:1]),
        latest_run_queued_at=Subquery(latest.values("queued_at")[:1]),
    ).order_by("name")


def run_list(*, filters: dict | None = None) -> QuerySet[DiagnosticRun]:
    """Runs, newest first, with target and requester loaded."""
    qs = DiagnosticRun.objects.select_related("target", "requested_by")
    if filters:
        qs = qs.filter(**filters)
    return qs.order_by("-queued_at", "-id")


def run_get(*, run_id: int) -> DiagnosticRun:
    """One run with its results (ordered as they ran)."""
    return (
        DiagnosticRun.objects.select_related("target", "requested_by", "incident")
        .prefetch_related(Prefetch("results", queryset=CheckResult.objects.order_by("id")))
        .get(pk=run_id)
    )


def check_history(*, target_id: int, key: str) -> QuerySet[CheckResult]:
    """One check's results on one target across runs, newest first."""
    return (
        CheckResult.objects.filter(run__target_id=target_id, key=key)
        .select_related("run")
        .order_by("-run__queued_at", "-run_id")
    )


def check_statuses_between(*, target_id: int, key: str, since, until) -> list[str]:
    """The statuses one check had on one target in the runs that started in [since, until]."""
    return list(
        CheckResult.objects.filter(
            run__target_id=target_id,
            key=key,
            run__started_at__gte=since,
            run__started_at__lte=until,
        ).values_list("status", flat=True)
    )


def incident_targets(*, incident_id: int) -> QuerySet[IncidentTarget]:
    """An incident's affected targets, in the order they were added."""
    return (
        IncidentTarget.objects.filter(incident_id=incident_id)
        .select_related("target", "added_by")
        .order_by("added_at", "id")
    )


def incident_runs(*, incident_id: int) -> QuerySet[DiagnosticRun]:
    """Runs linked to an incident, newest first."""
    return run_list(filters={"incident_id": incident_id})


def latest_run(*, target_id: int, incident_id: int | None = None) -> DiagnosticRun | None:
    """The target's most recent run (within an incident when given)."""
    qs = DiagnosticRun.objects.filter(target_id=target_id)
    if incident_id is not None:
        qs = qs.filter(incident_id=incident_id)
    return qs.order_by("-queued_at", "-id").first()


def previous_finished_run(*, run: DiagnosticRun) -> DiagnosticRun | None:
    """The same target's last succeeded run before `run` (what 'before' reads against)."""
    return (
        DiagnosticRun.objects.filter(
            target_id=run.target_id, status=RunStatus.SUCCEEDED, queued_at__lt=run.queued_at
        )
        .exclude(pk=run.pk)
        .order_by("-queued_at", "-id")
        .first()
    )


def previous_check_results(*, run: DiagnosticRun, keys: list[str]) -> dict[str, Any]:
    """Per check key, that check's latest usable result for the same target before `run`
    (any trigger: monitor runs included), as PreviousResult for the runner.

    A check that errored or was skipped measured nothing, so the result before it is used.
    """
    from .checks.base import PreviousResult

    latest = (
        CheckResult.objects.filter(
            run__target_id=run.target_id,
            run__status=RunStatus.SUCCEEDED,
            run__queued_at__lt=run.queued_at,
            key__in=keys,
        )
        .exclude(run_id=run.pk)
        .exclude(status__in=("error", "skipped"))
        .order_by("key", "-run__queued_at", "-run_id")
        .distinct("key")
        .select_related("run")
    )
    now = run.started_at or timezone.now()
    previous = {}
    for result in latest:
        at = _run_time(result.run)
        previous[result.key] = PreviousResult(
            status=result.status,
            metrics=dict(result.metrics or {}),
            age_s=max(0.0, (now - at).total_seconds()) if at else None,
            run_id=result.run_id,
        )
    return previous


def notable_results(results) -> list[CheckResult]:
    """Critical, error and warning results, worst first."""
    notable = [r for r in results if r.status in NOTABLE_ORDER]
    return sorted(notable, key=lambda r: (NOTABLE_ORDER[r.status], r.id or 0))


def connection_status(run: DiagnosticRun, results) -> str:
    """ "ok", "unreachable", or the connection check's status; "" while no result exists."""
    if run.status == RunStatus.FAILED and not results:
        return "unreachable" if run.error else "error"
    conn = [r for r in results if r.family == CONNECTION_CHECK_FAMILY]
    if not conn:
        return "" if run.is_active else "unknown"
    statuses = {r.status for r in conn}
    if "error" in statuses or "critical" in statuses:
        return "unreachable" if "error" in statuses else "critical"
    if "warning" in statuses:
        return "warning"
    return "ok"


def _run_summary(run: DiagnosticRun | None) -> dict[str, Any]:
    from .services import run_url

    if run is None:
        return {
            "run_id": None,
            "run_status": "",
            "trigger": "",
            "queued_at": None,
            "finished_at": None,
            "connection_status": "",
            "worst_status": "",
            "counts": {},
            "error_count": 0,
            "metrics": {},
            "findings": [],
            "error": "",
            "url": "",
        }
    results = list(run.results.order_by("id"))
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    return {
        "run_id": run.pk,
        "run_status": run.status,
        "trigger": run.trigger,
        "queued_at": run.queued_at,
        "finished_at": run.finished_at,
        "connection_status": connection_status(run, results),
        "worst_status": run.worst_status,
        "counts": counts,
        "error_count": counts.get("error", 0),
        "metrics": {r.key: r.metrics for r in results if r.metrics},
        "findings": [
            {
                "key": r.key,
                "title": r.title,
                "status": r.status,
                "summary": r.summary,
                "rows": (r.findings or [])[:5],
                "fix": r.fix,
            }
            for r in notable_results(results)
        ],
        "error": run.error,
        "url": run_url(run),
    }


def incident_diagnostics_summary(*, incident_id: int) -> dict[str, Any]:
    """Per affected target, what its latest run found (for comms templates and pages).

    Returns {"incident_id", "targets": [...], "worst_status", "has_runs", "text"} where each
    target is {"target_id", "name", "environment", "address", plus the latest run's
    "run_id", "run_status", "trigger", "queued_at", "finished_at", "connection_status"
    ("ok" / "warning" / "critical" / "unreachable" / "unknown"), "worst_status", "counts"
    {status: n}, "error_count", "metrics" {check key: {counter: value}}, "findings" (critical,
    error and warning checks, worst first: key, title, status, summary, rows, fix), "error",
    "url"}. Without a run the run fields are empty ("", None, {}, []). The latest run linked to
    this incident is preferred; otherwise the target's latest run of any origin. "text" is a
    plain-text digest suitable for a message body.
    """
    from .checks.base import STATUS_RANK

    targets = []
    for link in incident_targets(incident_id=incident_id):
        run = latest_run(target_id=link.target_id, incident_id=incident_id) or latest_run(
            target_id=link.target_id
        )
        targets.append(
            {
                "target_id": link.target_id,
                "name": link.target.name,
                "environment": link.target.environment,
                "address": link.target.address,
                **_run_summary(run),
            }
        )
    statuses = [t["worst_status"] for t in targets if t["worst_status"]]
    worst = max(statuses, key=lambda s: STATUS_RANK.get(s, 0), default="")
    return {
        "incident_id": incident_id,
        "targets": targets,
        "worst_status": worst,
        "has_runs": any(t["run_id"] for t in targets),
        "text": summary_text(targets),
    }


def summary_text(targets: list[dict[str, Any]]) -> str:
    """A plain-text digest of the per-target summaries."""
    if not targets:
        return "No affected databases recorded."
    lines = []
    for t in targets:
        if not t["run_id"]:
            lines.append(f"- {t['name']}: no diagnostics yet")
            continue
        if t["run_status"] in ("queued", "running"):
            lines.append(f"- {t['name']}: diagnostics {t['run_status']}")
            continue
        head = f"- {t['name']}: {(t['worst_status'] or t['run_status']).upper()}"
        if t["connection_status"] == "unreachable":
            head += " (unreachable)"
        lines.append(head)
        for f in t["findings"][:5]:
            lines.append(f"  - {f['title']}: {f['summary']}")
    return "\n".join(lines)


# --- comparison ----------------------------------------------------------------------------


# Fields that name the thing a findings row is about (never a measurement of it).
_NAMING_FIELDS = (
    "pid",
    "queryid",
    "query_id",
    "relation",
    "table",
    "schema",
    "index",
    "sequence",
    "slot",
    "slot_name",
    "name",
    "database",
    "datname",
    "usename",
    "user",
    "application_name",
    "client_addr",
    "state",
    "dimension",
    "scope",
    "source",
    "version",
    "migration",
    "tool",
    "blocked_pid",
    "blocking_pid",
    "gid",
)


def _finding_identity(row: dict, position: int) -> str:
    """A stable identity for a findings row, so 'appeared' and 'cleared' can be computed.

    A check may put an explicit "id" in a row; otherwise the identity is built from the fields
    that name a thing (pid, relation, query id, ...). A row with none of them (a check's single
    summary row, say) is identified by its position, so its new measurements read as a change.
    """
    if "id" in row:
        return str(row["id"])
    parts = [f"{k}={row[k]}" for k in _NAMING_FIELDS if k in row]
    if "value" in row and isinstance(row["value"], str):
        parts.append(f"value={row['value']}")
    return "|".join(parts) if parts else f"#{position}"


OTHER_DATABASE = "other_database"  # a finding's scope: another database of the same server


def _index_findings(result: CheckResult | None, *, other_databases: bool = False):
    """Findings by identity: the target's own, or (other_databases) those of other databases
    on the same server, which are compared apart."""
    if result is None:
        return {}
    rows = [
        row
        for row in (result.findings or [])
        if isinstance(row, dict) and (row.get("scope") == OTHER_DATABASE) == other_databases
    ]
    indexed: dict[str, dict] = {}
    for i, row in enumerate(rows):
        identity = _finding_identity(row, i)
        n = 1
        while identity in indexed:  # two rows naming the same thing stay two rows
            n += 1
            identity = f"{_finding_identity(row, i)}~{n}"
        indexed[identity] = row
    return indexed


def _flatten_metrics(metrics: dict, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in (metrics or {}).items():
        name = f"{prefix}{k}"
        if isinstance(v, bool):
            continue
        if isinstance(v, int | float):
            out[name] = float(v)
        elif isinstance(v, dict):
            out.update(_flatten_metrics(v, prefix=f"{name}."))
    return out


def _run_time(run: DiagnosticRun):
    return run.finished_at or run.started_at or run.queued_at


def run_compare(*, base_run_id: int, head_run_id: int) -> dict[str, Any]:
    """Two runs of the same target side by side: per check the status change, the findings that
    appeared, cleared or persisted, and each counter's change and change per second."""
    from .services import DiagnosticsError

    runs = {
        r.pk: r
        for r in DiagnosticRun.objects.select_related("target").filter(
            pk__in=[base_run_id, head_run_id]
        )
    }
    if base_run_id not in runs:
        raise DiagnosticsError(f"Run {base_run_id} does not exist.", field="base")
    if head_run_id not in runs:
        raise DiagnosticsError(f"Run {head_run_id} does not exist.", field="head")
    base, head = runs[base_run_id], runs[head_run_id]
    if base.target_id != head.target_id:
        raise DiagnosticsError("Both runs must be of the same target.", field="head")
    if _run_time(base) > _run_time(head):
        base, head = head, base  # "before" is always the earlier run
    base_results = {r.key: r for r in base.results.all()}
    head_results = {r.key: r for r in head.results.all()}
    seconds = (_run_time(head) - _run_time(base)).total_seconds()
    checks = []
    for key in list(dict.fromkeys([*base_results, *head_results])):
        b, h = base_results.get(key), head_results.get(key)
        bf, hf = _index_findings(b), _index_findings(h)
        bm, hm = _flatten_metrics(b.metrics if b else {}), _flatten_metrics(h.metrics if h else {})
        metrics = []
        for name in list(dict.fromkeys([*bm, *hm])):
            before, after = bm.get(name), hm.get(name)
            delta = None if before is None or after is None else after - before
            metrics.append(
                {
                    "name": name,
                    "before": before,
                    "after": after,
                    "delta": delta,
                    "per_second": (delta / seconds) if delta is not None and seconds > 0 else None,
                }
            )
        appeared = [hf[i] for i in hf if i not in bf]
        cleared = [bf[i] for i in bf if i not in hf]
        persisted = [{"before": bf[i], "after": hf[i]} for i in hf if i in bf]
        changed = [p for p in persisted if p["before"] != p["after"]]
        # Sessions of other databases on the same server: apart, never mixed with the target's.
        bo = _index_findings(b, other_databases=True)
        ho = _index_findings(h, other_databases=True)
        other_databases = {
            "appeared": [ho[i] for i in ho if i not in bo],
            "cleared": [bo[i] for i in bo if i not in ho],
            "changed": [
                {"before": bo[i], "after": ho[i]} for i in ho if i in bo and bo[i] != ho[i]
            ],
        }
        ref = h or b
        before_status = b.status if b else ""
        after_status = h.status if h else ""
        checks.append(
            {
                "key": key,
                "title": ref.title,
                "family": ref.family,
                "status_before": before_status,
                "status_after": after_status,
                "status_changed": before_status != after_status,
                "summary_before": b.summary if b else "",
                "summary_after": h.summary if h else "",
                "appeared": appeared,
                "cleared": cleared,
                "changed": changed,
                "unchanged_count": len(persisted) - len(changed),
                "other_databases": other_databases,
                "metrics": metrics,
            }
        )
    return {
        "target": {"id": head.target_id, "name": head.target.name},
        "base": {
            "id": base.pk,
            "at": _run_time(base),
            "status": base.status,
            "worst_status": base.worst_status,
        },
        "head": {
            "id": head.pk,
            "at": _run_time(head),
            "status": head.status,
            "worst_status": head.worst_status,
        },
        "seconds_between": seconds,
        "checks": checks,
        "appeared_count": sum(len(c["appeared"]) for c in checks),
        "cleared_count": sum(len(c["cleared"]) for c in checks),
        "status_changes": [c["key"] for c in checks if c["status_changed"]],
    }
