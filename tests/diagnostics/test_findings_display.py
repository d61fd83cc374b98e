"""Findings as people read them (issue 13, items 3 and 9): labels and units, the blocking tree,
the fix offers, "What matters" at the top of the incident page and readable run pages."""

import datetime

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from diagnostics import findings_display as fd
from diagnostics.models import CheckResult, DiagnosticRun
from incidents.services import incident_declare
from tests.factories import IncidentTargetFactory, TargetDatabaseFactory

START = "2026-12-03T09:01:03.123456+00:00"

# A blocking chain as the blocking_locks check stores it: 100 idle in transaction holds the row,
# 200 waits on it, 300 waits on 200.
CHAIN = [
    {
        "role": "blocked",
        "pid": 200,
        "writer": True,
        "blocked_by": [100],
        "root_blockers": [100],
        "depth": 1,
        "wait_s": 42.0,
        "mode": "ShareLock",
        "relation": '"User"',
        "application_name": "checkout",
        "user": "shop_app",
        "state": "active",
        "query": "UPDATE \"User\" SET email = 'a' WHERE id = 1",
        "xact_age_s": 42.5,
        "backend_start": START,
    },
    {
        "role": "blocked",
        "pid": 300,
        "writer": True,
        "blocked_by": [200],
        "root_blockers": [100],
        "depth": 2,
        "wait_s": 30.0,
        "mode": "ExclusiveLock",
        "relation": '"User"',
        "application_name": "checkout",
        "user": "shop_app",
        "state": "active",
        "query": "UPDATE \"User\" SET email = 'b' WHERE id = 1",
        "backend_start": START,
    },
    {
        "role": "root_blocker",
        "pid": 100,
        "blocking": [200, 300],
        "blocking_count": 2,
        "holds": [{"mode": "RowShareLock", "relation": '"User"'}],
        "application_name": "admin-console",
        "user": "shop_app",
        "state": "idle in transaction",
        "query": 'SELECT * FROM "User" WHERE id = 1 FOR UPDATE',
        "xact_age_s": 930.0,
        "backend_start": START,
        "worst": True,
    },
]


def test_cells_carry_units_and_never_a_python_repr():
    assert fd.cell("xact_age_s", 930.0) == "15.5 min"
    assert fd.cell("wait_s", 4.84) == "4.8 s"
    assert fd.cell("connect_ms", 5.03) == "5 ms"
    assert fd.cell("size_bytes", 10 * 1024 * 1024) == "10.0\xa0MB"
    assert fd.cell("holds", CHAIN[2]["holds"]) == 'RowShareLock on "User"'
    assert fd.cell("blocked_by", [100, 101]) == "100, 101"
    assert fd.cell("backend_start", START) == "2026-12-03 09:01:03 UTC"
    assert fd.cell("started_at", "2026-12-03T10:00:00+01:00") == "2026-12-03 09:00:00 UTC"
    assert fd.cell("writer", True) == "yes"
    assert fd.cell("role", "root_blocker") == "root blocker"
    assert fd.cell("anything", {"mode": "x", "granted": False}) == "lock mode x, granted no"
    assert fd.cell("query", "SELECT a,\n       b\n  FROM t") == "SELECT a, b FROM t"
    assert len(fd.cell("blocking_query", "x " * 1000)) == fd.QUERY_EXCERPT


def test_labels_are_words():
    assert fd.label("xact_age_s") == "Transaction open"
    assert fd.label("application_name") == "Application"
    assert fd.label("dead_tuple_pct") == "Dead tuple (%)"
    assert fd.label("mean_exec_ms") == "Mean exec"


def test_columns_lead_with_who_and_how_long_and_put_the_query_last():
    cols = fd.columns(CHAIN)
    assert cols[:4] == ["pid", "role", "application_name", "user"]
    assert cols[-1] == "query"
    # Secondary details and what only the page logic uses stay out of the table.
    assert not {"backend_start", "worst", "depth"} & set(cols)


def test_the_blocking_tree_draws_the_root_then_who_waits_on_whom():
    [root] = fd.blocking_tree(CHAIN)
    assert root.pid == 100 and root.count == 2
    [first] = root.children
    assert first.pid == 200 and first.wait == "42.0 s"
    assert [c.pid for c in first.children] == [300]


def test_a_session_waiting_on_two_is_drawn_once_and_names_the_other():
    rows = [
        {"role": "blocked", "pid": 3, "blocked_by": [1, 2]},
        {"role": "root_blocker", "pid": 1, "blocking_count": 1},
        {"role": "root_blocker", "pid": 2, "blocking_count": 1},
    ]
    trees = fd.blocking_tree(rows)
    drawn = [c.pid for t in trees for c in t.children]
    assert drawn == [3]
    assert trees[0].children[0].also_waits_on == [2]


def test_fix_offers_for_the_root_long_queries_and_idle_transactions():
    terminate, cancel = fd.fix_offers("blocking_locks", CHAIN[2])
    assert terminate["label"] == "Terminate root blocker 100 (blocks 2)"
    assert cancel["label"] == "Cancel its query" and "idle in transaction" in cancel["disabled"]
    assert fd.fix_offers("blocking_locks", CHAIN[0]) == []  # a waiter is not the one to end
    long = {"pid": 7, "state": "active", "over_threshold": True}
    assert [o["disabled"] for o in fd.fix_offers("long_running_queries", long)] == ["", ""]
    assert fd.fix_offers("long_running_queries", {**long, "over_threshold": False}) == []
    assert fd.fix_offers("long_running_queries", {**long, "scope": "other_database"}) == []
    idle = {"pid": 8, "state": "idle in transaction", "over_threshold": True}
    assert fd.fix_offers("idle_in_transaction", idle)[0]["label"] == "Terminate session 8"
    assert fd.fix_offers("connections", long) == []


# --- Pages ---------------------------------------------------------------------------------


def _client(user):
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def chain_run(db, responder):
    """An open incident on a target whose latest run found the chain above."""
    incident = incident_declare(title="Checkout writes hang", severity="SEV1", actor=responder)
    target = TargetDatabaseFactory(name="shop", remediation_allowed=True)
    IncidentTargetFactory(incident=incident, target=target)
    now = timezone.now()
    run = DiagnosticRun.objects.create(
        target=target,
        incident=incident,
        status="succeeded",
        worst_status="critical",
        queued_at=now,
        started_at=now,
        finished_at=now,
        deadline=now + datetime.timedelta(minutes=5),
    )
    CheckResult.objects.create(
        run=run,
        key="blocking_locks",
        title="Locks and blocking chains",
        family="locks",
        status="critical",
        summary="2 sessions blocked (blocks 2 writers); root blocker pid 100 blocks 2",
        findings=CHAIN,
        metrics={"blocked": 2},
    )
    CheckResult.objects.create(
        run=run,
        key="server_info",
        title="Server info and uptime",
        family="connection",
        status="ok",
        summary="PostgreSQL 15",
        findings=[{"uptime_s": 693.5, "connect_ms": 5.03}],
    )
    return incident, target, run


def test_what_matters_names_the_root_blocker_and_draws_the_tree(chain_run, viewer, responder):
    incident, target, _run = chain_run
    html = (
        _client(responder)
        .get(reverse("diagnostics:incident-what-matters", args=[incident.pk]))
        .content.decode()
    )
    assert "Root blocker: pid 100</strong>, application <strong>admin-console" in html
    assert "blocks 2 sessions" in html and "transaction open 15.5 min" in html
    assert "pid 200</strong> waits 42.0 s for ShareLock on &quot;User&quot;" in html
    assert "Terminate root blocker 100 (blocks 2)" in html
    assert f"remediate=terminate&amp;target={target.pk}&amp;pid=100" in html
    assert "backend_start=2026-12-03T09%3A01%3A03.123456%2B00%3A00" in html and "root_of=2" in html
    # Viewers read the chain but not other sessions' query texts.
    viewer_html = (
        _client(viewer)
        .get(reverse("diagnostics:incident-what-matters", args=[incident.pk]))
        .content.decode()
    )
    assert "Root blocker: pid 100" in viewer_html and "FOR UPDATE" not in viewer_html
    assert "Terminate root blocker" not in viewer_html  # the fix is for responders


def test_what_matters_is_at_the_top_of_the_incident_page(chain_run, responder):
    incident, _, _ = chain_run
    html = _client(responder).get(reverse("incidents:detail", args=[incident.pk])).content.decode()
    top = html.index(f'id="what-matters-{incident.pk}"')
    assert top < html.index('id="summary-heading"') < html.index('id="panel-diagnostics"')


def test_what_matters_without_a_database_says_how_to_add_one(responder):
    incident = incident_declare(title="x", severity="SEV3", actor=responder)
    html = (
        _client(responder)
        .get(reverse("diagnostics:incident-what-matters", args=[incident.pk]))
        .content.decode()
    )
    assert "No affected database named yet" in html


def test_the_run_page_reads_as_tables_with_units_and_links_its_incident(chain_run, responder):
    incident, _, run = chain_run
    html = _client(responder).get(reverse("diagnostics:run-detail", args=[run.pk])).content.decode()
    assert "[{&#x27;" not in html and "&#x27;mode&#x27;" not in html
    assert "Transaction open" in html and "15.5 min" in html
    assert "RowShareLock on &quot;User&quot;" in html
    assert f'<a href="/incidents/{incident.pk}/">#{incident.pk} Checkout writes hang</a>' in html
    assert "Uptime" in html and "11.6 min" in html and "5 ms" in html
    assert 'class="blocking-tree"' in html


def test_a_critical_run_without_incident_offers_to_declare_one(db, responder):
    target = TargetDatabaseFactory(name="shop")
    now = timezone.now()
    run = DiagnosticRun.objects.create(
        target=target,
        status="succeeded",
        worst_status="critical",
        trigger="monitor",
        queued_at=now,
        finished_at=now,
        deadline=now + datetime.timedelta(minutes=5),
    )
    html = _client(responder).get(reverse("diagnostics:run-detail", args=[run.pk])).content.decode()
    assert f"/incidents/declare/?targets={target.pk}&amp;detection_source=monitor" in html
    listing = _client(responder).get(reverse("diagnostics:target-list")).content.decode()
    assert f"/incidents/declare/?targets={target.pk}" in listing


def test_a_healthy_run_with_skipped_checks_is_not_grey(db, viewer):
    target = TargetDatabaseFactory(name="quiet")
    now = timezone.now()
    DiagnosticRun.objects.create(
        target=target,
        status="succeeded",
        worst_status="skipped",
        queued_at=now,
        finished_at=now,
        deadline=now + datetime.timedelta(minutes=5),
    )
    html = _client(viewer).get(reverse("diagnostics:target-list")).content.decode()
    assert 'class="st st-ok"' in html and "healthy" in html and "st-skipped" not in html


def test_compares_highlight_what_changed(chain_run, responder):
    incident, target, before = chain_run
    now = timezone.now() + datetime.timedelta(seconds=30)
    after = DiagnosticRun.objects.create(
        target=target,
        incident=incident,
        status="succeeded",
        worst_status="ok",
        queued_at=now,
        started_at=now,
        finished_at=now,
        deadline=now + datetime.timedelta(minutes=5),
    )
    CheckResult.objects.create(
        run=after,
        key="blocking_locks",
        title="Locks and blocking chains",
        family="locks",
        status="ok",
        summary="no session is blocked by another",
    )
    CheckResult.objects.create(
        run=after,
        key="server_info",
        title="Server info and uptime",
        family="connection",
        status="ok",
        summary="PostgreSQL 15",
        findings=[{"uptime_s": 723.5, "connect_ms": 5.03}],
    )
    url = reverse("diagnostics:run-detail", args=[after.pk]) + f"?compare={before.pk}"
    html = _client(responder).get(url).content.decode()
    assert '<button type="submit" class="button">Compare</button>' in html
    assert '<tr class="status-changed">' in html
    assert 'class="c-uptime_s diff"' in html and "12.1 min<br><del>11.6 min</del>" in html
    assert "Cleared (3)" in html and "[{&#x27;" not in html


def test_what_matters_offers_the_fix_for_a_long_query_and_an_idle_transaction(chain_run, responder):
    incident, target, run = chain_run
    CheckResult.objects.create(
        run=run,
        key="long_running_queries",
        title="Long-running queries",
        family="activity",
        status="critical",
        summary="1 query running longer than 5.0 min",
        findings=[
            {"pid": 400, "state": "active", "duration_s": 900.0, "over_threshold": True},
            {"pid": 401, "state": "active", "duration_s": 3.0, "over_threshold": False},
        ],
    )
    CheckResult.objects.create(
        run=run,
        key="idle_in_transaction",
        title="Idle in transaction",
        family="activity",
        status="warning",
        summary="1 session idle in transaction",
        findings=[
            {"pid": 500, "state": "idle in transaction", "idle_s": 120.0, "over_threshold": True}
        ],
    )
    html = (
        _client(responder)
        .get(reverse("diagnostics:incident-what-matters", args=[incident.pk]))
        .content.decode()
    )
    assert "pid 400</strong>" in html and "running for 15.0 min" in html
    assert "Terminate session 400" in html and "pid=400" in html
    assert "pid 401</strong>" not in html  # below the threshold: nothing to fix
    assert "Terminate session 500" in html and "idle for 2.0 min" in html
    assert "remediate=cancel" in html and f"target={target.pk}" in html
