"""Incident metrics: response times (median and 90th percentile, computed by PostgreSQL's
percentile_cont), counts, and the Prometheus exposition served at /metrics.

Response times run from detection (`detected_at`, when the problem was first noticed) to the
first acknowledgement, mitigation (monitoring, or resolution when it skipped monitoring) and
resolution. Incidents are bucketed by the month they were declared in, in QUELL_TIME_ZONE.
"""

from __future__ import annotations

import datetime
import re
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection
from django.db.models import Count
from django.utils import timezone

from . import registry
from .models import OPEN_STATUSES, Incident, Kind, Status
from .severity import Severity

MEASURES = (
    ("acknowledge", "acknowledged_at", "Time to acknowledge"),
    ("mitigate", "mitigated_at", "Time to mitigate"),
    ("resolve", "resolved_at", "Time to resolve"),
)


def _seconds_since_detection(column: str) -> str:
    # GREATEST ignores NULLs, so guard explicitly: an unset time must stay NULL (and be left out
    # by percentile_cont) rather than count as zero. Clamped at zero because a detection time
    # typed in by hand can be later than the acknowledgement.
    return (
        f"CASE WHEN {column} IS NULL THEN NULL "
        f"ELSE GREATEST(EXTRACT(EPOCH FROM ({column} - detected_at)), 0) END"
    )


_BOTH = "GROUPING SETS ((severity), (month, severity))"
# What each grouping selects: all_months tells the two halves of GROUPING SETS apart.
_KEYS = {
    "severity": "NULL::date AS month, severity, 1 AS all_months",
    "month, severity": "month, severity, 0 AS all_months",
    _BOTH: "month, severity, GROUPING(month) AS all_months",
}


def _response_time_rows(
    *, since: datetime.datetime, until: datetime.datetime | None, group_by: str
) -> list[dict]:
    # One sort per measure and group: percentile_cont over an array of fractions shares it.
    aggregates = []
    for name, column, _ in MEASURES:
        expr = _seconds_since_detection(column)
        aggregates += [
            f"percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY {expr}) AS {name}_pct",
            f"count({column}) AS {name}_n",
        ]
    params: list = [settings.TIME_ZONE, since]
    where = "declared_at >= %s"
    if until is not None:
        where += " AND declared_at < %s"
        params.append(until)
    sql = (
        f"SELECT {_KEYS[group_by]}, count(*) AS incidents, "
        f"{', '.join(aggregates)} FROM ("
        "  SELECT *, (date_trunc('month', declared_at AT TIME ZONE %s))::date AS month"
        f"  FROM {Incident._meta.db_table} WHERE {where}"
        f") AS period GROUP BY {group_by} ORDER BY month NULLS FIRST, severity"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        names = [col.name for col in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    for row in rows:
        for name, _, _ in MEASURES:
            pct = row.pop(f"{name}_pct")
            p50, p90 = pct if pct is not None else (None, None)
            row[f"{name}_p50"] = float(p50) if p50 is not None else None
            row[f"{name}_p90"] = float(p90) if p90 is not None else None
    return rows


def response_times(
    *,
    since: datetime.datetime,
    until: datetime.datetime | None = None,
    by_month: bool = True,
) -> list[dict]:
    """Median and p90 seconds to acknowledge, mitigate, resolve, per severity (and month)."""
    group_by = "month, severity" if by_month else "severity"
    rows = _response_time_rows(since=since, until=until, group_by=group_by)
    for row in rows:
        del row["all_months"]
        if not by_month:
            del row["month"]
    return rows


def response_times_by_severity_and_month(
    *, since: datetime.datetime, until: datetime.datetime | None = None
) -> tuple[list[dict], list[dict]]:
    """Both groupings of response_times in one pass over the period (GROUPING SETS)."""
    rows = _response_time_rows(since=since, until=until, group_by=_BOTH)
    by_severity, by_month = [], []
    for row in rows:
        if row.pop("all_months"):
            del row["month"]
            by_severity.append(row)
        else:
            by_month.append(row)
    return by_severity, by_month


def incident_counts(*, since: datetime.datetime) -> dict[str, dict[str, int]]:
    """Incidents declared since `since` by severity, by kind and by status, in one scan."""
    sql = (
        "SELECT severity, kind, status, GROUPING(severity), GROUPING(kind), count(*) "
        f"FROM {Incident._meta.db_table} WHERE declared_at >= %s "
        "GROUP BY GROUPING SETS ((severity), (kind), (status))"
    )
    out: dict[str, dict[str, int]] = {"severity": {}, "kind": {}, "status": {}}
    with connection.cursor() as cursor:
        cursor.execute(sql, [since])
        for severity, kind, status, no_severity, no_kind, n in cursor.fetchall():
            if not no_severity:
                out["severity"][severity] = n
            elif not no_kind:
                out["kind"][kind] = n
            else:
                out["status"][status] = n
    return out


def _with_labels(counts: dict[str, int], choices) -> list[tuple[str, str, int]]:
    return [(value, label, counts.get(value, 0)) for value, label in choices]


@dataclass
class Dashboard:
    since: datetime.datetime
    months: int
    by_severity: list[dict]
    by_month: list[dict]
    counts_severity: list[tuple[str, str, int]]
    counts_kind: list[tuple[str, str, int]]
    counts_status: list[tuple[str, str, int]]
    counts_target: list[tuple[str, int]] | None
    open_now: int
    action_items: dict | None
    total: int = field(default=0)
    computed_at: datetime.datetime = field(default_factory=timezone.now)


def period_start(months: int) -> datetime.datetime:
    """Start of the month `months - 1` months before this one, in the local time zone."""
    today = timezone.localdate()
    year, month = today.year, today.month - (months - 1)
    while month <= 0:
        month += 12
        year -= 1
    return timezone.make_aware(datetime.datetime(year, month, 1))


def dashboard(*, months: int = 12) -> Dashboard:
    """Everything the metrics page shows for the last `months` months."""
    since = period_start(months)
    counts = incident_counts(since=since)
    counts_severity = _with_labels(counts["severity"], Severity.choices)
    by_severity, by_month = response_times_by_severity_and_month(since=since)
    return Dashboard(
        since=since,
        months=months,
        by_severity=by_severity,
        by_month=by_month,
        counts_severity=counts_severity,
        counts_kind=_with_labels(counts["kind"], Kind.choices),
        counts_status=_with_labels(counts["status"], Status.choices),
        counts_target=registry.incident_counts_by_target(since=since),
        open_now=Incident.objects.filter(status__in=OPEN_STATUSES).count(),
        action_items=registry.action_items_summary(),
        total=sum(n for _, _, n in counts_severity),
    )


# --- Prometheus exposition ----------------------------------------------------------------

_NAME_OK = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


def _escape_label(value) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _format_value(value) -> str:
    if value is None:
        return "NaN"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


class Exposition:
    """Writes the Prometheus text format (version 0.0.4): HELP and TYPE once per family."""

    def __init__(self):
        self.lines: list[str] = []
        self._declared: set[str] = set()

    def family(self, name: str, kind: str, help_text: str) -> None:
        assert _NAME_OK.match(name), name
        if name in self._declared:
            return
        self._declared.add(name)
        self.lines.append(f"# HELP {name} {help_text.replace(chr(10), ' ')}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, value, labels: dict | None = None) -> None:
        if labels:
            rendered = ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels.items())
            self.lines.append(f"{name}{{{rendered}}} {_format_value(value)}")
        else:
            self.lines.append(f"{name} {_format_value(value)}")

    def render(self) -> str:
        return "\n".join(self.lines) + "\n"


def _latency_summary(
    out: Exposition, model, *, task: str, start: str, end: str, phase: str, window_hours: int = 24
) -> None:
    """p50/p90/p99 of (end - start) over rows that ended in the window, as a summary."""
    table = model._meta.db_table
    start_col = model._meta.get_field(start).column
    end_col = model._meta.get_field(end).column
    expr = f"EXTRACT(EPOCH FROM ({end_col} - {start_col}))"
    sql = (
        f"SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY {expr}), "
        f"percentile_cont(0.9) WITHIN GROUP (ORDER BY {expr}), "
        f"percentile_cont(0.99) WITHIN GROUP (ORDER BY {expr}), "
        f"count(*), coalesce(sum({expr}), 0) FROM {table} "
        f"WHERE {end_col} IS NOT NULL AND {start_col} IS NOT NULL AND {end_col} >= %s"
    )
    since = timezone.now() - datetime.timedelta(hours=window_hours)
    with connection.cursor() as cursor:
        cursor.execute(sql, [since])
        p50, p90, p99, count, total = cursor.fetchone()
    labels = {"task": task, "phase": phase}
    for quantile, value in (("0.5", p50), ("0.9", p90), ("0.99", p99)):
        out.sample("quell_task_latency_seconds", value, {**labels, "quantile": quantile})
    out.sample("quell_task_latency_seconds_sum", float(total), labels)
    out.sample("quell_task_latency_seconds_count", int(count), labels)


def prometheus_exposition() -> str:
    """The text served at /metrics."""
    started = time.perf_counter()
    out = Exposition()

    out.family("quell_incidents_open", "gauge", "Open incidents (not resolved) by severity.")
    open_counts = dict(
        Incident.objects.filter(status__in=OPEN_STATUSES)
        .values_list("severity")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for severity in Severity.values:
        out.sample("quell_incidents_open", open_counts.get(severity, 0), {"severity": severity})

    out.family(
        "quell_incidents_unacknowledged",
        "gauge",
        "Open incidents nobody has acknowledged yet, by severity.",
    )
    unacked = dict(
        Incident.objects.filter(status__in=OPEN_STATUSES, acknowledged_at__isnull=True)
        .values_list("severity")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for severity in Severity.values:
        out.sample(
            "quell_incidents_unacknowledged", unacked.get(severity, 0), {"severity": severity}
        )

    out.family("quell_incidents", "gauge", "Incidents by status and severity.")
    rows = (
        Incident.objects.values_list("status", "severity")
        .annotate(n=Count("pk"))
        .order_by("status", "severity")
    )
    for status, severity, n in rows:
        out.sample("quell_incidents", n, {"status": status, "severity": severity})

    out.family(
        "quell_incident_oldest_open_age_seconds",
        "gauge",
        "Age of the oldest open incident since detection (0 when none is open).",
    )
    oldest = (
        Incident.objects.filter(status__in=OPEN_STATUSES)
        .order_by("detected_at")
        .values_list("detected_at", flat=True)
        .first()
    )
    age = (timezone.now() - oldest).total_seconds() if oldest else 0
    out.sample("quell_incident_oldest_open_age_seconds", round(age, 3))

    latencies: list[dict] = []
    # Each app writes its own families (incidents.registry; diagnostics, comms register).
    for writer in registry.metrics_writers():
        writer.write(out, latencies)
    _action_items(out)
    if latencies:
        # One family, its samples together, as the exposition format requires.
        out.family(
            "quell_task_latency_seconds",
            "summary",
            "Latency of background tasks that finished in the last 24 hours: queue (enqueued "
            "to started) and run (started to finished).",
        )
        for spec in latencies:
            _latency_summary(out, **spec)

    out.family(
        "quell_metrics_scrape_duration_seconds", "gauge", "Time taken to compute these metrics."
    )
    out.sample("quell_metrics_scrape_duration_seconds", round(time.perf_counter() - started, 6))
    return out.render()


def status_counts(model, field: str) -> dict[str, int]:
    """Rows per value of a status field, every declared choice included (zero when none): for
    apps' metrics writers (incidents.registry.MetricsWriter)."""
    counts = {str(value): 0 for value, _ in (model._meta.get_field(field).choices or [])}
    rows = model.objects.values_list(field).annotate(n=Count("pk")).order_by()
    counts.update({str(value): n for value, n in rows})
    return counts


def _action_items(out: Exposition) -> None:
    summary = registry.action_items_summary()
    if summary is None:
        return
    out.family("quell_action_items_open", "gauge", "Postmortem action items not done.")
    out.sample("quell_action_items_open", summary["open"])
    if summary["overdue"] is not None:
        out.family("quell_action_items_overdue", "gauge", "Open action items past their due date.")
        out.sample("quell_action_items_overdue", summary["overdue"])
