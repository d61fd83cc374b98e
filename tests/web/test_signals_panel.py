"""The incident page shows the signals received for it and its databases (issue 13.10)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from diagnostics.detection import monitors
from diagnostics.models import IncidentTarget
from incidents.services import incident_declare
from tests.diagnostics.detection.test_monitors import monitor_run
from tests.diagnostics.records import make_target

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_broker(settings, monkeypatch):
    settings.QUELL_COMMS_NOTIFY_ON_DECLARE = False
    monkeypatch.setattr("diagnostics.services._enqueue", lambda pairs: None)


def test_the_page_lists_its_signals_and_says_where_the_others_went(viewer_client, commander):
    shop = make_target(name="shop", host="pg1.internal", database="shop")
    sev3 = incident_declare(title="Slow reports", severity="SEV3", actor=commander)
    sev1 = incident_declare(title="Checkout writes blocked", severity="SEV1", actor=commander)
    for incident in (sev3, sev1):
        IncidentTarget.objects.create(incident=incident, target=shop)
    monitors.monitor_run_evaluate(run_id=monitor_run(shop, {"connections": ("critical", {})}).pk)

    on_sev1 = viewer_client.get(reverse("incidents:detail", args=[sev1.pk])).content.decode()
    panel = on_sev1[on_sev1.index('id="panel-signals"') :]
    assert "1 firing on this incident" in panel
    assert "Quell monitor · connections · SEV2" in panel
    assert ">here<" in panel

    # The older SEV3 on the same database shows the breach, and that it went to the SEV1.
    on_sev3 = viewer_client.get(reverse("incidents:detail", args=[sev3.pk])).content.decode()
    panel = on_sev3[on_sev3.index('id="panel-signals"') :]
    assert "0 firing on this incident · 1 about its databases went to another incident" in panel
    assert f'href="/incidents/{sev1.pk}/">#{sev1.pk} SEV1</a>' in panel


def test_an_incident_without_signals_says_so(viewer_client, commander):
    incident = incident_declare(title="Quiet", severity="SEV4", actor=commander)
    page = viewer_client.get(reverse("incidents:detail", args=[incident.pk])).content.decode()
    assert "No alert or monitor signal has arrived for this incident or its databases." in page


def test_the_panel_refreshes_itself_while_the_incident_is_open(viewer_client, commander, client):
    incident = incident_declare(title="Lag", severity="SEV3", actor=commander)
    url = reverse("detection:incident-signals", args=[incident.pk])
    assert client.get(url).status_code == 302  # signed-in people only
    html = viewer_client.get(url).content.decode()
    assert f'hx-get="{url}" hx-trigger="every 15s"' in html
    assert html.count("signals.css") == 1  # inside the swapped section: never piles up
    incident.status = "resolved"
    incident.save(update_fields=["status"])
    assert "hx-trigger" not in viewer_client.get(url).content.decode()
    assert (
        viewer_client.get(reverse("detection:incident-signals", args=[999999])).status_code == 404
    )
