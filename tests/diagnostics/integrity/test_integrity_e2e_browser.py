"""In a browser (Playwright, Debian's chromium): a responder takes a baseline from the incident
page's Data integrity panel, the data is repaired, a verification shows what was fixed.
Screenshots go to test-artifacts/. Tasks run eagerly in the live server (no worker needed)."""

import pytest
from playwright.sync_api import expect

from diagnostics.models import IncidentTarget
from incidents.services import incident_declare
from tests.diagnostics.integrity.integrity_support import shop_sql
from tests.factories import UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_baseline_then_verification_in_the_browser(
    page, live_server, login, screenshot, shop_db, shop_target, shop_checks, eager_celery
):
    responder = UserFactory(username="ines", role="responder")
    incident = incident_declare(title="Profiles without users", severity="SEV2", actor=responder)
    IncidentTarget.objects.create(incident=incident, target=shop_target)
    login(responder)
    page.goto(f"{live_server.url}/incidents/{incident.pk}/")
    panel = page.locator(f"#integrity-body-{incident.pk}")
    expect(panel).to_contain_text("6 checks")
    panel.get_by_role("button", name="Run baseline").click()
    expect(panel).to_contain_text("4 violations in 6 checks", timeout=15000)
    expect(panel).to_contain_text("run a verification after remediation")
    screenshot("baseline")

    shop_sql(shop_db, "DELETE FROM profiles WHERE user_id >= 100")
    panel.get_by_role("button", name="Run verification").click()
    expect(panel).to_contain_text("→ verification", timeout=15000)
    row = panel.locator('tr[data-diff="orphaned profiles"]')
    expect(row).to_contain_text("fixed")
    expect(row).to_contain_text("-3")
    screenshot("verification")
    # The timeline on the same page refreshes and carries both runs.
    timeline = page.locator("#timeline, .timeline").first
    expect(timeline).to_contain_text("Integrity verification on", timeout=10000)
    expect(timeline).to_contain_text("Integrity baseline on")
