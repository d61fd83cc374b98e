"""Other sessions' query texts: responders and up read them; viewers get a note instead."""

from __future__ import annotations

import pytest
from django.utils import timezone

from diagnostics import query_texts
from diagnostics.models import IncidentTarget
from tests.diagnostics.records import make_target
from tests.factories import CheckResultFactory, DiagnosticRunFactory, IncidentFactory

SECRET_SQL = "UPDATE \"User\" SET password_reset_token = 'tok-3b9f' WHERE email = 'ann@x.io'"

pytestmark = pytest.mark.django_db


def _run(target, incident=None, sql=SECRET_SQL):
    now = timezone.now()
    run = DiagnosticRunFactory(
        target=target, incident=incident, status="succeeded", started_at=now, finished_at=now
    )
    CheckResultFactory(
        run=run,
        key="long_running_queries",
        family="activity",
        status="critical",
        summary="1 query running longer than 5 min",
        findings=[{"pid": 4242, "user": "shop", "query": sql, "duration_s": 900.0}],
    )
    return run


@pytest.fixture
def target():
    return make_target(name="shop-db")


def test_the_run_api_hides_query_texts_from_viewers_only(target, viewer_api, responder_api):
    run = _run(target)
    as_viewer = viewer_api.get(f"/api/v1/diagnostics/runs/{run.pk}/").json()
    as_responder = responder_api.get(f"/api/v1/diagnostics/runs/{run.pk}/").json()
    viewer_row = as_viewer["results"][0]["findings"][0]
    assert viewer_row["query"] == query_texts.HIDDEN
    assert viewer_row["pid"] == 4242  # everything else stays
    assert "tok-3b9f" not in str(as_viewer)
    assert as_responder["results"][0]["findings"][0]["query"] == SECRET_SQL


def test_compare_and_incident_summary_hide_query_texts_from_viewers(
    target, viewer_api, responder_api, responder
):
    incident = IncidentFactory(declared_by=responder)
    IncidentTarget.objects.create(incident=incident, target=target)
    base = _run(target, incident, sql="SELECT 1")
    head = _run(target, incident)
    compare = viewer_api.get(f"/api/v1/diagnostics/runs/{head.pk}/compare/?with={base.pk}")
    summary = viewer_api.get(f"/api/v1/diagnostics/incidents/{incident.pk}/summary/")
    assert compare.status_code == 200 and summary.status_code == 200
    assert "tok-3b9f" not in compare.content.decode()
    assert "tok-3b9f" not in summary.content.decode()
    assert (
        "tok-3b9f"
        in responder_api.get(
            f"/api/v1/diagnostics/incidents/{incident.pk}/summary/"
        ).content.decode()
    )


def test_the_run_page_hides_query_texts_from_viewers(target, client, viewer, responder):
    run = _run(target)
    client.force_login(viewer)
    page = client.get(f"/diagnostics/runs/{run.pk}/").content.decode()
    assert "tok-3b9f" not in page
    assert "hidden: query texts are shown to responders and up" in page
    client.force_login(responder)
    assert "tok-3b9f" in client.get(f"/diagnostics/runs/{run.pk}/").content.decode()


def test_redaction_reaches_nested_rows_and_keeps_other_fields():
    value = {"appeared": [{"blocking_query": "DELETE x", "queryid": 7, "query_start": "t"}]}
    assert query_texts.redacted(value) == {
        "appeared": [{"blocking_query": query_texts.HIDDEN, "queryid": 7, "query_start": "t"}]
    }
