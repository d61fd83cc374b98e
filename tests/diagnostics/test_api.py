"""Diagnostics REST API: permissions, write-only secrets, 202 + Location, 400s, history,
comparison, incident links."""

import io
import logging

import pytest
from django.core.management import call_command

from diagnostics import services
from diagnostics.models import DiagnosticRun, IncidentTarget
from incidents.services import incident_declare
from tests.diagnostics.d2_fixtures import TEST_KEYS
from tests.diagnostics.records import make_target

pytestmark = pytest.mark.django_db

SECRET = "api-Secret-9f8e7d"
TARGETS = "/api/v1/diagnostics/targets/"
RUNS = "/api/v1/diagnostics/runs/"


def _new_target_body(**extra):
    return {
        "name": "billing",
        "environment": "production",
        "host": "127.0.0.1",
        "port": 5432,
        "database": "postgres",
        "user": "postgres",
        "password": SECRET,
        "tags": ["EU", "billing"],
        **extra,
    }


def test_anonymous_gets_401_everywhere(api):
    for url in (TARGETS, RUNS, "/api/v1/diagnostics/checks/"):
        assert api.get(url).status_code in (401, 403)


def test_admin_creates_a_target_and_no_response_contains_the_secret(admin_api, viewer_api, caplog):
    caplog.set_level(logging.DEBUG)
    response = admin_api.post(TARGETS, _new_target_body(), format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["password_set"] is True and body["dsn_set"] is False
    assert "password" not in body and "dsn" not in body
    assert body["tags"] == ["eu", "billing"]
    assert response["Location"] == body["url"]
    for client in (admin_api, viewer_api):
        for url in (TARGETS, body["url"]):
            assert SECRET not in client.get(url).content.decode()
    assert SECRET not in response.content.decode()
    assert SECRET not in caplog.text


def test_dsn_is_write_only_too(admin_api):
    dsn = f"postgresql://app:{SECRET}@db.internal:5433/shop"
    response = admin_api.post(TARGETS, {"name": "shop", "dsn": dsn}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["dsn_set"] is True and body["host"] == "db.internal" and body["port"] == 5433
    assert SECRET not in response.content.decode()


@pytest.mark.parametrize("who", ["viewer_api", "responder_api", "commander_api"])
def test_only_admins_change_targets(request, who):
    client = request.getfixturevalue(who)
    target = make_target(name="t")
    assert client.post(TARGETS, _new_target_body(), format="json").status_code == 403
    assert client.patch(f"{TARGETS}{target.pk}/", {"port": 1}, format="json").status_code == 403
    assert client.delete(f"{TARGETS}{target.pk}/").status_code == 403
    assert client.get(f"{TARGETS}{target.pk}/").status_code == 200


def test_invalid_target_input_answers_400_with_field_messages(admin_api):
    r = admin_api.post(TARGETS, _new_target_body(port=70000, environment="prod"), format="json")
    assert r.status_code == 400
    assert set(r.json()["errors"]) >= {"port", "environment"}
    r = admin_api.post(TARGETS, {"host": "x"}, format="json")
    assert r.status_code == 400 and "name" in r.json()["errors"]
    make_target(name="billing")
    r = admin_api.post(TARGETS, _new_target_body(), format="json")
    assert r.status_code == 400 and "already exists" in r.json()["errors"]["name"][0]
    r = admin_api.post(TARGETS, _new_target_body(host=""), format="json")
    assert r.status_code == 400 and "host" in r.json()["errors"]


def test_patch_keeps_the_password_unless_sent(admin_api):
    target = make_target(name="t", password=SECRET)
    r = admin_api.patch(f"{TARGETS}{target.pk}/", {"port": 6432}, format="json")
    assert r.status_code == 200 and r.json()["port"] == 6432 and r.json()["password_set"]
    target.refresh_from_db()
    assert target.to_connection_spec().password == SECRET
    r = admin_api.patch(f"{TARGETS}{target.pk}/", {"password": ""}, format="json")
    assert r.json()["password_set"] is False


def test_target_with_runs_refuses_deletion_with_400(admin_api, live_target, test_checks, sent_runs):
    services.diagnostic_run_start(target_id=live_target.pk, suite={"keys": TEST_KEYS})
    r = admin_api.delete(f"{TARGETS}{live_target.pk}/")
    assert r.status_code == 400 and "disable it" in r.json()["detail"]
    unused = make_target(name="unused")
    assert admin_api.delete(f"{TARGETS}{unused.pk}/").status_code == 204


def test_test_connection_reports_a_closed_port_without_the_secret(responder_api, viewer_api):
    target = make_target(name="closed", port=1, password=SECRET)
    url = f"{TARGETS}{target.pk}/test-connection/"
    assert viewer_api.post(url).status_code == 403
    r = responder_api.post(url)
    assert r.status_code == 200
    body = r.json()
    assert body["reachable"] is False and body["error"]
    assert SECRET not in r.content.decode()


def test_test_connection_reports_version_latency_and_recovery(responder_api, live_target):
    r = responder_api.post(f"{TARGETS}{live_target.pk}/test-connection/")
    body = r.json()
    assert body["reachable"] is True, body
    assert body["server_version"] and body["latency_ms"] is not None
    assert body["in_recovery"] is False
    assert isinstance(body["missing"], list)


def test_trigger_a_run_answers_202_with_location(
    responder_api,
    viewer_api,
    live_target,
    test_checks,
    sent_runs,
    django_capture_on_commit_callbacks,
):
    url = f"{TARGETS}{live_target.pk}/runs/"
    assert viewer_api.post(url, {"keys": TEST_KEYS}, format="json").status_code == 403
    with django_capture_on_commit_callbacks(execute=True):
        r = responder_api.post(url, {"keys": TEST_KEYS}, format="json")
    assert r.status_code == 202, r.content
    body = r.json()
    assert r["Location"] == body["url"] and body["url"].endswith(f"{RUNS}{body['id']}/")
    assert body["status"] == "queued" and body["trigger"] == "api"
    assert body["requested_by"] == "responder"
    assert sent_runs == [[body["id"]]]
    # and the run's URL answers
    assert viewer_api.get(body["url"]).json()["status"] == "queued"


def test_trigger_with_unknown_check_answers_400_on_keys(responder_api, live_target, test_checks):
    r = responder_api.post(RUNS, {"target": live_target.pk, "keys": ["nope"]}, format="json")
    assert r.status_code == 400 and "nope" in r.json()["errors"]["keys"][0]
    r = responder_api.post(RUNS, {}, format="json")
    assert r.status_code == 400 and "target" in r.json()["errors"]
    r = responder_api.post(RUNS, {"target": 99999}, format="json")
    assert r.status_code == 400 and "target" in r.json()["errors"]
    assert not DiagnosticRun.objects.exists()


def test_fan_out_by_tag_answers_202_with_every_run(
    responder_api, target_dbname, test_checks, sent_runs
):
    make_target(name="a", database=target_dbname, tags=["eu"])
    make_target(name="b", database=target_dbname, tags=["eu"])
    make_target(name="c", database=target_dbname, tags=["us"])
    r = responder_api.post(RUNS, {"tag": "eu", "keys": TEST_KEYS}, format="json")
    assert r.status_code == 202
    assert sorted(run["target_name"] for run in r.json()["runs"]) == ["a", "b"]


def test_results_are_readable_when_the_target_is_down(
    viewer_api, live_target, test_checks, markers, sent_runs
):
    markers.set("m1")
    run = services.diagnostic_run_start(target_id=live_target.pk, suite={"keys": TEST_KEYS})
    services.diagnostic_run_execute(run_id=run.pk)
    services.target_update(target_id=live_target.pk, port=1)  # now unreachable
    r = viewer_api.get(f"{RUNS}{run.pk}/")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "succeeded" and body["worst_status"] == "warning"
    markers_result = next(x for x in body["results"] if x["key"] == "d2_test_markers")
    assert markers_result["findings"] == [{"name": "m1", "size": 1}]
    listing = viewer_api.get(RUNS, {"target": live_target.pk, "status": "succeeded"}).json()
    assert [x["id"] for x in listing["results"]] == [run.pk]


def test_check_history_is_paginated_newest_first(
    viewer_api, live_target, test_checks, markers, sent_runs
):
    ids = []
    for n in range(3):
        markers.set(*[f"m{i}" for i in range(n)])
        run = services.diagnostic_run_start(target_id=live_target.pk, suite={"keys": TEST_KEYS})
        services.diagnostic_run_execute(run_id=run.pk)
        ids.append(run.pk)
    url = f"{TARGETS}{live_target.pk}/checks/d2_test_markers/results/"
    page = viewer_api.get(url, {"page_size": 2}).json()
    assert page["count"] == 3
    assert [r["run_id"] for r in page["results"]] == [ids[2], ids[1]]
    assert [r["status"] for r in page["results"]] == ["warning", "warning"]
    assert viewer_api.get(page["next"]).json()["results"][0]["status"] == "ok"


def test_compare_endpoint_defaults_to_the_previous_run(
    viewer_api, live_target, test_checks, markers, sent_runs
):
    markers.set("a", "b")
    first = services.diagnostic_run_start(target_id=live_target.pk, suite={"keys": TEST_KEYS})
    services.diagnostic_run_execute(run_id=first.pk)
    markers.set("b", "c")
    second = services.diagnostic_run_start(target_id=live_target.pk, suite={"keys": TEST_KEYS})
    services.diagnostic_run_execute(run_id=second.pk)
    body = viewer_api.get(f"{RUNS}{second.pk}/compare/").json()
    assert body["base"]["id"] == first.pk and body["head"]["id"] == second.pk
    m = next(c for c in body["checks"] if c["key"] == "d2_test_markers")
    assert m["appeared"] == [{"name": "c", "size": 1}]
    assert m["cleared"] == [{"name": "a", "size": 1}]
    counters = next(c for c in body["checks"] if c["key"] == "d2_test_counters")
    commits = next(x for x in counters["metrics"] if x["name"] == "xact_commit")
    assert commits["delta"] > 0 and commits["per_second"] > 0
    r = viewer_api.get(f"{RUNS}{first.pk}/compare/")
    assert r.status_code == 400 and "with" in r.json()["errors"]
    assert viewer_api.get(f"{RUNS}{first.pk}/compare/", {"with": "x"}).status_code == 400


def test_incident_targets_link_unlink_and_summary(
    responder_api, viewer_api, responder, live_target, test_checks, sent_runs
):
    incident = incident_declare(title="Slow checkout", severity="SEV2", actor=responder)
    url = f"/api/v1/diagnostics/incidents/{incident.pk}/targets/"
    assert viewer_api.post(url, {"target": live_target.pk}, format="json").status_code == 403
    r = responder_api.post(url, {"target": live_target.pk}, format="json")
    assert r.status_code == 201, r.content
    assert r.json()["run"]["trigger"] == "incident"
    assert viewer_api.get(url).json()["results"][0]["target"]["name"] == live_target.name
    summary = viewer_api.get(f"/api/v1/diagnostics/incidents/{incident.pk}/summary/").json()
    assert summary["targets"][0]["run_status"] == "queued"
    assert responder_api.delete(f"{url}{live_target.pk}/").status_code == 204
    assert not IncidentTarget.objects.exists()
    r = responder_api.post(url, {"target": 424242}, format="json")
    assert r.status_code == 400 and "target" in r.json()["errors"]


def test_declare_with_targets_starts_a_run_per_target(responder_api, live_target, sent_runs):
    r = responder_api.post(
        "/api/v1/diagnostics/declare/",
        {"title": "Replica lag", "severity": "SEV2", "affected_targets": [live_target.pk]},
        format="json",
    )
    assert r.status_code == 201, r.content
    body = r.json()
    assert len(body["runs"]) == 1 and body["runs"][0]["incident"] == body["incident"]
    r = responder_api.post(
        "/api/v1/diagnostics/declare/",
        {"title": "x", "severity": "SEV9", "affected_targets": []},
        format="json",
    )
    assert r.status_code == 400 and {"severity", "affected_targets"} <= set(r.json()["errors"])


def test_check_list_names_the_registered_checks(viewer_api, test_checks):
    keys = [c["key"] for c in viewer_api.get("/api/v1/diagnostics/checks/").json()["results"]]
    assert set(TEST_KEYS) <= set(keys)


def test_openapi_schema_has_no_warnings_for_diagnostics(capsys):
    out = io.StringIO()
    call_command("spectacular", "--validate", stdout=out)
    stderr = capsys.readouterr().err
    problems = [
        line
        for line in stderr.splitlines()
        if "diagnostics" in line.lower() or "WorstStatus" in line
    ]
    assert problems == []
    assert "/api/v1/diagnostics/targets/{id}/test-connection/" in out.getvalue()


def test_unknown_ids_answer_404(responder_api, viewer_api):
    assert responder_api.post(f"{TARGETS}424242/test-connection/").status_code == 404
    assert viewer_api.get(f"{RUNS}424242/").status_code == 404
    assert viewer_api.get("/api/v1/diagnostics/incidents/424242/summary/").status_code == 404


def test_put_replaces_settings_but_keeps_unsent_secrets(admin_api):
    target = make_target(name="t", password=SECRET, tags=["eu"])
    body = {"name": "t2", "host": "db.internal", "database": "app", "user": "quell"}
    r = admin_api.put(f"{TARGETS}{target.pk}/", body, format="json")
    assert r.status_code == 200, r.content
    out = r.json()
    assert out["name"] == "t2" and out["tags"] == [] and out["password_set"] is True
    r = admin_api.put(f"{TARGETS}{target.pk}/", {"host": "x"}, format="json")
    assert r.status_code == 400 and "name" in r.json()["errors"]


def test_compare_with_a_run_of_another_target_answers_400(viewer_api, live_target, sent_runs):
    other = make_target(name="other")
    a = DiagnosticRun.objects.create(
        target=live_target,
        status="succeeded",
        queued_at="2026-01-01T00:00Z",
        deadline="2026-01-01T00:10Z",
    )
    b = DiagnosticRun.objects.create(
        target=other,
        status="succeeded",
        queued_at="2026-01-01T00:01Z",
        deadline="2026-01-01T00:10Z",
    )
    r = viewer_api.get(f"{RUNS}{b.pk}/compare/", {"with": a.pk})
    assert r.status_code == 400 and "same target" in r.json()["detail"]
