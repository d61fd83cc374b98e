"""Web pages: login, authoring with versions and conflicts, preview, exports, items, reviews."""

import datetime

import pytest
from django.template.loader import render_to_string
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from icalendar import Calendar

from incidents.models import Status
from postmortems import services
from postmortems.models import SECTION_NAMES, ActionItem, PostmortemStatus, Review


def _in_review(postmortem, actor):
    services.postmortem_update(
        postmortem_id=postmortem.pk,
        expected_version=postmortem.version,
        changes={"summary": "Writes failed after a failover"},
        actor=actor,
    )
    services.postmortem_submit_for_review(postmortem_id=postmortem.pk, actor=actor)
    postmortem.refresh_from_db()


def _client(user):
    client = Client()
    client.force_login(user)
    return client


def _form_data(postmortem, **overrides):
    data = {"version": postmortem.version, "editor": "", "title": postmortem.title}
    data.update({name: getattr(postmortem, name) for name in SECTION_NAMES})
    data["tl_include"] = list(postmortem.timeline_selection)
    data.update(overrides)
    return data


def test_pages_need_login(client, postmortem):
    url = reverse("postmortems:detail", args=[postmortem.pk])
    response = client.get(url)
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_viewer_reads_but_cannot_edit(viewer, postmortem):
    client = _client(viewer)
    url = reverse("postmortems:detail", args=[postmortem.pk])
    page = client.get(url)
    assert page.status_code == 200
    assert b'id="pm-form"' not in page.content
    assert client.post(url, _form_data(postmortem, summary="x")).status_code == 403


def test_responder_saves_text_and_timeline_annotations(responder, postmortem):
    client = _client(responder)
    url = reverse("postmortems:detail", args=[postmortem.pk])
    event_id = next(iter(postmortem.timeline_selection))
    response = client.post(
        url,
        _form_data(
            postmortem,
            summary="Checkout **timed out**",
            tl_include=[event_id],
            **{f"tl_note_{event_id}": "First page"},
        ),
    )
    assert response.status_code == 302
    postmortem.refresh_from_db()
    assert postmortem.version == 2
    assert postmortem.summary == "Checkout **timed out**"
    assert postmortem.timeline_selection == {event_id: "First page"}


def test_concurrent_edit_shows_both_versions_and_keeps_the_users_text(
    responder, commander, postmortem
):
    services.postmortem_update(
        postmortem_id=postmortem.pk,
        expected_version=1,
        changes={"root_cause": "Autovacuum disabled on orders"},
        actor=commander,
    )
    client = _client(responder)
    url = reverse("postmortems:detail", args=[postmortem.pk])
    response = client.post(url, _form_data(postmortem, root_cause="Lock storm from a migration"))
    assert response.status_code == 409
    html = response.content.decode()
    assert "Someone else saved while you were editing" in html
    assert "Lock storm from a migration" in html  # mine, kept in the form
    assert "Autovacuum disabled on orders" in html  # theirs, shown beside it
    assert 'name="version" value="2"' in html
    postmortem.refresh_from_db()
    assert postmortem.root_cause == "Autovacuum disabled on orders"
    # Saving again after seeing both is a deliberate overwrite.
    data = _form_data(postmortem, root_cause="Lock storm from a migration")
    assert client.post(url, data).status_code == 302
    postmortem.refresh_from_db()
    assert postmortem.root_cause == "Lock storm from a migration"


def test_autosave_bumps_version_and_own_autosaves_do_not_conflict(responder, postmortem):
    client = _client(responder)
    url = reverse("postmortems:autosave", args=[postmortem.pk])
    data = _form_data(postmortem, editor="tab-1", summary="Half a sen")
    response = client.post(url, data, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert 'id="id_version" value="2"' in response.content.decode()
    # The explicit save still names version 1 (the autosave answer raced it): not a conflict.
    full = _form_data(postmortem, editor="tab-1", summary="Half a sentence, now whole.")
    full["version"] = 1
    response = _client(responder).post(reverse("postmortems:detail", args=[postmortem.pk]), full)
    assert response.status_code == 302
    postmortem.refresh_from_db()
    assert postmortem.summary == "Half a sentence, now whole."


def test_autosave_conflict_pauses_autosave(responder, commander, postmortem):
    services.postmortem_update(
        postmortem_id=postmortem.pk,
        expected_version=1,
        changes={"summary": "Theirs"},
        actor=commander,
    )
    response = _client(responder).post(
        reverse("postmortems:autosave", args=[postmortem.pk]),
        _form_data(postmortem, editor="tab-2", summary="Mine"),
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 409
    assert 'id="autosave-paused" value="1"' in response.content.decode()


def test_preview_renders_markdown_and_never_a_script(responder, postmortem):
    response = _client(responder).post(
        reverse("postmortems:preview", args=[postmortem.pk]),
        _form_data(postmortem, summary="**bold** <script>alert('pm')</script>"),
        HTTP_HX_REQUEST="true",
    )
    html = response.content.decode()
    assert "<strong>bold</strong>" in html
    assert "<script>alert" not in html
    assert "&lt;script&gt;" in html


def test_markdown_export_and_printable_page(viewer, postmortem, commander):
    services.postmortem_update(
        postmortem_id=postmortem.pk,
        expected_version=1,
        changes={"root_cause": "Missing index on `orders(customer_id)`"},
        actor=commander,
    )
    services.action_item_create(
        postmortem_id=postmortem.pk, title="Add the index", category="performance", actor=commander
    )
    client = _client(viewer)
    response = client.get(reverse("postmortems:export-markdown", args=[postmortem.pk]))
    assert response["Content-Type"].startswith("text/markdown")
    assert "attachment" in response["Content-Disposition"]
    text = response.content.decode()
    assert text.startswith(f"# Postmortem: {postmortem.title}")
    assert "## Root cause\n\nMissing index on `orders(customer_id)`" in text
    assert "| Time to resolve |" in text or "Time to resolve" in text
    assert "- [ ] **Add the index**" in text
    lines = text.splitlines()
    for n, line in enumerate(lines):
        if line.startswith("## "):  # e.g. "## Actions taken" right after the timeline
            assert lines[n - 1] == "", (line, lines[n - 1])
    page = client.get(reverse("postmortems:print", args=[postmortem.pk]))
    assert page.status_code == 200
    assert b"<code>orders(customer_id)</code>" in page.content


def test_action_item_form_via_htmx_keeps_input_on_error(responder, postmortem):
    client = _client(responder)
    url = reverse("postmortems:action-item-create", args=[postmortem.pk])
    bad = client.post(
        url,
        {"title": "Alert on lag", "category": "monitoring", "tracker_url": "not a url !"},
        HTTP_HX_REQUEST="true",
    )
    assert bad.status_code == 400
    assert 'value="Alert on lag"' in bad.content.decode()
    assert not ActionItem.objects.exists()
    good = client.post(
        url,
        {
            "title": "Alert on lag",
            "category": "monitoring",
            "owner": responder.pk,
            "due_date": "2030-01-15",
            "tracker_url": "https://tracker.example.com/OPS-1",
        },
        HTTP_HX_REQUEST="true",
    )
    assert good.status_code == 200
    assert "Alert on lag" in good.content.decode()
    item = ActionItem.objects.get()
    assert item.owner == responder and item.due_date == datetime.date(2030, 1, 15)


def test_overdue_list_page(responder, postmortem, commander):
    services.action_item_create(
        postmortem_id=postmortem.pk,
        title="Late one",
        category="scaling",
        owner=commander,
        due_date=timezone.localdate() - datetime.timedelta(days=2),
        actor=commander,
    )
    services.action_item_create(
        postmortem_id=postmortem.pk, title="Not due", category="scaling", actor=commander
    )
    page = _client(responder).get(reverse("postmortems:action-items") + "?overdue=1")
    html = page.content.decode()
    assert "Late one" in html and "Not due" not in html


def test_schedule_review_from_the_page_and_download_ics(responder, postmortem):
    client = _client(responder)
    starts = timezone.localtime() + datetime.timedelta(days=1)
    response = client.post(
        reverse("postmortems:review-schedule", args=[postmortem.pk]),
        {
            "starts_at": starts.strftime("%Y-%m-%dT%H:%M"),
            "duration_minutes": 45,
            "location": "Room 4",
            "extra_attendees": "sre-lead@example.com",
        },
    )
    assert response.status_code == 302
    review = Review.objects.get()
    assert review.duration_minutes == 45
    assert any(a["email"] == "sre-lead@example.com" for a in review.attendees)
    ics = client.get(reverse("postmortems:review-ics", args=[review.pk]))
    assert ics["Content-Type"].startswith("text/calendar")
    cal = Calendar.from_ical(ics.content)
    event = next(c for c in cal.walk() if c.name == "VEVENT")
    assert str(event["UID"]) == review.uid
    assert str(event["LOCATION"]) == "Room 4"


def test_schedule_review_in_the_past_is_a_form_error(responder, postmortem):
    response = _client(responder).post(
        reverse("postmortems:review-schedule", args=[postmortem.pk]),
        {"starts_at": "2020-01-01T10:00", "duration_minutes": 60},
    )
    assert response.status_code == 400
    assert "must start in the future" in response.content.decode()


def test_publish_needs_a_commander_and_closes_the_incident(responder, commander, postmortem):
    services.postmortem_update(
        postmortem_id=postmortem.pk,
        expected_version=1,
        changes={"summary": "s", "impact": "i", "root_cause": "r"},
        actor=commander,
    )
    url = reverse("postmortems:status", args=[postmortem.pk])
    assert _client(responder).post(url, {"action": "submit"}).status_code == 302
    assert _client(responder).post(url, {"action": "publish"}).status_code == 403
    page = _client(commander).get(reverse("postmortems:detail", args=[postmortem.pk])).content
    assert b"the review has not been held" in page.lower() and b'name="override"' in page
    refused = _client(commander).post(url, {"action": "publish"}, follow=True)
    assert "needs confirmation" in refused.content.decode()
    postmortem.refresh_from_db()
    assert postmortem.status == PostmortemStatus.IN_REVIEW
    _client(commander).post(url, {"action": "publish", "override": "1"})
    postmortem.refresh_from_db()
    postmortem.incident.refresh_from_db()
    assert postmortem.status == PostmortemStatus.PUBLISHED
    assert postmortem.incident.status == Status.CLOSED


def test_publish_errors_are_shown_not_lost(commander, postmortem):
    client = _client(commander)
    url = reverse("postmortems:status", args=[postmortem.pk])
    response = client.post(url, {"action": "publish"}, follow=True)
    assert "Submit the postmortem for review" in response.content.decode()


def test_submit_from_the_editor_saves_the_typed_text_first(responder, postmortem):
    """The editor's status buttons send its form: text typed since the last autosave is saved
    before the postmortem goes to review, not left behind in the browser."""
    client = _client(responder)
    page = client.get(reverse("postmortems:detail", args=[postmortem.pk])).content.decode()
    status_url = reverse("postmortems:status", args=[postmortem.pk])
    assert f'form="pm-form" formaction="{status_url}" name="action" value="submit"' in page
    typed = _form_data(
        postmortem,
        summary="Writes failed after a failover",
        impact="Checkout refused orders for 9 minutes",
        action="submit",
    )
    response = client.post(status_url, typed, follow=True)
    postmortem.refresh_from_db()
    assert postmortem.status == PostmortemStatus.IN_REVIEW
    assert postmortem.impact == "Checkout refused orders for 9 minutes"
    assert postmortem.version == 2
    html = response.content.decode()
    assert "Saved (version 2)." in html and "Submitted for review." in html


def test_a_refused_save_changes_no_status_and_keeps_the_text(responder, commander, postmortem):
    services.postmortem_update(
        postmortem_id=postmortem.pk,
        expected_version=1,
        changes={"root_cause": "Autovacuum disabled on orders"},
        actor=commander,
    )
    url = reverse("postmortems:status", args=[postmortem.pk])
    typed = _form_data(postmortem, root_cause="Lock storm from a migration", action="submit")
    response = _client(responder).post(url, typed)
    assert response.status_code == 409
    assert "Lock storm from a migration" in response.content.decode()
    postmortem.refresh_from_db()
    assert postmortem.status == PostmortemStatus.DRAFT
    assert postmortem.root_cause == "Autovacuum disabled on orders"


def test_publish_from_the_editor_is_refused_before_anything_is_saved(responder, postmortem):
    _in_review(postmortem, responder)
    url = reverse("postmortems:status", args=[postmortem.pk])
    typed = _form_data(postmortem, impact="typed by a responder", action="publish", override="1")
    assert _client(responder).post(url, typed).status_code == 403
    postmortem.refresh_from_db()
    assert postmortem.impact != "typed by a responder"
    assert postmortem.status == PostmortemStatus.IN_REVIEW


def test_publish_from_the_editor_saves_then_publishes(commander, postmortem):
    _in_review(postmortem, commander)
    url = reverse("postmortems:status", args=[postmortem.pk])
    typed = _form_data(
        postmortem, summary="s", impact="i", root_cause="r", action="publish", override="1"
    )
    _client(commander).post(url, typed)
    postmortem.refresh_from_db()
    assert (postmortem.status, postmortem.impact) == (PostmortemStatus.PUBLISHED, "i")


def test_incident_panel_links_the_postmortem(rf, commander, postmortem):
    request = rf.get("/")
    request.user = commander
    html = render_to_string(
        "postmortems/incident_panel.html",
        {"incident": postmortem.incident, "request": request, "user": commander},
    )
    assert reverse("postmortems:detail", args=[postmortem.pk]) in html
    assert "Draft" in html
    assert "Review due" in html


@pytest.mark.parametrize("name", ["list", "action-items"])
def test_list_pages_render(viewer, postmortem, name):
    assert _client(viewer).get(reverse(f"postmortems:{name}")).status_code == 200


def test_list_page_queries_do_not_grow_with_rows(
    viewer, incident_factory, resolve, commander, django_assert_max_num_queries
):
    for n in range(4):
        incident = resolve(incident_factory(title=f"Incident {n}", staffed=False), commander)
        services.review_schedule(
            postmortem_id=incident.postmortem.pk,
            actor=commander,
            extra_attendees=["ops@example.com"],
        )
    client = _client(viewer)
    client.get(reverse("postmortems:list"))  # warm caches (sessions, groups)
    with django_assert_max_num_queries(12):
        response = client.get(reverse("postmortems:list"))
    assert response.content.decode().count("scheduled") >= 4


def test_action_item_edit_page_changes_owner_and_status(responder, commander, postmortem):
    item = services.action_item_create(
        postmortem_id=postmortem.pk, title="Runbook for restores", category="playbook",
        actor=commander,
    )  # fmt: skip
    client = _client(responder)
    url = reverse("postmortems:action-item-edit", args=[item.pk])
    page = client.get(url)
    assert page.status_code == 200 and "Runbook for restores" in page.content.decode()
    response = client.post(
        url,
        {
            "title": "Runbook for restores",
            "category": "backup_recovery",
            "owner": responder.pk,
            "due_date": "2030-02-01",
            "status": "done",
        },
    )
    assert response.status_code == 302
    item.refresh_from_db()
    assert item.category == "backup_recovery" and item.owner == responder
    assert item.status == "done" and item.completed_by == responder
    bad = client.post(url, {"title": "", "category": "playbook", "status": "open"})
    assert bad.status_code == 400


def test_start_page_for_a_sev4_incident(responder, incident_factory, resolve, commander):
    incident = resolve(incident_factory(severity="SEV4", staffed=False), commander)
    client = _client(responder)
    url = reverse("postmortems:for-incident", args=[incident.pk])
    assert b"Start a postmortem" in client.get(url).content
    response = client.post(url)
    assert response.status_code == 302
    assert incident.__class__.objects.get(pk=incident.pk).postmortem.status == "draft"
    assert client.get(url).status_code == 302  # now it just leads to the postmortem


def test_status_changes_are_refused_to_viewers(viewer, postmortem):
    url = reverse("postmortems:status", args=[postmortem.pk])
    assert _client(viewer).post(url, {"action": "submit"}).status_code == 403
    postmortem.refresh_from_db()
    assert postmortem.status == PostmortemStatus.DRAFT
