"""Integrity API: permissions, validation (injection attempts refused with field messages),
runs (202 + Location), results and the baseline comparison."""

import pytest
from django.urls import reverse

from diagnostics.integrity import services as integrity
from diagnostics.integrity.models import IntegrityCheck, IntegrityRun
from tests.diagnostics.integrity.integrity_support import PLAYBOOK_CHECKS, shop_sql

pytestmark = pytest.mark.django_db


def _checks_url(target):
    return reverse("diagnostics-integrity-target-checks", kwargs={"pk": target.pk})


def _runs_url(target):
    return reverse("diagnostics-integrity-target-runs", kwargs={"pk": target.pk})


def test_viewers_read_responders_cannot_define_admins_define(
    shop_target, shop_checks, viewer_api, responder_api, admin_api, api
):
    assert api.get(_checks_url(shop_target)).status_code in (401, 403)
    listed = viewer_api.get(_checks_url(shop_target))
    assert listed.status_code == 200
    assert {c["name"] for c in listed.json()["results"]} == {c["name"] for c in PLAYBOOK_CHECKS}
    body = {"name": "users again", "kind": "row_count", "table_name": "users"}
    assert viewer_api.post(_checks_url(shop_target), body, format="json").status_code == 403
    assert responder_api.post(_checks_url(shop_target), body, format="json").status_code == 403
    created = admin_api.post(_checks_url(shop_target), body, format="json")
    assert created.status_code == 201, created.json()
    check = created.json()
    assert created["Location"].endswith(f"/integrity/checks/{check['id']}/")
    assert check["gate_key"] == f"integrity:{check['id']}"
    assert check["schema_name"] == "public"
    detail = reverse("diagnostics-integrity-check-detail", kwargs={"pk": check["id"]})
    assert responder_api.patch(detail, {"enabled": False}, format="json").status_code == 403
    changed = admin_api.patch(detail, {"enabled": False, "min_count": 5}, format="json")
    assert changed.status_code == 200 and changed.json()["enabled"] is False
    assert changed.json()["min_count"] == 5 and changed.json()["table_name"] == "users"
    assert viewer_api.delete(detail).status_code == 403
    assert admin_api.delete(detail).status_code == 204
    assert not IntegrityCheck.objects.filter(pk=check["id"]).exists()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("table_name", 'users"; DROP TABLE users; --', "not a plain table or column name"),
        ("table_name", "users; DELETE FROM users", "not a plain table or column name"),
        ("schema_name", "public.users", "not a plain table or column name"),
        ("predicate", "1=1); DROP TABLE users; --", "Not valid SQL"),
        ("predicate", "true) UNION SELECT 1 WHERE (true", "one condition"),
        (
            "predicate",
            "role = 'x' OR set_config('statement_timeout', '0', true) = ''",
            "set_config",
        ),
        ("predicate", "pg_terminate_backend(1)", "pg_terminate_backend"),
        ("predicate", "(SELECT count(*) FROM (DELETE FROM users RETURNING 1) d) > 0", "SQL"),
    ],
)
def test_injection_attempts_in_names_and_predicates_are_refused(
    shop_target, admin_api, field, value, message
):
    body = {
        "name": "bad",
        "kind": "critical_count",
        "table_name": "users",
        "predicate": "role = 'ADMIN'",
        field: value,
    }
    response = admin_api.post(_checks_url(shop_target), body, format="json")
    assert response.status_code == 400
    assert message in response.json()["errors"][field][0]
    assert not IntegrityCheck.objects.filter(target=shop_target).exists()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("DELETE FROM users", "Only a SELECT"),
        ("UPDATE users SET role = 'ADMIN'", "Only a SELECT"),
        ("SELECT 1; DROP TABLE users", "Exactly one statement"),
        ("WITH d AS (DELETE FROM users RETURNING id) SELECT * FROM d", "data-modifying"),
        ("SELECT * INTO copy FROM users", "SELECT INTO"),
        ("SELECT * FROM users FOR UPDATE", "FOR UPDATE"),
        ("SELECT query_to_xml('DELETE FROM users', true, true, '')", "query_to_xml"),
        ("COPY users TO PROGRAM 'id'", "Only a SELECT"),
    ],
)
def test_business_rule_queries_must_be_one_read_only_select(shop_target, admin_api, query, message):
    body = {"name": "rule", "kind": "business_rule", "query": query}
    response = admin_api.post(_checks_url(shop_target), body, format="json")
    assert response.status_code == 400
    assert message in response.json()["errors"]["query"][0]


def test_structure_errors_name_their_field(shop_target, admin_api):
    cases = [
        ({"name": "o", "kind": "orphans", "table_name": "profiles"}, "columns"),
        (
            {
                "name": "o",
                "kind": "orphans",
                "table_name": "profiles",
                "columns": ["user_id", "bio"],
                "parent_table": "users",
                "parent_columns": ["id"],
            },
            "parent_columns",
        ),
        ({"name": "d", "kind": "duplicates", "table_name": "users"}, "columns"),
        ({"name": "c", "kind": "critical_count", "table_name": "users"}, "predicate"),
        (
            {
                "name": "r",
                "kind": "row_count",
                "table_name": "users",
                "min_count": 5,
                "max_count": 1,
            },
            "min_count",
        ),
        ({"name": "r", "kind": "row_count", "table_name": "users", "timeout_ms": 10}, "timeout_ms"),
        ({"name": "x", "kind": "nonsense", "table_name": "users"}, "kind"),
    ]
    for body, field in cases:
        response = admin_api.post(_checks_url(shop_target), body, format="json")
        assert response.status_code == 400, body
        assert field in response.json()["errors"], (body, response.json())
    integrity.integrity_check_create(
        target_id=shop_target.pk, name="users", kind="row_count", table_name="users"
    )
    again = admin_api.post(
        _checks_url(shop_target),
        {"name": "users", "kind": "row_count", "table_name": "users"},
        format="json",
    )
    assert again.status_code == 400 and "already has a check" in again.json()["errors"]["name"][0]


def test_responders_run_checks_and_read_results_and_comparison(
    shop_db,
    shop_target,
    shop_checks,
    viewer_api,
    responder_api,
    monkeypatch,
    django_capture_on_commit_callbacks,
):
    sent = []
    monkeypatch.setattr(integrity, "_enqueue", lambda run_id, task_id: sent.append(run_id))
    assert viewer_api.post(_runs_url(shop_target), {}, format="json").status_code == 403
    with django_capture_on_commit_callbacks(execute=True):
        started = responder_api.post(_runs_url(shop_target), {"purpose": "baseline"}, format="json")
    assert started.status_code == 202
    baseline = started.json()
    assert started["Location"].endswith(f"/integrity/runs/{baseline['id']}/")
    assert baseline["status"] == "queued" and baseline["purpose"] == "baseline"
    integrity.integrity_run_execute(run_id=baseline["id"])
    shop_sql(shop_db, "DELETE FROM profiles WHERE user_id >= 100")
    with django_capture_on_commit_callbacks(execute=True):
        verification = responder_api.post(
            _runs_url(shop_target), {"purpose": "verification"}, format="json"
        ).json()
    assert verification["baseline"] == baseline["id"]
    integrity.integrity_run_execute(run_id=verification["id"])
    assert sent == [baseline["id"], verification["id"]]
    detail = viewer_api.get(started["Location"]).json()
    by_name = {r["check_name"]: r for r in detail["results"]}
    assert by_name["orphaned profiles"]["count"] == 3
    assert by_name["orphaned profiles"]["sample"] == [[6], [7], [8]]
    assert by_name["orphaned profiles"]["sql"].startswith('SELECT "profiles"."id"')
    compare_url = reverse("diagnostics-integrity-run-compare", kwargs={"pk": verification["id"]})
    comparison = viewer_api.get(compare_url).json()
    orphans = next(c for c in comparison["checks"] if c["name"] == "orphaned profiles")
    assert (orphans["before"], orphans["after"], orphans["delta"]) == (3, 0, -3)
    assert orphans["outcome"] == "fixed" and comparison["counts"]["fixed"] == 1
    no_base = viewer_api.get(
        reverse("diagnostics-integrity-run-compare", kwargs={"pk": baseline["id"]})
    )
    assert no_base.status_code == 400 and "with" in no_base.json()["errors"]
    history = viewer_api.get(
        reverse(
            "diagnostics-integrity-check-results",
            kwargs={"pk": shop_checks["orphaned profiles"].pk},
        )
    ).json()["results"]
    assert [r["count"] for r in history] == [0, 3]
    listed = viewer_api.get(_runs_url(shop_target)).json()["results"]
    assert [r["id"] for r in listed] == [verification["id"], baseline["id"]]


def test_run_refuses_unknown_checks_and_targets_without_checks(shop_target, responder_api):
    response = responder_api.post(_runs_url(shop_target), {}, format="json")
    assert (
        response.status_code == 400
        and "no enabled integrity checks" in response.json()["errors"]["checks"][0]
    )
    response = responder_api.post(_runs_url(shop_target), {"checks": [999999]}, format="json")
    assert response.status_code == 400 and "999999" in response.json()["errors"]["checks"][0]
    assert not IntegrityRun.objects.exists()


def test_preview_explains_a_definition_on_the_target_without_saving_it(
    shop_target, shop_checks, admin_api, responder_api
):
    url = reverse("diagnostics-integrity-check-preview", kwargs={"pk": shop_target.pk})
    body = {
        "name": "orphaned profiles",  # the name of an existing check: previewing an edit
        "kind": "orphans",
        "table_name": "profiles",
        "columns": ["user_id"],
        "parent_table": "users",
        "parent_columns": ["id"],
    }
    assert responder_api.post(url, body, format="json").status_code == 403
    preview = admin_api.post(url, body, format="json")
    assert preview.status_code == 200, preview.json()
    assert preview.json()["error"] == ""
    assert preview.json()["sql"].startswith('SELECT "profiles"."id"')
    assert preview.json()["estimated_rows"] is not None
    wrong = admin_api.post(url, {**body, "columns": ["nope"]}, format="json").json()
    assert "column profiles.nope does not exist" in wrong["error"]
    missing = admin_api.post(url, {**body, "table_name": "nowhere"}, format="json").json()
    assert "Table public.nowhere does not exist" in missing["error"]
    bad = admin_api.post(url, {**body, "predicate": "1=1; DELETE FROM users"}, format="json")
    assert bad.status_code == 400 and "predicate" in bad.json()["errors"]
    assert IntegrityCheck.objects.filter(target=shop_target).count() == len(PLAYBOOK_CHECKS)
