"""Bad input that used to answer 500 (issue 10, item 7): each is a 400 or 404 with a message.

The causes are classes, fixed as such: a NUL anywhere in a request (refused by
config.middleware.RefuseNulMiddleware before it can reach PostgreSQL), a day filter beyond
datetime's range once a day is added, ids from the query string that are not numbers, float()
accepting nan/inf, and mail subjects with line breaks (one helper folds every subject)."""

import pytest
from django.core import mail
from django.test import Client

from comms.models import MessageTemplate
from comms.transports import send_email
from diagnostics.models import IncidentTarget, TargetDatabase
from incidents.mail import mail_subject
from postmortems.services.mail import build_message
from tests.diagnostics.records import make_target
from tests.factories import IncidentFactory, UserFactory


def _client(role, **extra):
    client = Client()
    client.force_login(UserFactory(role=role, **extra))
    return client


@pytest.fixture
def incident(db):
    return IncidentFactory()


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01"])
def test_web_incident_list_with_a_day_beyond_datetime_range(incident, day):
    for name in ("declared_before", "declared_after"):
        response = _client("viewer").get(f"/?{name}={day}")
        assert response.status_code == 400
        assert "Give a date between" in response.content.decode()


def test_api_path_with_a_nul_is_a_400(db, admin_api):
    target = make_target()
    response = admin_api.get(f"/api/v1/diagnostics/targets/{target.pk}/checks/%00/results/")
    assert response.status_code == 400
    assert "NUL" in response.json()["detail"]


@pytest.mark.parametrize("param", ["template", "draft"])
def test_compose_with_an_id_that_is_not_a_number_is_a_404(incident, param):
    response = _client("responder").get(f"/comms/incidents/{incident.pk}/compose/?{param}=abc")
    assert response.status_code == 404


def test_compose_with_an_unknown_template_id_is_a_404(incident):
    missing = (
        MessageTemplate.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    ) + 9
    response = _client("responder").get(
        f"/comms/incidents/{incident.pk}/compose/?template={missing}"
    )
    assert response.status_code == 404


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "1e400"])
def test_remediation_preview_refuses_non_finite_durations_before_connecting(incident, value):
    # Port 1: nothing listens, so an answer about the number shows nothing was tried.
    target = TargetDatabase.objects.create(
        name="closed", host="127.0.0.1", port=1, database="x", user="postgres",
        remediation_allowed=True,
    )  # fmt: skip
    IncidentTarget.objects.create(incident=incident, target=target)
    response = _client("commander").post(
        f"/incidents/{incident.pk}/remediation/preview/",
        {"target": target.pk, "kind": "cancel", "min_duration_s": value},
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert "min_duration_s must be a finite number" in page
    assert "unreachable" not in page.lower()


def test_runbook_start_with_a_nul_is_a_400(incident):
    response = _client("responder").post(
        f"/incidents/{incident.pk}/runbooks/start/", {"runbook": "quick\x00mitigation"}
    )
    assert response.status_code == 400
    assert b"NUL" in response.content


def test_target_thresholds_with_a_nul_key_are_a_400(db, admin_api):
    target = make_target()
    url = f"/api/v1/diagnostics/targets/{target.pk}/"
    response = admin_api.patch(url, {"thresholds": {"\x00": {"a": 1}}}, format="json")
    assert response.status_code == 400 and "NUL" in response.content.decode()


def test_thresholds_with_a_nul_or_nan_are_refused_by_the_service_too(db):
    # Admin forms post JSON as text ("\\u0000" is not a NUL in the form body): the service
    # refuses what PostgreSQL's jsonb cannot hold, and numbers float() would read as nan.
    from diagnostics import services

    with pytest.raises(services.DiagnosticsError, match="NUL"):
        make_target(thresholds={"long_running_queries\x00": {"threshold_s": 60}})
    with pytest.raises(services.DiagnosticsError, match="finite"):
        make_target(thresholds={"long_running_queries": {"threshold_s": "nan"}})
    assert make_target(thresholds={"long_running_queries": {"threshold_s": "60"}}).pk


def test_admin_changelist_filter_with_a_nul_is_a_400(db):
    client = _client("admin", is_staff=True, is_superuser=True)
    response = client.get("/admin/incidents/incident/?severity__exact=%00")
    assert response.status_code == 400


def test_nul_in_a_query_string_value_or_key_anywhere_is_a_400(incident):
    client = _client("viewer")
    assert client.get("/?q=a%00b").status_code == 400
    assert client.get("/?%00=1").status_code == 400
    assert client.get(f"/incidents/{incident.pk}/").status_code == 200


def test_mail_subjects_are_folded_to_one_line():
    assert mail_subject("Outage\r\nBcc: x@evil.test\t now\u2028") == "Outage Bcc: x@evil.test now"
    assert len(mail_subject("x" * 500)) == 250


def test_an_incident_title_with_a_carriage_return_still_mails(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    send_email(recipients=["a@x.test"], subject="[SEV1] DB down\rBcc: x@evil.test", body="b")
    build_message(subject="Review of\r\nDB down", body="b", to=["a@x.test"]).send()
    assert [m.subject for m in mail.outbox] == [
        "[SEV1] DB down Bcc: x@evil.test",
        "Review of DB down",
    ]


def test_a_status_update_subject_from_a_title_with_a_carriage_return(incident):
    from comms.services import updates

    incident.title = "Checkout\rdown"
    incident.save(update_fields=["title"])
    template = MessageTemplate.objects.filter(active=True).first()
    if template is None:
        pytest.skip("no default templates seeded")
    subject, _ = updates.update_render(incident=incident, template=template)
    assert "\r" not in subject and "\n" not in subject
