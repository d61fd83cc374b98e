"""Metrics: medians and 90th percentiles against hand-computed values, counts, the page."""

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from incidents import metrics
from tests.factories import IncidentFactory

pytestmark = pytest.mark.django_db

MIN = 60


def make(declared, *, severity="SEV2", ack=None, mitigate=None, resolve=None, **extra):
    """An incident detected at `declared` with stamps that many seconds after detection."""

    def after(seconds):
        return declared + datetime.timedelta(seconds=seconds) if seconds is not None else None

    return IncidentFactory(
        severity=severity,
        detected_at=declared,
        declared_at=declared,
        acknowledged_at=after(ack),
        mitigated_at=after(mitigate),
        resolved_at=after(resolve),
        status="resolved" if resolve is not None else "investigating",
        **extra,
    )


@pytest.fixture
def may():
    return timezone.make_aware(datetime.datetime(2026, 5, 10, 12, 0))


def test_median_and_p90_match_linear_interpolation(may):
    # Acknowledgements after 1, 2, 3, 4 and 10 minutes.
    for minutes in (1, 2, 3, 4, 10):
        make(may, ack=minutes * MIN, mitigate=minutes * 2 * MIN, resolve=minutes * 3 * MIN)
    [row] = metrics.response_times(since=may - datetime.timedelta(days=1), by_month=False)
    assert row["severity"] == "SEV2" and row["incidents"] == 5
    # p50 of [60, 120, 180, 240, 600] is 180; p90 sits at rank 0.9 * 4 = 3.6:
    # 240 + 0.6 * (600 - 240) = 456.
    assert row["acknowledge_p50"] == pytest.approx(180)
    assert row["acknowledge_p90"] == pytest.approx(456)
    assert row["mitigate_p50"] == pytest.approx(360)
    assert row["mitigate_p90"] == pytest.approx(912)
    assert row["resolve_p50"] == pytest.approx(540)
    assert row["resolve_p90"] == pytest.approx(1368)


def test_unset_times_are_left_out_not_counted_as_zero(may):
    make(may, ack=100)
    make(may, ack=300, resolve=1000)
    make(may)  # never acknowledged
    [row] = metrics.response_times(since=may - datetime.timedelta(days=1), by_month=False)
    assert row["incidents"] == 3
    assert row["acknowledge_n"] == 2
    assert row["acknowledge_p50"] == pytest.approx(200)
    assert row["resolve_n"] == 1 and row["resolve_p50"] == pytest.approx(1000)
    assert row["mitigate_n"] == 0 and row["mitigate_p50"] is None


def test_grouped_by_severity_and_month(may):
    june = may + datetime.timedelta(days=31)
    make(may, severity="SEV1", ack=60)
    make(may, severity="SEV1", ack=180)
    make(june, severity="SEV1", ack=600)
    make(may, severity="SEV3", ack=1200)
    rows = metrics.response_times(since=may - datetime.timedelta(days=1))
    found = {(row["month"].isoformat(), row["severity"]): row for row in rows}
    assert set(found) == {("2026-05-01", "SEV1"), ("2026-06-01", "SEV1"), ("2026-05-01", "SEV3")}
    assert found[("2026-05-01", "SEV1")]["acknowledge_p50"] == pytest.approx(120)
    assert found[("2026-05-01", "SEV1")]["acknowledge_p90"] == pytest.approx(168)
    assert found[("2026-06-01", "SEV1")]["acknowledge_p50"] == pytest.approx(600)


def test_one_pass_grouping_matches_the_separate_queries(may):
    june = may + datetime.timedelta(days=31)
    for n, when in enumerate((may, may, june, june, june)):
        make(when, severity=("SEV1", "SEV2")[n % 2], ack=60 * (n + 1), resolve=600 * (n + 1))
    since = may - datetime.timedelta(days=1)
    by_severity, by_month = metrics.response_times_by_severity_and_month(since=since)
    assert by_severity == metrics.response_times(since=since, by_month=False)
    assert by_month == metrics.response_times(since=since, by_month=True)
    assert [row["severity"] for row in by_severity] == ["SEV1", "SEV2"]


def test_period_excludes_older_incidents(may):
    make(may - datetime.timedelta(days=400), ack=999)
    make(may, ack=60)
    [row] = metrics.response_times(since=may - datetime.timedelta(days=1), by_month=False)
    assert row["incidents"] == 1 and row["acknowledge_p50"] == pytest.approx(60)


def test_dashboard_counts(db):
    now = timezone.now()
    IncidentFactory(severity="SEV1", kind="availability", status="investigating", declared_at=now)
    IncidentFactory(severity="SEV1", kind="performance", status="resolved", declared_at=now)
    IncidentFactory(severity="SEV4", kind="performance", status="monitoring", declared_at=now)
    board = metrics.dashboard(months=3)
    assert board.total == 3 and board.open_now == 2
    assert ("SEV1", "SEV1 - Critical", 2) in board.counts_severity
    assert ("SEV2", "SEV2 - Major", 0) in board.counts_severity
    assert ("performance", "Performance", 2) in board.counts_kind


def test_period_start_is_the_first_of_a_month():
    start = metrics.period_start(12)
    assert start.day == 1 and start.hour == 0
    assert (timezone.localdate() - start.date()).days < 366


def test_metrics_page_renders_svg_charts_and_tables(viewer_client):
    now = timezone.now()
    make(now - datetime.timedelta(hours=5), severity="SEV1", ack=120, mitigate=1800, resolve=3600)
    response = viewer_client.get(reverse("incidents:metrics-dashboard") + "?months=3")
    html = response.content.decode()
    assert response.status_code == 200
    assert html.count('<svg class="chart') >= 5
    assert 'role="img"' in html
    assert "2m 00s" in html and "1h 00m" in html  # median ack and resolve of SEV1
    assert '<script src="http' not in html


def test_metrics_page_ignores_a_bad_period(viewer_client):
    response = viewer_client.get(reverse("incidents:metrics-dashboard") + "?months=abc")
    assert response.status_code == 200
    assert response.context["board"].months == 12


def test_action_items_are_counted_through_the_registry(db):
    from incidents import registry

    assert registry.action_items_summary() == {"total": 0, "open": 0, "overdue": 0}


def test_metrics_page_reuses_its_figures_for_the_configured_time(viewer_client, settings):
    settings.QUELL_INSIGHTS_CACHE_SECONDS = 60
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    url = reverse("incidents:metrics-dashboard") + "?months=6"
    first = viewer_client.get(url).context["board"]
    IncidentFactory(severity="SEV1")
    assert viewer_client.get(url).context["board"].total == first.total
    settings.QUELL_INSIGHTS_CACHE_SECONDS = 0
    assert viewer_client.get(url).context["board"].total == first.total + 1


def test_pages_and_metrics_do_without_the_other_apps(viewer_client, monkeypatch, settings):
    """With nothing registered by diagnostics, comms or postmortems (incidents.registry), their
    parts are left out instead of failing."""
    from incidents import metrics as metrics_module
    from incidents import registry

    for name in ("_links", "_target_names", "_action_items", "_closers"):
        monkeypatch.setattr(registry, name, [])
    monkeypatch.setattr(registry, "_metrics", {})
    IncidentFactory(severity="SEV2")
    board = metrics_module.dashboard(months=3)
    assert board.counts_target is None and board.action_items is None
    text = metrics_module.prometheus_exposition()
    assert "quell_incidents_open" in text
    for absent in ("quell_diagnostic", "quell_comms", "quell_action_items", "task_latency"):
        assert absent not in text
    page = viewer_client.get(reverse("incidents:metrics-dashboard")).content.decode()
    assert "By target" not in page and "action items open" not in page
    assert 'name="target"' not in viewer_client.get("/").content.decode()
