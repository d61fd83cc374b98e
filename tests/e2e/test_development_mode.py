"""With DEBUG on, as `scripts/run` serves Quell by default, a form answered with its errors (a
400) is still swapped in place. django-htmx's debug script, which {% htmx_script %} adds under
DEBUG, used to replace the whole document with the 400 fragment: no header, no styles, and the
next submit went out as a plain form post. Screenshots go to test-artifacts/<test name>/."""

import pytest
from playwright.sync_api import expect

from incidents import services as incident_services
from incidents.groups import ensure_groups
from tests.factories import UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def incident(transactional_db):
    ensure_groups()
    responder = UserFactory(username="ravi", first_name="Ravi", last_name="Rao", role="responder")
    incident = incident_services.incident_declare(
        title="Orders INSERTs fail", severity="SEV2", kind="availability", actor=responder
    )
    return incident, responder


def test_a_form_error_stays_in_the_page_with_debug_on(
    page, login, screenshot, live_server, incident, settings
):
    settings.DEBUG = True  # read by the live server's thread on each request
    incident, responder = incident
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_default_timeout(10_000)
    login(responder)
    page.goto(f"{live_server.url}/incidents/{incident.pk}/")
    page.wait_for_load_state("networkidle")

    note = page.get_by_label("Add a note to the timeline")
    note.fill("   ")  # passes the browser's `required`, refused by the server
    page.get_by_role("button", name="Add note").click()
    expect(page.get_by_text("This field is required.")).to_be_visible()
    screenshot("01-note-error")
    # Still the incident page, styled and whole, at its own address.
    assert page.url == f"{live_server.url}/incidents/{incident.pk}/"
    expect(page.locator("header.site-header")).to_be_visible()
    expect(page.get_by_role("heading", name="Orders INSERTs fail")).to_be_visible()

    # The form still posts through htmx, and the note lands on the timeline.
    page.get_by_label("Add a note to the timeline").fill("Primary is read-only since 07:58")
    page.get_by_role("button", name="Add note").click()
    expect(page.get_by_text("Primary is read-only since 07:58")).to_be_visible()
    assert page.url == f"{live_server.url}/incidents/{incident.pk}/"
    screenshot("02-note-added")
    assert errors == []
