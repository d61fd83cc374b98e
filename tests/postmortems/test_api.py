"""The postmortems API: authentication, role checks, versions, action items, reviews."""

import datetime

import pytest
from django.utils import timezone
from icalendar import Calendar
from rest_framework.test import APIClient

from postmortems import services
from postmortems.models import ActionItem, PostmortemStatus, Review


@pytest.mark.parametrize(
    "url",
    ["/api/v1/postmortems/", "/api/v1/action-items/", "/api/v1/reviews/"],
)
def test_api_needs_authentication(db, url):
    assert APIClient().get(url).status_code in (401, 403)


def test_user_without_a_role_is_refused(db, postmortem):
    from tests.factories import UserFactory

    client = APIClient()
    client.force_authenticate(UserFactory(username="nobody"))
    assert client.get("/api/v1/postmortems/").status_code == 403


def test_viewer_reads_but_cannot_write(viewer_api, postmortem):
    listing = viewer_api.get("/api/v1/postmortems/")
    assert listing.status_code == 200
    assert listing.data["results"][0]["id"] == postmortem.pk
    detail = viewer_api.get(f"/api/v1/postmortems/{postmortem.pk}/")
    assert detail.data["version"] == 1
    assert {"totals", "stages"} == set(detail.data["response_times"])
    refused = viewer_api.patch(
        f"/api/v1/postmortems/{postmortem.pk}/", {"version": 1, "summary": "x"}, format="json"
    )
    assert refused.status_code == 403
    refused = viewer_api.post(
        "/api/v1/action-items/",
        {"postmortem": postmortem.pk, "title": "x", "category": "monitoring"},
        format="json",
    )
    assert refused.status_code == 403


def test_patch_with_stale_version_on_same_field_is_409_with_their_text(
    responder_api, commander, postmortem
):
    services.postmortem_update(
        postmortem_id=postmortem.pk,
        expected_version=1,
        changes={"summary": "Theirs"},
        actor=commander,
    )
    response = responder_api.patch(
        f"/api/v1/postmortems/{postmortem.pk}/", {"version": 1, "summary": "Mine"}, format="json"
    )
    assert response.status_code == 409
    assert response.data["conflicts"] == {"summary": "Theirs"}
    assert response.data["current_version"] == 2
    ok = responder_api.patch(
        f"/api/v1/postmortems/{postmortem.pk}/", {"version": 2, "summary": "Mine"}, format="json"
    )
    assert ok.status_code == 200
    assert ok.data["sections"]["summary"] == "Mine"
    assert ok.data["version"] == 3


def test_markdown_export_through_the_api(viewer_api, postmortem):
    response = viewer_api.get(f"/api/v1/postmortems/{postmortem.pk}/markdown/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/markdown")
    assert response.content.decode().startswith(f"# Postmortem: {postmortem.title}")


def test_patch_without_version_is_a_field_error(responder_api, postmortem):
    response = responder_api.patch(
        f"/api/v1/postmortems/{postmortem.pk}/", {"summary": "x"}, format="json"
    )
    assert response.status_code == 400
    assert "version" in response.data["errors"]


def test_publish_requires_commander_and_closes_the_incident(
    responder_api, commander_api, postmortem, commander
):
    services.postmortem_update(
        postmortem_id=postmortem.pk,
        expected_version=1,
        changes={"summary": "s", "impact": "i", "root_cause": "r"},
        actor=commander,
    )
    assert responder_api.post(f"/api/v1/postmortems/{postmortem.pk}/submit/").status_code == 200
    assert responder_api.post(f"/api/v1/postmortems/{postmortem.pk}/publish/").status_code == 403
    # The review has not been held: publishing asks for confirmation, and records who gave it.
    premature = commander_api.post(f"/api/v1/postmortems/{postmortem.pk}/publish/")
    assert premature.status_code == 400
    assert "the review has not been held" in premature.data["errors"]["override"][0]
    published = commander_api.post(
        f"/api/v1/postmortems/{postmortem.pk}/publish/", {"override": True}, format="json"
    )
    assert published.status_code == 200
    assert published.data["status"] == PostmortemStatus.PUBLISHED
    postmortem.incident.refresh_from_db()
    assert postmortem.incident.status == "closed"


def test_waive_needs_a_reason(commander_api, postmortem):
    response = commander_api.post(f"/api/v1/postmortems/{postmortem.pk}/waive/", {}, format="json")
    assert response.status_code == 400
    assert "reason" in response.data["errors"]


def test_action_items_api_create_filter_and_complete(responder_api, responder, postmortem):
    created = responder_api.post(
        "/api/v1/action-items/",
        {
            "postmortem": postmortem.pk,
            "title": "Backup restore drill",
            "category": "backup_recovery",
            "owner": responder.pk,
            "due_date": (timezone.localdate() - datetime.timedelta(days=1)).isoformat(),
            "tracker_url": "https://tracker.example.com/DB-7",
        },
        format="json",
    )
    assert created.status_code == 201, created.data
    assert created.data["overdue"] is True
    bad = responder_api.post(
        "/api/v1/action-items/",
        {"postmortem": postmortem.pk, "title": "x", "category": "astrology"},
        format="json",
    )
    assert bad.status_code == 400 and "category" in bad.data["errors"]
    overdue = responder_api.get("/api/v1/action-items/?overdue=true")
    assert [i["id"] for i in overdue.data["results"]] == [created.data["id"]]
    done = responder_api.post(f"/api/v1/action-items/{created.data['id']}/complete/")
    assert done.status_code == 200 and done.data["status"] == "done"
    assert responder_api.get("/api/v1/action-items/?overdue=true").data["count"] == 0


def test_reviews_api_propose_schedule_reschedule_cancel_and_ics(
    responder_api, postmortem, django_capture_on_commit_callbacks
):
    proposal = responder_api.get(f"/api/v1/postmortems/{postmortem.pk}/review-proposal/")
    assert proposal.status_code == 200
    assert proposal.data["invitees"]
    scheduled = responder_api.post(
        f"/api/v1/postmortems/{postmortem.pk}/review/",
        {"extra_attendees": ["cto@example.com"]},
        format="json",
    )
    assert scheduled.status_code == 201, scheduled.data
    review_id = scheduled.data["id"]
    uid = scheduled.data["uid"]
    later = timezone.now() + datetime.timedelta(days=2)
    moved = responder_api.post(
        f"/api/v1/reviews/{review_id}/reschedule/", {"starts_at": later.isoformat()}, format="json"
    )
    assert moved.status_code == 200
    assert moved.data["uid"] == uid and moved.data["sequence"] == 1
    upcoming = responder_api.get("/api/v1/reviews/?upcoming=true")
    assert [r["id"] for r in upcoming.data["results"]] == [review_id]
    cancelled = responder_api.post(
        f"/api/v1/reviews/{review_id}/cancel/", {"reason": "merged"}, format="json"
    )
    assert cancelled.data["status"] == "cancelled" and cancelled.data["sequence"] == 2
    ics = responder_api.get(f"/api/v1/reviews/{review_id}/ics/")
    assert ics["Content-Type"].startswith("text/calendar")
    cal = Calendar.from_ical(ics.content)
    assert str(cal["METHOD"]) == "CANCEL"
    assert Review.objects.get().status == "cancelled"


def test_schedule_in_the_past_is_400_with_field(responder_api, postmortem):
    response = responder_api.post(
        f"/api/v1/postmortems/{postmortem.pk}/review/",
        {"starts_at": "2020-01-01T10:00:00Z"},
        format="json",
    )
    assert response.status_code == 400
    assert "starts_at" in response.data["errors"]
    assert not ActionItem.objects.exists()
