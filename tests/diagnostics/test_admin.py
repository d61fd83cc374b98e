"""Admin: credentials write-only, test connection and run diagnostics actions, runs read-only."""

import pytest
from django.test import Client

from diagnostics import services
from diagnostics.models import DiagnosticRun, TargetDatabase
from tests.diagnostics.d2_fixtures import TEST_KEYS
from tests.diagnostics.records import make_target

pytestmark = pytest.mark.django_db

SECRET = "admin-Secret-4c3b2a"
ADD = "/admin/diagnostics/targetdatabase/add/"
LIST = "/admin/diagnostics/targetdatabase/"


@pytest.fixture
def admin_client_(admin_user):
    client = Client()
    client.force_login(admin_user)
    return client


def _form(**extra):
    return {
        "name": "ledger",
        "environment": "production",
        "tags_text": "eu, ledger",
        "enabled": "on",
        "host": "127.0.0.1",
        "port": "5432",
        "database": "postgres",
        "user": "postgres",
        "sslmode": "prefer",
        "options": "",
        "new_password": SECRET,
        "new_dsn": "",
        "thresholds": "{}",
        **extra,
    }


def test_add_through_the_admin_encrypts_and_never_shows_the_password(admin_client_):
    response = admin_client_.post(ADD, _form())
    assert response.status_code == 302, response.content.decode()[:3000]
    target = TargetDatabase.objects.get(name="ledger")
    assert target.tags == ["eu", "ledger"]
    assert target.to_connection_spec().password == SECRET
    for url in (LIST, f"{LIST}{target.pk}/change/"):
        page = admin_client_.get(url).content.decode()
        assert SECRET not in page
        assert target.password_encrypted not in page  # not even the token
    change = admin_client_.get(f"{LIST}{target.pk}/change/").content.decode()
    assert "set" in change and 'name="new_password"' in change
    listing = admin_client_.get(LIST).content.decode()
    assert "not set" in listing  # the DSN column


def test_editing_without_a_password_keeps_it_and_clear_removes_it(admin_client_):
    target = make_target(name="ledger", password=SECRET)
    url = f"{LIST}{target.pk}/change/"
    response = admin_client_.post(url, _form(new_password="", port="6432"))
    assert response.status_code == 302
    target.refresh_from_db()
    assert target.port == 6432 and target.to_connection_spec().password == SECRET
    admin_client_.post(url, _form(new_password="", clear_password="on"))
    target.refresh_from_db()
    assert not target.has_password


def test_admin_form_errors_land_on_the_field_and_save_nothing(admin_client_):
    make_target(name="ledger")
    response = admin_client_.post(ADD, _form())
    assert response.status_code == 200
    assert "already exists" in response.content.decode()
    assert SECRET not in response.content.decode()
    assert TargetDatabase.objects.count() == 1
    response = admin_client_.post(ADD, _form(name="other", new_dsn=f"host=x password={SECRET} '"))
    assert response.status_code == 200
    assert "not a valid libpq" in response.content.decode()
    assert SECRET not in response.content.decode()


def test_test_connection_action_reports_version_or_error(admin_client_, live_target):
    closed = make_target(name="closed", port=1, password=SECRET)
    response = admin_client_.post(
        LIST,
        {"action": "test_connection", "_selected_action": [live_target.pk, closed.pk]},
        follow=True,
    )
    page = response.content.decode().lower()  # the admin capitalises messages
    assert f"{live_target.name}: reachable in" in page and "postgresql 1" in page
    assert "closed: unreachable" in page
    assert SECRET.lower() not in page


def test_run_diagnostics_action_queues_a_run_per_target(
    admin_client_, live_target, sent_runs, django_capture_on_commit_callbacks
):
    other = make_target(name="second")
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client_.post(
            LIST,
            {"action": "run_diagnostics", "_selected_action": [live_target.pk, other.pk]},
            follow=True,
        )
    assert "Queued diagnostics on 2 target(s)" in response.content.decode()
    assert DiagnosticRun.objects.count() == 2
    assert sorted(i for ids in sent_runs for i in ids) == sorted(
        DiagnosticRun.objects.values_list("pk", flat=True)
    )


def test_run_page_shows_results_inline_and_is_read_only(
    admin_client_, live_target, test_checks, sent_runs
):
    run = services.diagnostic_run_start(target_id=live_target.pk, suite={"keys": TEST_KEYS})
    services.diagnostic_run_execute(run_id=run.pk)
    page = admin_client_.get(f"/admin/diagnostics/diagnosticrun/{run.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "d2_test_counters" in html and "d2_test_markers" in html
    assert 'name="_save"' not in html  # nothing to save
    assert admin_client_.get("/admin/diagnostics/diagnosticrun/add/").status_code == 403
