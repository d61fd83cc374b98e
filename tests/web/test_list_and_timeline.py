"""The incident list (filters, open first, pagination, htmx fragment) and the timeline."""

import datetime
import re

import pytest
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from incidents import services
from incidents.views.browse import PAGE_SIZE
from tests.factories import IncidentFactory

pytestmark = pytest.mark.django_db


def titles(response) -> list[str]:
    return [i.title for i in response.context["page"].object_list]


def test_open_incidents_come_first_then_newest(viewer_client):
    now = timezone.now()
    IncidentFactory(
        title="old open", status="investigating", declared_at=now - datetime.timedelta(days=9)
    )
    IncidentFactory(title="new resolved", status="resolved", declared_at=now)
    IncidentFactory(
        title="newer open", status="monitoring", declared_at=now - datetime.timedelta(days=1)
    )
    IncidentFactory(
        title="old closed", status="closed", declared_at=now - datetime.timedelta(days=30)
    )
    response = viewer_client.get(reverse("incidents:list"))
    assert titles(response) == ["newer open", "old open", "new resolved", "old closed"]


def test_filters_by_severity_status_kind_and_search(viewer_client):
    IncidentFactory(title="a", severity="SEV1", kind="availability", status="investigating")
    IncidentFactory(title="b", severity="SEV1", kind="performance", status="resolved")
    IncidentFactory(title="c payments", severity="SEV3", kind="availability", status="identified")
    get = viewer_client.get
    assert sorted(titles(get("/?severity=SEV1"))) == ["a", "b"]
    assert sorted(titles(get("/?status=open"))) == ["a", "c payments"]
    assert titles(get("/?status=resolved")) == ["b"]
    assert sorted(titles(get("/?kind=availability"))) == ["a", "c payments"]
    assert titles(get("/?q=payments")) == ["c payments"]
    assert titles(get("/?severity=SEV1&kind=availability&status=open")) == ["a"]


def test_filters_by_declared_date(viewer_client):
    tz = timezone.get_current_timezone()
    IncidentFactory(title="march", declared_at=datetime.datetime(2026, 3, 10, 12, tzinfo=tz))
    IncidentFactory(title="april", declared_at=datetime.datetime(2026, 4, 30, 23, 30, tzinfo=tz))
    IncidentFactory(title="may", declared_at=datetime.datetime(2026, 5, 1, 0, 30, tzinfo=tz))
    response = viewer_client.get("/?declared_after=2026-04-01&declared_before=2026-04-30")
    assert titles(response) == ["april"]


def test_search_is_case_insensitive_and_takes_wildcards_literally(viewer_client):
    hit = IncidentFactory(title="Disk at 100% on primary")
    IncidentFactory(title="Disk at 1000 IOPS")
    IncidentFactory(title="other", description="the PRIMARY replica lags")
    assert titles(viewer_client.get("/?q=100%25")) == ["Disk at 100% on primary"]
    assert titles(viewer_client.get("/?q=at_1")) == []
    assert len(titles(viewer_client.get("/?q=primary"))) == 2
    assert hit.title in titles(viewer_client.get(f"/?q=%23{hit.pk}"))


def test_invalid_filters_are_reported_and_ignored(viewer_client):
    IncidentFactory(title="a")
    response = viewer_client.get(
        "/?severity=SEV9&declared_after=2026-05-02&declared_before=2026-05-01"
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "Select a valid choice" in html
    assert "The end date is before the start date." in html


def test_pagination(viewer_client):
    for n in range(PAGE_SIZE + 3):
        IncidentFactory(title=f"incident {n}")
    first = viewer_client.get("/")
    assert len(first.context["page"].object_list) == PAGE_SIZE
    assert b"Page 1 of 2" in first.content
    second = viewer_client.get("/?page=2")
    assert len(second.context["page"].object_list) == 3
    assert viewer_client.get("/?page=99").context["page"].number == 2


def test_list_htmx_request_returns_only_the_results(viewer_client, htmx_headers):
    IncidentFactory(title="only me", severity="SEV4")
    response = viewer_client.get("/?severity=SEV4", **htmx_headers("incident-results"))
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="incident-results"')
    assert "only me" in html and "<html" not in html
    assert "HX-Request" in response["Vary"]


def test_list_query_count_does_not_grow_with_rows(viewer_client, django_assert_max_num_queries):
    for _ in range(PAGE_SIZE):
        IncidentFactory()
    with django_assert_max_num_queries(10):
        viewer_client.get("/")


def test_timeline_is_newest_first_and_filters_by_kind(viewer_client, commander, incident):
    services.timeline_append(incident_id=incident.pk, message="first note", actor=commander)
    services.incident_transition(incident_id=incident.pk, to_status="identified", actor=commander)
    services.timeline_append(incident_id=incident.pk, message="second note", actor=commander)
    html = viewer_client.get(reverse("incidents:timeline", args=[incident.pk])).content.decode()
    assert html.index("second note") < html.index("Status changed") < html.index("first note")
    assert html.index("first note") < html.index("Incident declared")
    only_notes = viewer_client.get(
        reverse("incidents:timeline", args=[incident.pk]) + "?event=note"
    ).content.decode()
    assert "second note" in only_notes and "first note" in only_notes
    assert "Status changed" not in only_notes and "Incident declared" not in only_notes
    # The polling element keeps the filter.
    assert re.search(r'hx-get="[^"]*\?poll=1&amp;after=\d+&amp;event=note"', only_notes)


def test_an_action_keeps_the_timeline_filter(responder_client, incident, htmx_headers):
    response = responder_client.post(
        reverse("incidents:note", args=[incident.pk]),
        {"message": "only notes please", "event": "note"},
        **htmx_headers(),
    )
    html = response.content.decode()
    timeline = html[html.index('<div id="timeline"') :]
    assert "only notes please" in timeline
    assert "Incident declared" not in timeline
    assert 'name="event" value="note" checked' in html


def test_timeline_poll_stops_when_the_incident_is_no_longer_open(
    viewer_client, commander, incident, htmx_headers
):
    poll = reverse("incidents:timeline", args=[incident.pk]) + "?poll=1"
    assert viewer_client.get(poll, **htmx_headers("timeline")).status_code == 200
    services.incident_transition(incident_id=incident.pk, to_status="resolved", actor=commander)
    response = viewer_client.get(poll, **htmx_headers("timeline"))
    assert response.status_code == 286  # htmx's "stop polling"
    assert b"Status changed from investigating to resolved" in response.content


def test_timeline_poll_answers_204_when_nothing_is_new(
    viewer_client, commander, incident, htmx_headers
):
    page = viewer_client.get(reverse("incidents:timeline", args=[incident.pk])).content.decode()
    poll = re.search(r'hx-get="([^"]+)"', page)[1].replace("&amp;", "&")
    assert viewer_client.get(poll, **htmx_headers("timeline")).status_code == 204
    services.timeline_append(incident_id=incident.pk, message="news", actor=commander)
    response = viewer_client.get(poll, **htmx_headers("timeline"))
    assert response.status_code == 200 and b"news" in response.content


def test_search_count_is_capped(viewer_client, monkeypatch):
    monkeypatch.setattr("incidents.views.browse.SEARCH_COUNT_CAP", 3)
    for n in range(5):
        IncidentFactory(title=f"replica lag {n}", status="closed" if n % 2 else "investigating")
    response = viewer_client.get("/?q=replica")
    assert response.context["page"].paginator.count == 3
    assert b"3+ incidents" in response.content
    assert len(response.context["page"].object_list) == 3


def test_open_first_pagination_spans_open_and_closed(viewer_client, monkeypatch):
    monkeypatch.setattr("incidents.views.browse.PAGE_SIZE", 2)
    now = timezone.now()
    for n in range(3):
        IncidentFactory(title=f"open {n}", declared_at=now - datetime.timedelta(hours=n))
        IncidentFactory(
            title=f"closed {n}", status="closed", declared_at=now - datetime.timedelta(hours=n)
        )
    seen = []
    for page in (1, 2, 3):
        seen += titles(viewer_client.get(f"/?page={page}"))
    assert seen == ["open 0", "open 1", "open 2", "closed 0", "closed 1", "closed 2"]


def test_timeline_links_only_safe_urls(viewer_client, commander, incident):
    services.timeline_append(
        incident_id=incident.pk, message="good", data={"url": "/diagnostics/runs/1/"}
    )
    services.timeline_append(
        incident_id=incident.pk, message="evil", data={"url": "javascript:alert(1)"}
    )
    html = viewer_client.get(reverse("incidents:timeline", args=[incident.pk])).content.decode()
    assert 'href="/diagnostics/runs/1/"' in html
    assert "javascript:" not in html


# --- Panels from other apps -----------------------------------------------------------------


def _templates_with(tmp_path, files: dict):
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    from django.conf import settings

    engines = [dict(engine) for engine in settings.TEMPLATES]
    engines[0] = {**engines[0], "DIRS": [tmp_path, *engines[0]["DIRS"]]}
    return override_settings(TEMPLATES=engines)


def test_panels_render_when_their_templates_exist(viewer_client, incident, tmp_path):
    files = {
        "comms/incident_panel.html": "<section><h2>Comms</h2>COMMS FOR {{ incident.pk }} "
        "SEEN BY {{ user.username }}</section>",
        "remediation/runbooks_panel.html": "<section>RUNBOOKS PANEL</section>",
    }
    with _templates_with(tmp_path, files):
        html = viewer_client.get(reverse("incidents:detail", args=[incident.pk])).content.decode()
    assert f"COMMS FOR {incident.pk} SEEN BY viewer" in html
    assert 'id="panel-comms"' in html
    assert "RUNBOOKS PANEL" in html


def test_a_panel_without_its_template_stops_the_start(monkeypatch):
    """A registered panel whose template is missing is a system check error (quell.E101), not a
    panel that vanishes from the page without a word (as APP_PANELS' guessed names did)."""
    from django.core import checks

    from incidents import registry

    monkeypatch.setattr(registry, "_panels", dict(registry._panels))
    assert not [e for e in checks.run_checks() if e.id == "quell.E101"]
    registry.register_panel(registry.Panel("absent", "Absent", "nowhere/absent_panel.html"))
    errors = [e for e in checks.run_checks() if e.id == "quell.E101"]
    assert [e.msg for e in errors] == [
        "Panel 'absent': template 'nowhere/absent_panel.html' does not exist."
    ]


def test_every_app_registers_its_panels_in_order():
    from incidents import registry

    assert [p.key for p in registry.panels(registry.TOP)] == ["what-matters", "signals"]
    assert [p.key for p in registry.panels(registry.FEATURE)] == [
        "triage",
        "remediation",
        "runbooks",
        "integrity",
    ]
    assert [p.key for p in registry.panels(registry.APP)] == [
        "diagnostics",
        "comms",
        "postmortems",
    ]


def test_incident_list_target_filter_follows_diagnostics_links(viewer_client, commander):
    diag_services = pytest.importorskip("diagnostics.services")
    if not hasattr(diag_services, "incident_target_add"):
        pytest.skip("diagnostics cannot link incidents to targets yet")
    hit = services.incident_declare(title="on target", severity="SEV3", actor=commander)
    services.incident_declare(title="elsewhere", severity="SEV3", actor=commander)
    target = diag_services.target_create(
        name="orders-primary", host="127.0.0.1", database="orders", user="quell", password="pw"
    )
    diag_services.incident_target_add(
        incident_id=hit.pk, target_id=target.pk, actor=commander, start_run=False
    )
    response = viewer_client.get(f"/?target={target.pk}")
    assert titles(response) == ["on target"]
    assert b"orders-primary" in response.content  # offered in the target filter
    detail = viewer_client.get(reverse("incidents:detail", args=[hit.pk])).content.decode()
    assert "Targets: orders-primary" in detail


def test_every_triage_action_is_served_by_an_app():
    """Diagnostics, integrity and remediation register the next steps they serve (with real
    check keys and seeded runbooks); none is a dead link or plain text."""
    from incidents.triage import actions
    from incidents.triage.models import TriageAction

    for action in TriageAction.values:
        if action == TriageAction.NONE:
            continue
        resolved = actions.resolve(action, incident_id=7)
        assert resolved["available"], action
        assert resolved["url"] == f"/incidents/7/#panel-{resolved['panel']}"
    blocking = actions.resolve(TriageAction.BLOCKING_QUERIES, incident_id=7)
    assert (blocking["panel"], blocking["check"]) == ("diagnostics", "blocking_locks")
    pitr = actions.resolve(TriageAction.PITR_RUNBOOK, incident_id=7)
    assert pitr["runbook"] == "point-in-time-recovery"
    assert pitr["run_url"] == "/incidents/7/runbooks/start/"


def test_a_triage_action_with_a_missing_route_stops_the_start(monkeypatch):
    from django.core import checks

    from incidents import registry

    monkeypatch.setattr(registry, "_triage_actions", dict(registry._triage_actions))
    registry.register_triage_action(
        registry.TriageActionTarget("connections", "diagnostics", "X", run_route="nowhere:run")
    )
    errors = [e.msg for e in checks.run_checks() if e.id == "quell.E103"]
    assert errors == ["Triage action 'connections': route 'nowhere:run' does not exist."]
