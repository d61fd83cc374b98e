"""Triage panel on the incident page: rendering, walking with htmx, permissions, CSRF."""

from __future__ import annotations

import datetime
import re

import pytest
from django.test import Client
from django.utils import timezone

from diagnostics.models import CheckResult, DiagnosticRun, IncidentTarget, TargetDatabase
from incidents.models import EventKind, TimelineEvent

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


def client_for(user, **kwargs):
    c = Client(**kwargs)
    c.force_login(user)
    return c


def panel(incident):
    return f"/incidents/{incident.pk}/triage/"


def test_incident_page_includes_the_triage_panel(viewer, incident):
    html = client_for(viewer).get(f"/incidents/{incident.pk}/").content.decode()
    assert f'id="triage-panel-{incident.pk}"' in html
    assert f'hx-get="/incidents/{incident.pk}/triage/"' in html


def test_viewer_sees_the_panel_without_actions_and_cannot_post(viewer, incident):
    c = client_for(viewer)
    html = c.get(panel(incident), **HX).content.decode()
    assert "Walk the playbook" in html and "Start triage" not in html
    assert c.post(panel(incident) + "start/", **HX).status_code == 403


def test_anonymous_is_sent_to_login(client, incident):
    r = client.get(panel(incident))
    assert r.status_code == 302 and "/accounts/login/" in r["Location"]


def test_walk_in_the_panel_highlights_the_suggestion(responder, incident):
    target = TargetDatabase.objects.create(name="orders-db", host="db.invalid")
    IncidentTarget.objects.create(incident=incident, target=target)
    now = timezone.now()
    run = DiagnosticRun.objects.create(
        target=target,
        incident=incident,
        status="succeeded",
        queued_at=now,
        finished_at=now,
        deadline=now + datetime.timedelta(minutes=5),
    )
    CheckResult.objects.create(
        run=run,
        key="connection",
        title="Connection and latency",
        family="connection",
        status="critical",
        summary="target unreachable",
        error="connection refused",
    )
    c = client_for(responder)
    html = c.post(panel(incident) + "start/", **HX).content.decode()
    assert "Can connect to database?" in html
    assert re.search(r'value="no" class="button suggested"', html)
    assert "Suggested: No" in html and "orders-db" in html
    html = c.post(
        panel(incident) + "answer/", {"question": "can_connect", "answer": "no"}, **HX
    ).content.decode()
    assert "SEV1: Connection Issue" in html and "suggested by diagnostics" in html
    assert "Recent schema change?" in html
    html = c.post(
        panel(incident) + "answer/", {"question": "recent_schema_change", "answer": "yes"}, **HX
    ).content.decode()
    assert "Outcome: Check migration logs" in html
    assert f'href="/incidents/{incident.pk}/#panel-diagnostics"' in html
    assert "Apply kind only" in html and "Apply SEV1" not in html  # responder: no re-grade
    # Next steps act on the other panels of the page: start the runbook, run diagnostics.
    assert f'hx-post="/incidents/{incident.pk}/runbooks/start/"' in html
    assert 'name="runbook" value="schema-rollback"' in html
    assert f'hx-target="#runbooks-panel-{incident.pk}"' in html
    assert f'hx-post="/incidents/{incident.pk}/diagnostics/run/"' in html


def test_stale_answer_shows_the_conflict_and_the_current_question(responder, incident):
    c = client_for(responder)
    c.post(panel(incident) + "start/", **HX)
    c.post(panel(incident) + "answer/", {"question": "can_connect", "answer": "yes"}, **HX)
    r = c.post(panel(incident) + "answer/", {"question": "can_connect", "answer": "no"}, **HX)
    assert r.status_code == 409
    html = r.content.decode()
    assert "moved on" in html and "Performance issue?" in html


def test_commander_applies_the_outcome_from_the_panel(commander, incident):
    c = client_for(commander)
    c.post(panel(incident) + "start/", **HX)
    for question, answer in (
        ("can_connect", "yes"),
        ("performance_issue", "no"),
        ("data_integrity_issue", "yes"),
        ("integrity_scope", "isolated"),
    ):
        c.post(panel(incident) + "answer/", {"question": question, "answer": answer}, **HX)
    html = c.get(panel(incident), **HX).content.decode()
    assert "Outcome: Targeted data fixes" in html and "Apply SEV3 and data integrity" in html
    r = c.post(panel(incident) + "apply/", {"apply": "both"}, **HX)
    assert r.status_code == 200 and "triageApplied" in r["HX-Trigger"]
    incident.refresh_from_db()
    assert (incident.severity, incident.kind) == ("SEV3", "data_integrity")
    assert TimelineEvent.objects.filter(incident=incident, kind=EventKind.SEVERITY_CHANGED).exists()
    html = c.post(panel(incident) + "back/", **HX).content.decode()
    assert "How widespread?" in html


def test_without_javascript_forms_post_and_redirect_with_csrf(responder, incident):
    c = client_for(responder, enforce_csrf_checks=True)
    page = c.get(panel(incident))
    assert page.status_code == 200
    html = page.content.decode()
    assert "<html" in html and "Start triage" in html
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    assert c.post(panel(incident) + "start/").status_code == 403  # no token
    r = c.post(panel(incident) + "start/", {"csrfmiddlewaretoken": token})
    assert r.status_code == 302 and r["Location"] == panel(incident)
    r = c.post(panel(incident) + "back/", {"csrfmiddlewaretoken": token}, follow=True)
    assert "There is no answer to go back from." in r.content.decode()


def test_history_shows_withdrawn_answers_and_earlier_walks(responder, incident):
    c = client_for(responder)
    c.post(panel(incident) + "start/", **HX)
    c.post(panel(incident) + "answer/", {"question": "can_connect", "answer": "no"}, **HX)
    c.post(panel(incident) + "back/", **HX)
    c.post(panel(incident) + "start/", {"restart": "1"}, **HX)
    html = c.get(panel(incident), **HX).content.decode()
    assert "<del>Can connect to database? No</del>" in html
    assert "abandoned (restarted)" in html and "withdrawn by responder" in html
