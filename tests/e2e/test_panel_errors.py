"""Errors never destroy work (issue 13, item 5): a refused publish and an external update with
blanks are answered inside the comms panel, the typed text still in the field, the incident
page still around them. Screenshots go to test-artifacts/<test name>/."""

import pytest
from playwright.sync_api import expect

from incidents import services as incident_services
from incidents.groups import ensure_groups
from tests.factories import UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TYPED = "Checkout writes are blocked behind one idle session; we are ending it now."


@pytest.fixture
def incident(transactional_db):
    ensure_groups()
    commander = UserFactory(username="cora", first_name="Cora", last_name="Diaz", role="commander")
    responder = UserFactory(username="raj", first_name="Raj", last_name="Patel", role="responder")
    incident = incident_services.incident_declare(
        title="Checkout hangs", severity="SEV2", kind="performance", actor=commander
    )
    return incident, commander, responder


def _compose_external(page, live_server, incident, subject, body):
    page.goto(f"{live_server.url}/incidents/{incident.pk}/")
    comms = page.locator("#panel-comms")
    comms.get_by_role("button", name="Compose").click()
    composer = comms.locator("form.comms-composer")
    expect(composer).to_be_visible()
    composer.get_by_label("Audience").select_option("external")
    composer.get_by_label("Subject").fill(subject)
    composer.get_by_label("Message").fill(body)
    composer.get_by_role("button", name="Publish", exact=True).click()
    return page.locator("#panel-comms")


def test_a_refused_publish_is_said_in_the_panel_and_keeps_the_text(
    page, login, screenshot, live_server, incident
):
    incident, _, responder = incident
    login(responder)
    comms = _compose_external(page, live_server, incident, "Checkout is slow", TYPED)
    expect(comms.locator("[role=alert]:not([data-delivery-gap])")).to_contain_text(
        "You may not publish external updates"
    )
    expect(comms.get_by_label("Message")).to_have_value(TYPED)
    expect(page.locator(".incident-head")).to_contain_text("Checkout hangs")  # page kept
    expect(page.get_by_text("You cannot do this")).to_have_count(0)
    screenshot("01-publish-refused-in-panel")


def test_external_blanks_are_said_in_the_panel_and_keep_the_text(
    page, login, screenshot, live_server, incident
):
    incident, commander, _ = incident
    login(commander)
    body = TYPED + " Back within [TO FILL: estimated time to restore service]."
    comms = _compose_external(page, live_server, incident, "Checkout is slow", body)
    expect(comms.locator("[role=alert]:not([data-delivery-gap])").first).to_contain_text(
        "cannot go out with blanks"
    )
    expect(comms.get_by_label("Message")).to_have_value(body)
    expect(page.locator(".incident-head")).to_contain_text("Checkout hangs")
    expect(page.locator("link[rel=stylesheet]").first).to_be_attached()  # a styled page
    screenshot("02-blanks-refused-in-panel")


def test_half_typed_text_survives_an_action_elsewhere_on_the_page(
    page, login, screenshot, live_server, incident
):
    """Assign re-renders the incident's body: a note being typed, and an open summary edit, are
    still there afterwards; the note form, once sent, is cleared as usual."""
    incident, commander, _ = incident
    login(commander)
    page.goto(f"{live_server.url}/incidents/{incident.pk}/")
    note = page.get_by_label("Add a note to the timeline")
    note.fill(TYPED)
    page.get_by_text("Edit summary and assessment").click()
    page.locator("#incident-body textarea[name=description]").fill("Writes fail on orders.")

    team = page.locator("form[data-assign-form]")
    team.locator("select[name=role]").select_option(label="Technical Lead")
    team.locator("select[name=user]").select_option(label="Raj Patel (raj)")
    team.get_by_role("button", name="Assign").click()
    expect(page.locator("#incident-body")).to_contain_text("Raj Patel is now Technical Lead")

    expect(page.get_by_label("Add a note to the timeline")).to_have_value(TYPED)
    description = page.locator("#incident-body textarea[name=description]")
    expect(description).to_have_value("Writes fail on orders.")
    expect(description).to_be_visible()  # its <details> is open again
    screenshot("03-typing-kept-after-assign")

    page.get_by_role("button", name="Add note").click()
    expect(page.locator("#incident-body ol, #incident-body ul").first).to_be_visible()
    expect(page.get_by_text(TYPED).first).to_be_visible()
    expect(page.get_by_label("Add a note to the timeline")).to_have_value("")
