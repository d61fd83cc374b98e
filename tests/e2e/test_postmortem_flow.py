"""A new author writes a postmortem in a real browser: sign in, open the resolved incident's
postmortem, pick and annotate timeline entries, fill the sections (one with a script tag that
must never run), add two action items, preview, schedule the review, submit and publish, which
closes the incident. Screenshots go to test-artifacts/test_postmortem_flow/."""

import datetime
import re

import pytest
from django.contrib.auth.models import Group
from django.core import mail
from django.utils import timezone
from playwright.sync_api import expect

from incidents import services as incident_services
from incidents.groups import ensure_groups
from incidents.models import ResponderRole, Status
from postmortems.models import ActionItem, Postmortem, PostmortemStatus, Review
from tests.factories import UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

XSS = '<script>window.__pmPwned = true</script><img src=x onerror="window.__pmPwned = true">'


@pytest.fixture
def eager_tasks():
    """Celery tasks (invite mail) run in the request that queues them: no worker here."""
    from config.celery import app

    saved = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = saved


@pytest.fixture
def resolved_incident(transactional_db):
    ensure_groups()
    author = UserFactory(username="priya", first_name="Priya", last_name="Raman", role="commander")
    dba = UserFactory(username="dmitri", first_name="Dmitri", last_name="Olsen", role="viewer")
    specialists, _ = Group.objects.get_or_create(name="database-specialists")
    dba.groups.add(specialists)
    incident = incident_services.incident_declare(
        title="Orders API timeouts",
        severity="SEV2",
        kind="performance",
        actor=author,
        description="Checkout requests timed out while a lock queue built up on orders.",
        functionality_impacted="Checkout",
        users_affected_percent=35,
        detected_at=timezone.now() - datetime.timedelta(minutes=47),
    )
    incident_services.role_assign(
        incident_id=incident.pk, role=ResponderRole.INCIDENT_COMMANDER, user=author, actor=author
    )
    incident_services.timeline_append(
        incident_id=incident.pk,
        message="Blocking chain found: ALTER TABLE orders holds AccessExclusiveLock",
        actor=author,
    )
    incident_services.incident_transition(
        incident_id=incident.pk, to_status="monitoring", actor=author
    )
    incident_services.incident_transition(
        incident_id=incident.pk, to_status="resolved", actor=author
    )
    incident.refresh_from_db()
    return incident, author


def test_postmortem_flow(page, login, screenshot, live_server, resolved_incident, eager_tasks):
    incident, author = resolved_incident

    def shot(name):
        # Full-page captures from the top, so the sticky save bar sits where it belongs.
        page.evaluate("window.scrollTo(0, 0)")
        screenshot(name)

    page.set_default_timeout(15_000)
    # Any script the page runs that we did not write would set this flag.
    page.add_init_script("window.__pmPwned = false;")
    postmortem = Postmortem.objects.get(incident=incident)  # opened by the resolution

    login(author)
    page.goto(f"{live_server.url}/incidents/{incident.pk}/")
    panel = page.locator("section.pm-panel")
    expect(panel).to_contain_text("Draft")
    shot("01-incident-with-postmortem-panel")
    panel.get_by_role("link", name="Open postmortem").click()
    expect(page.get_by_role("heading", name=f"Postmortem: {incident.title}")).to_be_visible()
    shot("02-postmortem-draft")

    # Text typed earlier in this browser but never saved (a crash) is offered back.
    page.evaluate(
        "pk => localStorage.setItem('quell:postmortem:' + pk, JSON.stringify("
        "{at: Date.now(), values: {summary: 'Typed before the crash'}}))",
        postmortem.pk,
    )
    page.reload()
    local_copy = page.locator("#pm-local-copy")
    expect(local_copy).to_be_visible()
    local_copy.get_by_role("button", name="Restore it into the form").click()
    expect(page.locator("#id_summary")).to_have_value("Typed before the crash")
    expect(local_copy).to_be_hidden()

    # Timeline: the key events are pre-selected; add the note and annotate it.
    note_row = page.locator("table.pm-timeline tr", has_text="Blocking chain found")
    note_row.locator("input[type=checkbox]").check()
    note_row.locator("input[type=text]").fill("The migration took the lock: the trigger.")

    page.fill("#id_summary", f"**Checkout** timed out for 40 minutes. {XSS}")
    page.fill("#id_impact", "- 35% of checkouts failed\n- No data lost")
    page.fill("#id_actions_taken", "1. Found the blocking chain\n2. Cancelled the migration")
    page.fill("#id_root_cause", "A migration ran `ALTER TABLE orders` during peak traffic.")
    page.fill("#id_contributing_factors", "No lock_timeout on migrations.")
    page.fill("#id_response_effectiveness", "Detected quickly; mitigation took too long.")
    page.fill("#id_went_well", "Diagnostics showed the chain at once.")
    page.fill("#id_went_badly", "Nobody knew the migration was running.")
    page.fill("#id_lessons_learned", "Migrations need a lock_timeout.")
    page.fill("#id_playbook_updates", "Add the blocking-chain query to Diagnosis.")
    # Autosave (htmx) keeps the typing safe and moves the form to the new version...
    expect(page.locator("#autosave-status")).to_contain_text("Autosaved", timeout=20_000)
    expect(page.locator("#id_version")).not_to_have_value("1")
    # ...so the explicit save that follows is not mistaken for a concurrent edit.
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".messages")).to_contain_text("Saved (version")

    # Two action items through the htmx form.
    due = (timezone.localdate() + datetime.timedelta(days=14)).isoformat()
    for title, category in (
        ("Set lock_timeout for migrations", "performance"),
        ("Alert on lock waits over 30 s", "monitoring"),
    ):
        page.locator(".pm-add-item > summary").click()
        form = page.locator("#action-item-form")
        form.locator("[name=title]").fill(title)
        form.locator("[name=category]").select_option(category)
        form.locator("[name=owner]").select_option(label="Priya Raman (priya)")
        form.locator("[name=due_date]").fill(due)
        form.locator("[name=tracker_url]").fill("https://tracker.example.com/DB-42")
        form.get_by_role("button", name="Add action item").click()
        expect(page.locator("table.pm-items-table")).to_contain_text(title)
    assert ActionItem.objects.filter(postmortem=postmortem).count() == 2
    shot("03-action-items")

    # Preview renders the Markdown; the script typed into the summary does not run.
    page.get_by_role("button", name="Preview").click()
    preview = page.locator("#preview")
    expect(preview.locator("strong", has_text="Checkout")).to_be_visible()
    expect(preview).to_contain_text("<script>window.__pmPwned = true</script>")
    expect(preview).to_contain_text("The migration took the lock")
    assert preview.locator("script").count() == 0
    assert page.evaluate("window.__pmPwned") is False
    shot("04-preview")

    # Schedule the review at the proposed slot: invites go out with an .ics.
    review_card = page.locator("#review")
    expect(review_card).to_contain_text("Proposed:")
    review_card.get_by_role("button", name="Schedule and send invites").click()
    expect(page.locator(".messages")).to_contain_text("Review scheduled for")
    review = Review.objects.get(postmortem=postmortem)
    assert review.starts_at <= postmortem.review_due_at
    invite = next(m for m in mail.outbox if m.subject.startswith("Invitation"))
    assert {"priya@example.com", "dmitri@example.com"} <= set(invite.to)
    expect(page.locator("#review")).to_contain_text("Download invite (.ics)")
    shot("05-review-scheduled")

    # Submit for review, then publish: the incident closes.
    page.get_by_role("button", name="Submit for review").click()
    expect(page.locator(".messages")).to_contain_text("Submitted for review")
    # The review is only scheduled: publishing now asks for confirmation first.
    concerns = page.locator(".pm-publish-concerns")
    expect(concerns).to_contain_text("The review has not been held (scheduled for")
    publish = page.get_by_role("button", name="Publish anyway and close incident")
    publish.click()  # the browser refuses the form until the box is ticked
    expect(page.locator(".pm-lifecycle li.current")).not_to_have_text("Published")
    concerns.get_by_label("Publish anyway (the timeline records that you did)").check()
    shot("06a-publish-needs-confirmation")
    publish.click()
    expect(page.locator(".messages")).to_contain_text("Published")
    expect(page.locator(".pm-lifecycle li.current")).to_have_text("Published")
    assert page.evaluate("window.__pmPwned") is False
    shot("06-published")

    postmortem.refresh_from_db()
    incident.refresh_from_db()
    assert postmortem.status == PostmortemStatus.PUBLISHED
    assert incident.status == Status.CLOSED
    assert "<script>" in postmortem.summary  # kept as typed, rendered as text

    page.get_by_role("link", name="Printable page").click()
    expect(page.locator(".pm-print h1")).to_have_text(re.compile("Orders API timeouts"))
    assert page.evaluate("window.__pmPwned") is False
    shot("07-printable")

    page.goto(f"{live_server.url}/postmortems/")
    expect(page.locator("table.data")).to_contain_text("Orders API timeouts")
    expect(page.locator("table.data")).to_contain_text("Published")
    shot("08-postmortem-list")
    page.goto(f"{live_server.url}/postmortems/action-items/?mine=1")
    expect(page.locator("table.data")).to_contain_text("Set lock_timeout for migrations")
    shot("09-my-action-items")


def test_concurrent_edit_is_shown_not_overwritten(
    page, login, screenshot, live_server, resolved_incident
):
    incident, author = resolved_incident
    page.set_default_timeout(15_000)
    postmortem = Postmortem.objects.get(incident=incident)
    colleague = UserFactory(username="tomas", first_name="Tomas", role="responder")

    login(author)
    page.goto(f"{live_server.url}/postmortems/{postmortem.pk}/")
    expect(page.locator("#id_version")).to_have_value("1")

    # Meanwhile a colleague saves a different root cause.
    from postmortems import services

    services.postmortem_update(
        postmortem_id=postmortem.pk,
        expected_version=1,
        changes={"root_cause": "Autovacuum was disabled on `orders`."},
        actor=colleague,
    )

    page.fill("#id_root_cause", "A migration took an ACCESS EXCLUSIVE lock.")
    page.get_by_role("button", name="Save", exact=True).click()
    banner = page.locator("#conflict")
    expect(banner).to_contain_text("Someone else saved while you were editing")
    expect(banner).to_contain_text("tomas")
    theirs = page.locator("#section-root_cause .pm-theirs")
    expect(theirs).to_contain_text("Autovacuum was disabled on orders.")
    expect(page.locator("#id_root_cause")).to_have_value(
        "A migration took an ACCESS EXCLUSIVE lock."
    )
    page.evaluate("window.scrollTo(0, 0)")
    screenshot("01-conflict-both-versions")
    postmortem.refresh_from_db()
    assert postmortem.root_cause == "Autovacuum was disabled on `orders`."

    # Having read theirs, the author merges both and saves deliberately.
    page.fill(
        "#id_root_cause",
        "A migration took an ACCESS EXCLUSIVE lock; autovacuum was disabled on `orders`.",
    )
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".messages")).to_contain_text("Saved (version 3)")
    postmortem.refresh_from_db()
    assert postmortem.root_cause.startswith("A migration took")
    assert postmortem.version == 3


def test_submit_for_review_right_after_typing_keeps_the_text(
    page, login, screenshot, live_server, resolved_incident
):
    """The author types and presses Submit for review before autosave ran (4 s): the text is
    saved with the step, not lost with the page."""
    incident, author = resolved_incident
    page.set_default_timeout(15_000)
    postmortem = Postmortem.objects.get(incident=incident)
    login(author)
    page.goto(f"{live_server.url}/postmortems/{postmortem.pk}/")
    page.fill("#id_summary", "A migration locked orders; checkout timed out for 40 minutes.")
    page.fill("#id_impact", "35% of checkouts failed.")
    page.get_by_role("button", name="Submit for review").click()
    expect(page.locator(".messages")).to_contain_text("Submitted for review.")
    expect(page.locator(".messages")).to_contain_text("Saved (version 2).")
    expect(page.locator("#id_impact")).to_have_value("35% of checkouts failed.")
    expect(page.locator("#pm-local-copy")).to_be_hidden()  # nothing left unsaved
    page.evaluate("window.scrollTo(0, 0)")
    screenshot("01-submitted-with-the-text")
    postmortem.refresh_from_db()
    assert postmortem.status == PostmortemStatus.IN_REVIEW
    assert postmortem.impact == "35% of checkouts failed."
