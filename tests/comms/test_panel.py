import datetime

import pytest
from django.template.loader import render_to_string
from django.test import Client, RequestFactory
from django.utils import timezone

from comms.models import Delivery, DeliveryState, MessageTemplate, StatusUpdate
from incidents.models import Incident

pytestmark = pytest.mark.django_db


def _client(user):
    client = Client()
    client.force_login(user)
    return client


def test_panel_shell_renders_with_the_documented_context(incident_factory, viewer):
    incident = incident_factory()
    request = RequestFactory().get(f"/incidents/{incident.pk}/")
    request.user = viewer
    html = render_to_string(
        "comms/incident_panel.html",
        {"incident": incident, "request": request, "user": viewer},
        request=request,
    )
    assert f'hx-get="/comms/incidents/{incident.pk}/panel/"' in html
    assert 'hx-trigger="load' in html


def test_panel_needs_login_and_shows_overdue(incident_factory, viewer):
    incident = incident_factory(severity="SEV1")
    assert Client().get(f"/comms/incidents/{incident.pk}/panel/").status_code == 302
    Incident.objects.filter(pk=incident.pk).update(
        declared_at=timezone.now() - datetime.timedelta(minutes=30)
    )
    html = _client(viewer).get(f"/comms/incidents/{incident.pk}/panel/").content.decode()
    assert "Update overdue" in html
    assert "Write an update" not in html  # viewers read only


def test_composer_fills_the_template_and_publishes(incident_factory, responder):
    incident = incident_factory(severity="SEV3", functionality_impacted="Reports")
    client = _client(responder)
    template = MessageTemplate.objects.get(key="internal-update")
    html = client.get(
        f"/comms/incidents/{incident.pk}/compose/", {"template": template.pk}
    ).content.decode()
    assert "INCIDENT UPDATE" in html and "[TO FILL: planned actions]" in html
    form = {
        "template": template.pk,
        "audience": "internal",
        "status": "investigating",
        "subject": "INCIDENT UPDATE: reports slow",
        "body": "Still on it. [TO FILL: planned actions]",
    }
    checked = client.post(
        f"/comms/incidents/{incident.pk}/compose/submit/", {**form, "action": "preview"}
    )
    assert "Still to fill" in checked.content.decode()
    assert not StatusUpdate.objects.exists()
    published = client.post(
        f"/comms/incidents/{incident.pk}/compose/submit/",
        {**form, "action": "publish", "confirm_markers": "1"},  # blanks kept on purpose
    )
    assert published.status_code == 200
    assert published["HX-Retarget"] == f"#comms-panel-{incident.pk}"
    update = StatusUpdate.objects.get()
    assert update.is_published and update.body == form["body"]
    assert "Updates sent" in published.content.decode()


def test_composer_refuses_external_blanks_with_a_form_error(incident_factory, commander):
    incident = incident_factory(severity="SEV1")
    client = _client(commander)
    response = client.post(
        f"/comms/incidents/{incident.pk}/compose/submit/",
        {
            "audience": "external",
            "status": "identified",
            "subject": "Database Issue",
            "body": "Back within [TO FILL: estimated time to restore service].",
            "action": "publish",
        },
    )
    assert response.status_code == 400
    assert "cannot go out with blanks" in response.content.decode()
    assert not StatusUpdate.objects.exists()


def test_failed_delivery_is_listed_with_a_retry_button(incident_factory, responder):
    incident = incident_factory()
    delivery = Delivery.objects.create(
        kind="update",
        transport="slack",
        incident=incident,
        destination="ops-slack",
        subject="s",
        body="b",
        state=DeliveryState.FAILED,
        attempts=6,
        error="HTTP 500 Internal Server Error",
    )
    client = _client(responder)
    html = client.get(f"/comms/incidents/{incident.pk}/panel/").content.decode()
    assert "Failed deliveries" in html and "HTTP 500" in html
    assert f"/comms/deliveries/{delivery.pk}/retry/" in html
    response = client.post(f"/comms/deliveries/{delivery.pk}/retry/")
    assert response.status_code == 200
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.PENDING


def test_viewer_cannot_compose(incident_factory, viewer):
    incident = incident_factory()
    assert _client(viewer).get(f"/comms/incidents/{incident.pk}/compose/").status_code == 403


def test_a_saved_draft_is_edited_then_published_from_the_panel(incident_factory, commander):
    incident = incident_factory(severity="SEV1")
    client = _client(commander)
    form = {
        "audience": "external",
        "status": "identified",
        "subject": "Database Issue",
        "body": "Fixed within [TO FILL: estimated time to restore service].",
    }
    saved = client.post(
        f"/comms/incidents/{incident.pk}/compose/submit/", {**form, "action": "draft"}
    )
    assert saved.status_code == 200
    draft = StatusUpdate.objects.get()
    assert not draft.is_published
    panel = client.get(f"/comms/incidents/{incident.pk}/panel/").content.decode()
    assert f"?draft={draft.pk}" in panel and f"/comms/updates/{draft.pk}/discard/" in panel
    editor = client.get(f"/comms/incidents/{incident.pk}/compose/", {"draft": draft.pk})
    assert "Fixed within [TO FILL" in editor.content.decode()
    published = client.post(
        f"/comms/incidents/{incident.pk}/compose/submit/",
        {**form, "body": "Fixed within the hour.", "draft": draft.pk, "action": "publish"},
    )
    assert published.status_code == 200
    draft.refresh_from_db()
    assert draft.is_published and draft.body == "Fixed within the hour."
    assert StatusUpdate.objects.count() == 1


def test_a_draft_is_discarded_but_a_published_update_is_not(incident_factory, commander):
    incident = incident_factory()
    client = _client(commander)
    template = MessageTemplate.objects.get(key="internal-update")
    from comms import services

    draft = services.update_create(
        incident_id=incident.pk, template_id=template.pk, actor=commander
    )
    assert client.post(f"/comms/updates/{draft.pk}/discard/").status_code == 200
    assert not StatusUpdate.objects.filter(pk=draft.pk).exists()
    sent = services.update_create_and_publish(
        incident_id=incident.pk, template_id=template.pk, actor=commander
    )
    assert client.post(f"/comms/updates/{sent.pk}/discard/").status_code == 400
    assert StatusUpdate.objects.filter(pk=sent.pk).exists()


def test_a_refused_external_publish_keeps_the_text_in_the_composer(incident_factory, responder):
    """A responder pressing Publish on an external update: the composer with the refusal, the
    typed text kept, status 403 (htmx swaps it: data-panel-refusal), never the 403 page."""
    incident = incident_factory(severity="SEV2")
    response = _client(responder).post(
        f"/comms/incidents/{incident.pk}/compose/submit/",
        {
            "audience": "external",
            "status": "investigating",
            "subject": "Checkout is slow",
            "body": "We are looking into slow checkouts, typed with care.",
            "action": "publish",
        },
        HTTP_HX_REQUEST="true",
    )
    html = response.content.decode()
    assert response.status_code == 403
    assert "data-panel-refusal" in html and "comms-composer" in html
    assert "typed with care" in html
    assert "You may not publish external updates" in html
    assert "You cannot do this" not in html
    assert not StatusUpdate.objects.exists()


def test_a_refused_draft_publish_answers_with_the_panel(incident_factory, responder):
    incident = incident_factory(severity="SEV2")
    client = _client(responder)
    client.post(
        f"/comms/incidents/{incident.pk}/compose/submit/",
        {
            "audience": "external",
            "status": "investigating",
            "subject": "Checkout is slow",
            "body": "Looking into it.",
            "action": "draft",
        },
    )
    draft = StatusUpdate.objects.get()
    response = client.post(f"/comms/updates/{draft.pk}/publish/", HTTP_HX_REQUEST="true")
    assert response.status_code == 403
    html = response.content.decode()
    assert "data-panel-refusal" in html and "You may not publish external updates" in html


def test_publishing_an_internal_update_with_blanks_asks_first(incident_factory, responder):
    incident = incident_factory(severity="SEV3")
    client = _client(responder)
    form = {
        "audience": "internal",
        "status": "investigating",
        "subject": "INCIDENT UPDATE",
        "body": "Still on it. [TO FILL: planned actions]",
        "action": "publish",
    }
    asked = client.post(f"/comms/incidents/{incident.pk}/compose/submit/", form)
    html = asked.content.decode()
    assert asked.status_code == 200
    assert "still has 1 blank to fill" in html and "Publish with the blanks" in html
    assert "Still on it." in html
    assert not StatusUpdate.objects.exists()
    confirmed = client.post(
        f"/comms/incidents/{incident.pk}/compose/submit/", {**form, "confirm_markers": "1"}
    )
    assert confirmed.status_code == 200
    assert StatusUpdate.objects.get().is_published


def test_the_composer_offers_to_run_stale_diagnostics_again(incident_factory, responder):
    import datetime

    from django.utils import timezone

    from diagnostics.models import CheckResult, DiagnosticRun, IncidentTarget, TargetDatabase

    incident = incident_factory(severity="SEV2")
    target = TargetDatabase.objects.create(name="shop", host="127.0.0.1", database="shop")
    IncidentTarget.objects.create(incident=incident, target=target)
    old = timezone.now() - datetime.timedelta(minutes=7)
    run = DiagnosticRun.objects.create(
        target=target,
        incident=incident,
        status="succeeded",
        queued_at=old,
        started_at=old,
        finished_at=old,
        deadline=old + datetime.timedelta(minutes=5),
    )
    CheckResult.objects.create(
        run=run,
        key="connection",
        title="Connection",
        family="connection",
        status="ok",
        summary="reachable",
        metrics={"uptime_s": 693.5, "connect_ms": 5.03},
    )
    template = MessageTemplate.objects.get(key="internal-update")
    html = (
        _client(responder)
        .get(f"/comms/incidents/{incident.pk}/compose/", {"template": template.pk})
        .content.decode()
    )
    assert "Run diagnostics again" in html
    assert "7\xa0minutes ago" in html or "7 minutes ago" in html
    assert "uptime s" not in html and "connect ms" not in html
    assert "shop: all 1 checks passed" in html
