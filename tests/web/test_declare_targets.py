"""The declare form's affected databases (issue 13, item 1): offered through the registry that
diagnostics fills at ready(), prefilled from a link, and a run at detection on each."""

import pytest
from django.core.checks import run_checks
from django.urls import reverse

from diagnostics.models import DiagnosticRun, IncidentTarget
from incidents import affected
from incidents.models import Incident
from tests.factories import TargetDatabaseFactory

pytestmark = pytest.mark.django_db

FORM = {
    "title": "Checkout writes hang",
    "severity": "SEV1",
    "kind": "availability",
    "detection_source": "internal_report",
}


@pytest.fixture
def sent_runs(monkeypatch):
    sent: list[int] = []
    monkeypatch.setattr(
        "diagnostics.services._enqueue", lambda pairs: sent.extend(p[0] for p in pairs)
    )
    return sent


def test_diagnostics_registers_the_affected_databases_at_ready():
    provider = affected.affected_targets()
    assert provider is not None
    assert callable(provider.choices) and callable(provider.declare)
    assert not [e for e in run_checks() if e.id == "quell.E020"]


def test_the_declare_form_offers_every_registered_database(responder_client):
    shop = TargetDatabaseFactory(name="shop", environment="production")
    TargetDatabaseFactory(name="replica", environment="staging", enabled=False)
    html = responder_client.get(reverse("incidents:declare")).content.decode()
    assert 'name="affected_targets"' in html and "multiple" in html
    assert f'<option value="{shop.pk}">shop (production)</option>' in html
    assert "replica (staging) (disabled)" in html


def test_a_link_prefills_the_databases_and_the_source(responder_client):
    shop = TargetDatabaseFactory(name="shop")
    other = TargetDatabaseFactory(name="other")
    url = reverse("incidents:declare")
    response = responder_client.get(
        f"{url}?targets={shop.pk},999999&detection_source=monitor&title=Locks+on+shop"
    )
    form = response.context["form"]
    assert form["affected_targets"].value() == [shop.pk]
    assert form["detection_source"].value() == "monitor"
    html = response.content.decode()
    assert f'<option value="{shop.pk}" selected>shop' in html
    assert f'<option value="{other.pk}">other' in html
    assert 'value="Locks on shop"' in html


def test_declaring_with_databases_links_them_and_starts_a_run_at_detection(
    responder_client, responder, sent_runs, django_capture_on_commit_callbacks
):
    shop = TargetDatabaseFactory(name="shop")
    other = TargetDatabaseFactory(name="other")
    with django_capture_on_commit_callbacks(execute=True):
        response = responder_client.post(
            reverse("incidents:declare"), {**FORM, "affected_targets": [shop.pk, other.pk]}
        )
    incident = Incident.objects.get(title=FORM["title"])
    assert response.status_code == 302
    linked = IncidentTarget.objects.filter(incident=incident).values_list("target", flat=True)
    assert set(linked) == {shop.pk, other.pk}
    runs = DiagnosticRun.objects.filter(incident=incident)
    assert {r.target_id for r in runs} == {shop.pk, other.pk}
    assert all(r.trigger == "incident" for r in runs)
    assert sorted(sent_runs) == sorted(r.pk for r in runs)
    page = responder_client.get(response["Location"]).content.decode()
    assert "Diagnostics started on 2 database(s)." in page


def test_declaring_without_databases_starts_no_run(responder_client, sent_runs):
    TargetDatabaseFactory(name="shop")
    response = responder_client.post(reverse("incidents:declare"), FORM)
    assert response.status_code == 302
    assert not DiagnosticRun.objects.exists()


def test_an_unknown_database_is_a_field_error_and_nothing_is_declared(responder_client):
    TargetDatabaseFactory(name="shop")
    response = responder_client.post(
        reverse("incidents:declare"), {**FORM, "affected_targets": ["999999"]}
    )
    assert response.status_code == 400
    assert "affected_targets" in response.context["form"].errors
    assert "Checkout writes hang" in response.content.decode()
    assert not Incident.objects.exists()


def test_a_database_deleted_between_form_and_post_is_refused_on_the_field(
    responder_client, monkeypatch
):
    TargetDatabaseFactory(name="shop")
    # The choices were read when the form was built; the service looks again (a race).
    provider = affected.affected_targets()
    monkeypatch.setattr(
        affected,
        "_registered",
        [affected.AffectedTargets(choices=lambda: [(424242, "gone")], declare=provider.declare)],
    )
    response = responder_client.post(
        reverse("incidents:declare"), {**FORM, "affected_targets": ["424242"]}
    )
    assert response.status_code == 400
    assert "Unknown target(s): 424242." in response.content.decode()
    assert not Incident.objects.exists()


def test_an_unusable_registration_is_reported_by_the_system_check(monkeypatch):
    monkeypatch.setattr(
        affected, "_registered", [affected.AffectedTargets(choices=None, declare=print)]
    )
    errors = [e for e in run_checks() if e.id == "quell.E020"]
    assert errors and "choices is not callable" in errors[0].msg
