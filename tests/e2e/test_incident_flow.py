"""A new responder walks the main flow in a real browser: sign in, declare (fixing a mistake on
the form), staff the incident, work it through its statuses and resolve it. Screenshots of each
step go to test-artifacts/test_incident_flow/."""

import re

import pytest
from django.db import connection
from playwright.sync_api import expect

from incidents import services as incident_services
from incidents.groups import ensure_groups
from incidents.models import EventKind, Incident
from tests.factories import UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def people(transactional_db, settings):
    # transactional_db empties tables between tests, groups included: make sure they exist.
    ensure_groups()
    # The insights page must show this test's data, not figures cached by an earlier run.
    settings.QUELL_INSIGHTS_CACHE_SECONDS = 0
    newbie = UserFactory(username="nadia", first_name="Nadia", last_name="Novak", role="responder")
    colleague = UserFactory(
        username="tomas", first_name="Tomas", last_name="Lind", role="responder"
    )
    return newbie, colleague


@pytest.fixture
def target_database(transactional_db):
    """Quell's own test database, registered as a diagnostics target (read-only checks)."""
    diag = pytest.importorskip("diagnostics.services")
    settings = connection.settings_dict
    return diag.target_create(
        name="orders-db",
        host=settings["HOST"] or "127.0.0.1",
        port=int(settings["PORT"] or 5432),
        database=settings["NAME"],
        user=settings["USER"],
        password=settings["PASSWORD"] or "",
    )


@pytest.fixture
def eager_tasks():
    """Run Celery tasks in the web request that enqueues them: no worker in this test."""
    from config.celery import app

    saved = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = saved


def test_incident_flow(page, login, screenshot, live_server, people, target_database, eager_tasks):
    newbie, _colleague = people
    page.set_default_timeout(10_000)

    login(newbie)
    expect(page.get_by_role("heading", name="Incidents", exact=True)).to_be_visible()
    screenshot("01-incident-list-empty")
    # The skip link is the first thing the keyboard reaches.
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()

    # Declare, forgetting the title first: the error is shown and nothing typed is lost.
    page.get_by_role("link", name="Declare incident").first.click()
    expect(page.get_by_role("heading", name="Declare an incident", exact=True)).to_be_visible()
    page.get_by_text("SEV2 - Major").click()
    page.get_by_label("Kind").select_option("performance")
    page.get_by_label("Description").fill(
        "Checkout API p99 at 12 s; errors from the orders service."
    )
    page.get_by_label("Detection source").select_option("user_report")
    page.get_by_label("Detected by").fill("Support desk")
    page.get_by_label("Users affected (%)").fill("35")
    page.get_by_label("Scope").fill("orders, order_items; SELECT ... FROM orders WHERE ...")
    page.get_by_role("button", name="Declare incident").click()
    expect(page.locator(".form-errors")).to_contain_text("Title")
    expect(page.get_by_label("Description")).to_have_value(
        "Checkout API p99 at 12 s; errors from the orders service."
    )
    expect(page.get_by_label("Detected by")).to_have_value("Support desk")
    screenshot("02-declare-form-error-keeps-input")
    page.get_by_label("Title").fill("Checkout queries time out")
    page.get_by_role("button", name="Declare incident").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Checkout queries time out")
    incident = Incident.objects.get(title="Checkout queries time out")
    assert incident.severity == "SEV2" and incident.declared_by == newbie
    expect(page.locator(".missing-roles")).to_contain_text("Incident Commander")
    # A responder who is not (yet) the Incident Commander is not offered status changes.
    expect(page.get_by_role("button", name="Resolve")).to_have_count(0)
    screenshot("03-incident-declared")

    # Staff it. A responder may not crown themselves Incident Commander (nor name the leads
    # that remediate or publish): the form does not offer those roles.
    roles = page.locator("form[data-assign-form]")
    expect(roles.locator("option[value=incident_commander]")).to_have_count(0)
    expect(roles.locator("option[value=technical_lead]")).to_have_count(0)
    # The duty commander hands the incident to the newcomer; as IC she names the Technical Lead.
    duty = UserFactory(username="duty", role="commander")
    incident_services.role_assign(
        incident_id=incident.pk, role="incident_commander", user=newbie, actor=duty
    )
    page.reload()
    expect(page.locator(".roles")).to_contain_text("Nadia Novak")
    roles = page.locator("form[data-assign-form]")
    roles.locator("select[name=role]").select_option("technical_lead")
    roles.get_by_label("Person").select_option(label="Tomas Lind (tomas)")
    roles.get_by_role("button", name="Assign").click()
    expect(page.locator(".notice.success")).to_have_text("Tomas Lind is now Technical Lead.")
    expect(page.locator(".roles")).to_contain_text("Tomas Lind")
    screenshot("04-roles-assigned")

    # Diagnostics: mark the affected database; a run starts at once and its results appear.
    diagnostics = page.locator("#panel-diagnostics")
    diagnostics.get_by_label("Affected database").select_option(value=str(target_database.pk))
    diagnostics.get_by_role("button", name=re.compile("Add")).click()
    expect(diagnostics).to_contain_text("Latest run", timeout=30_000)
    expect(diagnostics.locator("progress")).to_have_count(0, timeout=60_000)
    expect(diagnostics).to_contain_text("succeeded")
    diagnostics.get_by_role("button", name="Run on orders-db").click()
    expect(diagnostics.locator("progress")).to_have_count(0, timeout=60_000)
    expect(page.locator("#timeline")).to_contain_text("Diagnostic", timeout=15_000)
    screenshot("05-diagnostics")

    # As Incident Commander she may now move the status; each change lands on the timeline.
    page.locator("#id_transition_reason").fill("Sequential scan on orders after last deploy")
    # From the keyboard: focus the button, press Enter; focus comes back to the status section.
    page.get_by_role("button", name="Cause identified").focus()
    page.keyboard.press("Enter")
    expect(page.locator(".incident-head")).to_contain_text("Identified")
    expect(page.locator("#status-heading")).to_be_focused()
    expect(page.locator("#timeline")).to_contain_text(
        "Status changed from investigating to identified: Sequential scan on orders"
    )
    page.locator("#id_transition_reason").fill("Index created concurrently; latency back to normal")
    page.get_by_role("button", name="Mitigated: monitoring").click()
    expect(page.locator(".incident-head")).to_contain_text("Monitoring")
    page.get_by_label("Add a note to the timeline").fill("Watching p99 for 30 minutes")
    page.get_by_role("button", name="Add note").click()
    expect(page.locator("#timeline")).to_contain_text("Watching p99 for 30 minutes")
    screenshot("06-monitoring")

    # Post an internal update from the comms panel: compose from a template, publish.
    comms = page.locator("#panel-comms")
    template = comms.get_by_label("Template")
    internal = [
        option
        for option in template.locator("option").all_text_contents()
        if "internal" in option.lower() and "update" in option.lower()
    ]
    template.select_option(label=internal[0])
    comms.get_by_role("button", name="Compose").click()
    composer = comms.locator("form.comms-composer")
    expect(composer).to_be_visible()
    composer.get_by_label("Message").fill(
        "Index created on orders(customer_id); p99 back to 180 ms. Monitoring for 30 minutes."
    )
    composer.get_by_role("button", name="Publish").click()
    expect(comms).to_contain_text("Index created on orders(customer_id)", timeout=15_000)
    expect(page.locator("#timeline")).to_contain_text("Communication", timeout=15_000)
    screenshot("07-update-posted")

    page.get_by_role("button", name="Resolve").click()
    expect(page.locator(".incident-head")).to_contain_text("Resolved")
    expect(page.get_by_role("button", name="Reopen")).to_be_visible()
    expect(page.locator("#timeline .live")).to_have_count(0)  # no more polling once resolved
    # The postmortem panel follows without a reload: the draft opened on resolve.
    expect(page.locator("#panel-postmortems")).to_contain_text("Open postmortem", timeout=15_000)
    screenshot("08-resolved")

    incident.refresh_from_db()
    assert incident.status == "resolved"
    assert incident.acknowledged_at and incident.identified_at and incident.mitigated_at
    kinds = list(incident.timeline.values_list("kind", flat=True))
    assert kinds.count(EventKind.STATUS_CHANGED) == 3
    assert kinds.count(EventKind.ROLE_ASSIGNED) == 2
    assert EventKind.NOTE in kinds
    assert EventKind.DIAGNOSTIC_RUN in kinds
    assert EventKind.COMMS in kinds

    # The list shows it, filterable; then the metrics page includes it.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Incidents").click()
    page.get_by_label("Status").select_option("resolved")
    expect(page).to_have_url(re.compile(r"status=resolved"))
    expect(page.locator("#incident-results")).to_contain_text("Checkout queries time out")
    screenshot("09-list-filtered")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Insights").click()
    expect(page.locator("svg.chart").first).to_be_visible()
    screenshot("10-insights")


def test_phone_layout(page, login, screenshot, live_server, people):
    from incidents import services

    newbie, _ = people
    incident = services.incident_declare(
        title="Replica lag over 5 minutes on the reporting replica",
        severity="SEV3",
        kind="availability",
        description="Dashboards show data from yesterday.",
        actor=newbie,
    )
    page.set_viewport_size({"width": 390, "height": 844})
    login(newbie)
    for name, path in (
        ("phone-list", "/"),
        ("phone-declare", "/incidents/declare/"),
        ("phone-incident", f"/incidents/{incident.pk}/"),
        ("phone-insights", "/insights/"),
    ):
        page.goto(f"{live_server.url}{path}")
        expect(page.locator("main h1").first).to_be_visible()
        # Nothing is wider than the screen: no sideways scrolling of the page.
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, name
        screenshot(name)
