"""The insights dashboard (response times, counts, action items) and Prometheus metrics."""

from __future__ import annotations

import hmac
import logging

from django.conf import settings
from django.core.cache import cache
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from incidents import charts, metrics
from incidents.severity import Severity
from incidents.templatetags.incident_web import duration

from .access import viewer_required

logger = logging.getLogger(__name__)

PERIODS = (3, 6, 12, 24)


def _cached_dashboard(months: int) -> metrics.Dashboard:
    # The figures aggregate every incident of the period: reuse them for a short while rather
    # than recompute on every view (the page says how old they are).
    ttl = settings.QUELL_INSIGHTS_CACHE_SECONDS
    key = f"incidents:insights:{months}"
    board = None
    if ttl:
        try:
            board = cache.get(key)
        except Exception:
            # The shared cache is down or stalled (its client times out): compute the figures.
            logger.warning("Insights cache unavailable; computing the figures")
    if board is None:
        board = metrics.dashboard(months=months)
        if ttl:
            try:
                cache.set(key, board, ttl)
            except Exception:
                logger.warning("Insights cache unavailable; figures not kept")
    return board


@require_GET
@viewer_required
def metrics_dashboard(request):
    """Response times, counts and action items with server-side SVG charts."""
    try:
        months = int(request.GET.get("months", 12))
    except ValueError:
        months = 12
    if months not in PERIODS:
        months = 12
    board = _cached_dashboard(months)
    measure_series = [
        (f"{label} (median)", f"bar bar-{name}", [row[f"{name}_p50"] for row in board.by_severity])
        for name, _, label in metrics.MEASURES
    ]
    severity_chart = charts.grouped_bars(
        [row["severity"] for row in board.by_severity],
        measure_series,
        title="Median time from detection, by severity",
        fmt=duration,
        nice=charts.nice_duration_max,
    )
    months_seen = sorted({row["month"] for row in board.by_month})
    resolve_by_month = []
    for severity in Severity.values:
        values = {
            row["month"]: row["resolve_p50"]
            for row in board.by_month
            if row["severity"] == severity
        }
        resolve_by_month.append(
            (severity, f"bar bar-{severity.lower()}", [values.get(m) for m in months_seen])
        )
    month_chart = charts.grouped_bars(
        [m.strftime("%b %Y") for m in months_seen],
        resolve_by_month,
        title="Median time to resolve, by month and severity",
        fmt=duration,
        nice=charts.nice_duration_max,
    )
    count_charts = [
        (
            "By severity",
            charts.horizontal_bars(
                [(label, n) for _, label, n in board.counts_severity],
                title="Incidents by severity",
                css="bar bar-count",
            ),
        ),
        (
            "By kind",
            charts.horizontal_bars(
                [(label, n) for _, label, n in board.counts_kind],
                title="Incidents by kind",
                css="bar bar-count",
            ),
        ),
        (
            "By status",
            charts.horizontal_bars(
                [(label, n) for _, label, n in board.counts_status],
                title="Incidents by status",
                css="bar bar-count",
            ),
        ),
    ]
    if board.counts_target is not None:
        count_charts.append(
            (
                "By target",
                charts.horizontal_bars(
                    board.counts_target[:15] or [("(none linked)", 0)],
                    title="Incidents by target",
                    css="bar bar-count",
                ),
            )
        )
    return render(
        request,
        "incidents/metrics_dashboard.html",
        {
            "board": board,
            "periods": PERIODS,
            "measures": metrics.MEASURES,
            "severity_chart": severity_chart,
            "month_chart": month_chart,
            "count_charts": count_charts,
        },
    )


@require_GET
def prometheus_metrics(request):
    """Prometheus exposition, for a scraper holding QUELL_METRICS_TOKEN as a bearer token.

    Without a configured token the endpoint does not exist (404): metrics are off by default
    rather than open to anyone. No Authorization header: 401 with a Bearer challenge; a wrong
    token: 403.
    """
    token = settings.QUELL_METRICS_TOKEN
    if not token:
        raise Http404("Metrics are disabled: set QUELL_METRICS_TOKEN to enable them.")
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        response = HttpResponse("Bearer token required.\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="quell-metrics"'
        return response
    if not hmac.compare_digest(presented.strip().encode(), token.encode()):
        return HttpResponse("Invalid token.\n", status=403, content_type="text/plain")
    return HttpResponse(
        metrics.prometheus_exposition(),
        content_type="text/plain; version=0.0.4; charset=utf-8",
    )
