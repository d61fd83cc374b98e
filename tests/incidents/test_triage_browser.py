"""Triage in a real browser: the panel loads with htmx, walks, applies, and the page agrees."""

from __future__ import annotations

import pytest

from incidents import services as incident_services

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.mark.django_db(transaction=True)
def test_commander_walks_the_tree_and_applies_the_severity(page, live_server, login, screenshot):
    from tests.factories import UserFactory

    commander = UserFactory(username="ic-browser", role="commander")
    incident = incident_services.incident_declare(
        title="Checkout slow", severity="SEV4", kind="other", actor=commander
    )
    login(commander)
    page.goto(f"{live_server.url}/incidents/{incident.pk}/")
    panel = page.locator(f"#triage-panel-{incident.pk}")
    panel.get_by_role("button", name="Start triage").click()
    panel.get_by_text("Can connect to database?").wait_for()
    for label in ("Yes", "Yes", "Very slow/timeout", "Yes"):
        before = panel.locator("legend").inner_text()
        panel.get_by_role("button", name=label, exact=True).click()
        page.wait_for_function(
            "([sel, before]) => { const l = document.querySelector(sel + ' legend');"
            " return !l || l.innerText !== before; }",
            arg=[f"#triage-panel-{incident.pk}", before],
        )
    panel.get_by_role("heading", name="Outcome: Check for resource exhaustion").wait_for()
    screenshot("outcome")
    panel.get_by_role("button", name="Apply SEV2 and performance").click()
    page.locator("#incident-body .badge.sev-SEV2").first.wait_for()
    screenshot("applied")
    incident.refresh_from_db()
    assert (incident.severity, incident.kind) == ("SEV2", "performance")

    # Restart, take the connection branch, and start the runbook its outcome points to.
    page.on("dialog", lambda dialog: dialog.accept())
    panel.get_by_role("button", name="Restart").click()
    panel.get_by_text("Can connect to database?").wait_for()
    for label in ("No", "No", "No"):
        before = panel.locator("legend").inner_text()
        panel.get_by_role("button", name=label, exact=True).click()
        page.wait_for_function(
            "([sel, before]) => { const l = document.querySelector(sel + ' legend');"
            " return !l || l.innerText !== before; }",
            arg=[f"#triage-panel-{incident.pk}", before],
        )
    panel.get_by_role("heading", name="Outcome: Check network connectivity").wait_for()
    panel.get_by_role("button", name="Start the runbook").click()
    page.locator(
        f'#runbooks-panel-{incident.pk} article[data-runbook="quick-mitigation"]'
    ).wait_for()
    screenshot("runbook-started")
