"""In a real browser: the Remediation and Runbooks panels on the incident page (htmx, CSRF,
the confirmation dialog), against a session planted on the local server."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from incidents.models import EventKind, TimelineEvent
from tests.diagnostics.remediation_support import APP_ROLE, IDLE_IN_TX

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.usefixtures("quick_confirmation")]


def test_preview_confirm_terminate_and_tick_a_runbook_step_in_the_browser(
    page, live_server, login, screenshot, server, scratch, plant, target, incident, commander_user
):
    idle = plant(IDLE_IN_TX, wait="state = 'idle in transaction'")
    login(commander_user)
    page.goto(f"{live_server.url}/incidents/{incident.pk}/")
    body = page.locator(f"#remediation-body-{incident.pk}")
    expect(body.get_by_role("button", name="Preview")).to_be_visible()

    body.locator("select[name=kind]").select_option("terminate")
    body.locator("input[name=states][value='active']").uncheck()
    body.locator("input[name=states][value='idle in transaction']").check()
    body.locator("input[name=min_duration_s]").fill("")
    body.locator("input[name=user]").fill(APP_ROLE)
    body.get_by_role("button", name="Preview").click()
    checkbox = body.locator(f"input[name=backend][value^='{idle.pid}|']")
    expect(checkbox).to_be_checked()
    screenshot("remediation-preview")

    page.once("dialog", lambda dialog: dialog.accept())
    body.get_by_role("button", name="Confirm: terminate backend").click()
    expect(body.locator("td.o-terminated").first).to_have_text("terminated")
    screenshot("remediation-done")
    assert server.backend(idle.pid, scratch) is None
    assert TimelineEvent.objects.filter(incident=incident, kind=EventKind.REMEDIATION).exists()

    runbooks = page.locator(f"#runbooks-body-{incident.pk}")
    runbooks.locator("select[name=runbook]").select_option("quick-mitigation")
    runbooks.get_by_role("button", name="Start").click()
    expect(runbooks.get_by_text("0 of 6 steps done")).to_be_visible()
    first = runbooks.locator("li").nth(1)  # the connection pool restart
    first.locator("input[name=note]").fill("pool recycled")
    first.get_by_role("button", name="Done").click()
    expect(runbooks.get_by_text("1 of 6 steps done")).to_be_visible()
    expect(runbooks.get_by_text("Note: pool recycled")).to_be_visible()
    screenshot("runbook-ticked")
    assert TimelineEvent.objects.filter(incident=incident, kind=EventKind.RUNBOOK_STEP).count() == 2
