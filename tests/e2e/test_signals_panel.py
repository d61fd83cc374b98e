"""The responder sees the signals (issue 13.10): an Alertmanager notification sent to the live
server's webhook opens one incident; its page lists both alerts in the Signals panel. The
screenshot goes to test-artifacts/<test name>/."""

import json
import urllib.request

import pytest
from playwright.sync_api import expect

from diagnostics.target_services import target_create
from incidents.groups import ensure_groups
from incidents.models import Incident
from tests.factories import UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SECRET = "e2e-signals-secret"


def _alert(name, severity):
    return {
        "status": "firing",
        "labels": {
            "alertname": name,
            "datname": "shop",
            "instance": "shop-db:9187",
            "severity": severity,
        },
        "annotations": {"summary": f"{name} on shop"},
        "startsAt": "2026-12-04T02:10:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": f"fp-{name}",
    }


def _send(live_server, notification: dict) -> None:
    request = urllib.request.Request(  # noqa: S310 (the live server, http)
        f"{live_server.url}/api/v1/alerts/alertmanager/",
        data=json.dumps(notification).encode(),
        headers={"Authorization": f"Bearer {SECRET}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 (the live server)
        assert answer.status == 200


def test_one_notification_opens_one_incident_and_its_page_lists_the_signals(
    page, login, screenshot, live_server, settings, monkeypatch, transactional_db
):
    ensure_groups()
    settings.QUELL_ALERT_WEBHOOK_TOKEN = SECRET
    settings.QUELL_COMMS_NOTIFY_ON_DECLARE = False
    monkeypatch.setattr("diagnostics.services._enqueue", lambda pairs: None)
    target_create(
        name="shop",
        host="127.0.0.1",
        port=1,
        database="shop",
        user="quell_monitor",
        aliases=["shop-db:9187"],
        enabled=False,
    )
    notification = {
        "version": "4",
        "groupKey": '{}:{datname="shop"}',
        "status": "firing",
        "receiver": "quell",
        "groupLabels": {"datname": "shop"},
        "alerts": [
            _alert("PostgresqlTooManyConnections", "warning"),
            _alert("PostgresqlDeadLocks", "critical"),
        ],
    }
    _send(live_server, notification)
    incident = Incident.objects.get()

    login(UserFactory(username="oncall", first_name="Ola", last_name="Berg", role="responder"))
    page.goto(f"{live_server.url}/incidents/{incident.pk}/")
    panel = page.locator("#panel-signals")
    expect(panel).to_contain_text("2 firing on this incident")
    expect(panel.locator("tbody tr")).to_have_count(2)
    expect(panel).to_contain_text("PostgresqlDeadLocks")
    expect(panel).to_contain_text("PostgresqlTooManyConnections")
    panel.scroll_into_view_if_needed()
    screenshot("01-signals-panel")

    # The next notification of the group arrives while the page is open: the panel shows it
    # without a reload (it polls every 15 s while the incident is open).
    _send(live_server, {**notification, "alerts": [_alert("PostgresqlSlowQueries", "warning")]})
    expect(panel.locator("tbody tr")).to_have_count(3, timeout=25_000)
    expect(panel).to_contain_text("3 firing on this incident")
    screenshot("02-signals-panel-refreshed")
