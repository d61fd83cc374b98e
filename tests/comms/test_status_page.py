import datetime
import json
import re
import xml.etree.ElementTree as ET

import pytest
from django.core import mail, signing
from django.test import Client
from django.utils import timezone

from comms import services
from comms.models import (
    Delivery,
    DeliveryKind,
    DeliveryState,
    MessageTemplate,
    StatusUpdate,
    Subscriber,
)
from comms.tasks import delivery_send
from incidents import services as incident_services
from incidents.models import Status
from tests.factories import fresh_client_ip

pytestmark = pytest.mark.django_db

SECRET_INTERNAL = "INTERNAL-ONLY: replica lag on pg-orders-2 is 9 minutes, blame deploy 4411"


@pytest.fixture
def public_incident(incident_factory, commander):
    """A SEV2 with one internal update (secret text) and one external update."""
    incident = incident_factory(severity="SEV2", functionality_impacted="Checkout")
    internal = MessageTemplate.objects.get(key="internal-update")
    services.update_create_and_publish(
        incident_id=incident.pk,
        template_id=internal.pk,
        actor=commander,
        subject="Internal update",
        body=SECRET_INTERNAL,
    )
    external = MessageTemplate.objects.get(key="external-investigating")
    services.update_create_and_publish(
        incident_id=incident.pk, template_id=external.pk, actor=commander
    )
    return incident


def test_status_page_shows_external_updates_never_internal_text(public_incident):
    client = Client()
    html = client.get("/status/").content.decode()
    data = client.get("/status/index.json").content.decode()
    feed = client.get("/status/feed.atom").content.decode()
    for text in (html, data, feed):
        assert "Our team is investigating the issue" in text
        assert SECRET_INTERNAL not in text
        assert "replica lag" not in text
        # The internal incident title and channel stay internal too.
        assert public_incident.title not in text
        assert public_incident.channel_name not in text
    assert "Partial outage" in html or "Degraded" in html


def test_json_is_valid_and_lists_current_incidents(public_incident):
    response = Client().get("/status/index.json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    data = json.loads(response.content)
    assert data["status"]["state"] != "operational"
    [current] = data["incidents"]
    assert current["id"] == public_incident.pk
    assert current["status"] == "investigating"
    assert current["impact"] == "major"
    assert len(current["updates"]) == 1
    assert data["history"] == [] and data["history_days"] == 90


def test_atom_feed_is_valid_xml_with_one_entry_per_external_update(public_incident):
    response = Client().get("/status/feed.atom")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/atom+xml")
    root = ET.fromstring(response.content)  # noqa: S314  (our own output)
    ns = {"a": "http://www.w3.org/2005/Atom"}
    assert root.tag == "{http://www.w3.org/2005/Atom}feed"
    assert root.find("a:updated", ns) is not None
    entries = root.findall("a:entry", ns)
    assert len(entries) == 1
    entry = entries[0]
    for tag in ("title", "id", "updated", "link"):
        assert entry.find(f"a:{tag}", ns) is not None
    assert "Investigating" in entry.find("a:title", ns).text


def test_empty_status_page_is_operational_and_feed_still_valid():
    client = Client()
    assert "All systems operational" in client.get("/status/").content.decode()
    root = ET.fromstring(client.get("/status/feed.atom").content)  # noqa: S314  (our own output)
    assert root.find("{http://www.w3.org/2005/Atom}updated").text


def test_cached_page_is_served_without_database_queries(public_incident, django_assert_num_queries):
    client = Client()
    first = client.get("/status/")
    client.get("/status/index.json")
    client.get("/status/feed.atom")
    with django_assert_num_queries(0):
        again = client.get("/status/")
        client.get("/status/index.json")
        client.get("/status/feed.atom")
    assert again.content == first.content


def test_publishing_invalidates_the_cached_page(
    public_incident, commander, django_capture_on_commit_callbacks
):
    client = Client()
    client.get("/status/")
    template = MessageTemplate.objects.get(key="external-resolved")
    with django_capture_on_commit_callbacks(execute=True):
        draft = services.update_create(
            incident_id=public_incident.pk, template_id=template.pk, actor=commander
        )
        services.update_edit(
            update_id=draft.pk,
            actor=commander,
            body=re.sub(r"\[TO FILL:[^\]]*\]", "No data was lost.", draft.body),
        )
        services.update_publish(update_id=draft.pk, actor=commander)
    data = json.loads(client.get("/status/index.json").content)
    assert data["incidents"] == []
    assert [h["id"] for h in data["history"]] == [public_incident.pk]
    assert data["status"]["state"] == "operational"


def test_history_keeps_ninety_days(public_incident, commander):
    old = timezone.now() - datetime.timedelta(days=120)
    template = MessageTemplate.objects.get(key="external-resolved")
    draft = services.update_create(
        incident_id=public_incident.pk,
        template_id=template.pk,
        actor=commander,
        body="Resolved. No data was lost.",
    )
    services.update_publish(update_id=draft.pk, actor=commander)
    StatusUpdate.objects.filter(incident=public_incident).update(published_at=old)
    data = json.loads(Client().get("/status/index.json").content)
    assert data["history"] == [] and data["incidents"] == []


def test_overdue_notice_when_no_update_past_cadence(public_incident):
    # SEV2: hourly after the first external update.
    past = timezone.now() - datetime.timedelta(minutes=90)
    StatusUpdate.objects.filter(incident=public_incident).update(published_at=past)
    html = Client().get("/status/").content.decode()
    assert "No update has been posted since" in html
    data = json.loads(Client().get("/status/index.json").content)
    assert data["incidents"][0]["update_overdue"] is True


def test_components_take_the_states_authors_confirm(incident_factory, commander):
    from diagnostics.models import IncidentTarget, TargetDatabase

    target = TargetDatabase.objects.create(name="orders-db", host="127.0.0.1", database="orders")
    comp = services.component_save(actor=commander, name="Checkout", targets=[target.pk])
    other = services.component_save(actor=commander, name="Search")
    incident = incident_factory(severity="SEV1")
    IncidentTarget.objects.create(incident=incident, target=target)
    template = MessageTemplate.objects.get(key="external-investigating")
    preview = services.update_preview(incident_id=incident.pk, template_id=template.pk)
    # The mapped component is proposed at the severity's impact; others are left alone.
    assert preview.component_states == {str(comp.pk): "major_outage"}
    # The author confirms a milder state.
    update = services.update_create(
        incident_id=incident.pk,
        template_id=template.pk,
        actor=commander,
        component_states={str(comp.pk): "partial_outage"},
    )
    services.update_publish(update_id=update.pk, actor=commander)
    comp.refresh_from_db()
    other.refresh_from_db()
    assert comp.state == "partial_outage" and other.state == "operational"
    data = json.loads(Client().get("/status/index.json").content)
    assert data["status"]["state"] == "partial_outage"
    assert {c["name"]: c["state"] for c in data["components"]} == {
        "Checkout": "partial_outage",
        "Search": "operational",
    }


def test_subscription_double_opt_in_and_one_click_unsubscribe(
    public_incident, commander, django_capture_on_commit_callbacks
):
    client = Client(enforce_csrf_checks=True)
    # The cached status page links to the subscribe page, whose form carries a CSRF token.
    assert b'href="/status/subscribe/"' in client.get("/status/").content
    form_page = client.get("/status/subscribe/")
    assert form_page.status_code == 200
    csrf = form_page.context["csrf_token"]
    assert csrf
    assert b"csrfmiddlewaretoken" in form_page.content
    response = client.post(
        "/status/subscribe/", {"email": "Reader@Example.com", "csrfmiddlewaretoken": str(csrf)}
    )
    assert response.status_code == 200
    sub = Subscriber.objects.get()
    assert sub.confirmed_at is None
    confirmation = Delivery.objects.get(kind=DeliveryKind.CONFIRMATION)
    delivery_send(confirmation.pk)
    [message] = mail.outbox
    link = re.search(r"http://status.test(/status/subscribe/confirm/\S+/)", message.body).group(1)

    # Not confirmed: external updates do not reach the address.
    template = MessageTemplate.objects.get(key="external-monitoring")
    body = "A fix has been applied and we are monitoring."
    services.update_create_and_publish(
        incident_id=public_incident.pk, template_id=template.pk, actor=commander, body=body
    )
    assert not Delivery.objects.filter(subscriber=sub, kind=DeliveryKind.UPDATE).exists()

    # GET shows a Confirm button and changes nothing (mail scanners open every link).
    confirm_page = client.get(link)
    assert confirm_page.status_code == 200
    assert b"Confirm subscription" in confirm_page.content
    sub.refresh_from_db()
    assert not sub.is_active
    # The button POSTs with the page's CSRF token; without it the POST is refused.
    assert client.post(link).status_code == 403
    confirmed = client.post(link, {"csrfmiddlewaretoken": str(confirm_page.context["csrf_token"])})
    assert confirmed.status_code == 200
    sub.refresh_from_db()
    assert sub.is_active
    services.update_create_and_publish(
        incident_id=public_incident.pk, template_id=template.pk, actor=commander, body=body
    )
    delivery = Delivery.objects.get(subscriber=sub, kind=DeliveryKind.UPDATE)
    assert delivery_send(delivery.pk) == DeliveryState.DELIVERED
    update_mail = mail.outbox[-1]
    assert update_mail.to == ["Reader@Example.com"]
    assert body in update_mail.body
    assert SECRET_INTERNAL not in update_mail.body
    assert update_mail.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsub = re.search(r"http://status.test(/status/unsubscribe/\S+/)", update_mail.body).group(1)

    # GET only asks (mail scanners follow links); the one click is the POST.
    assert client.get(unsub).status_code == 200
    sub.refresh_from_db()
    assert sub.is_active
    assert client.post(unsub).status_code == 200
    sub.refresh_from_db()
    assert sub.unsubscribed_at is not None and not sub.is_active


def test_subscribe_rejects_bad_addresses_and_bad_tokens():
    client = Client()
    response = client.post("/status/subscribe/", {"email": "not-an-address"})
    assert response.status_code == 400
    assert Subscriber.objects.count() == 0
    assert client.get("/status/subscribe/confirm/garbage/").status_code == 400
    assert client.post("/status/subscribe/confirm/garbage/").status_code == 400
    assert client.post("/status/unsubscribe/garbage/").status_code == 400
    sub = Subscriber.objects.create(email="a@example.com")
    expired = signing.dumps({"s": sub.pk, "e": sub.email}, salt=services.CONFIRM_SALT)
    with pytest.raises(services.CommsError, match="expired"):
        services._load_token(expired, salt=services.CONFIRM_SALT, max_age=-1)


def test_repeated_subscribe_does_not_flood_the_inbox():
    services.subscriber_subscribe(email="a@example.com")
    services.subscriber_subscribe(email="A@example.com")
    assert Subscriber.objects.count() == 1
    assert Delivery.objects.filter(kind=DeliveryKind.CONFIRMATION).count() == 1


def test_resolved_incident_without_public_resolution_still_shows_current(
    public_incident, commander
):
    incident_services.incident_transition(
        incident_id=public_incident.pk, to_status=Status.RESOLVED, actor=commander
    )
    data = json.loads(Client().get("/status/index.json").content)
    # The page says what was communicated; the panel nags the author to publish it.
    assert [i["id"] for i in data["incidents"]] == [public_incident.pk]
    assert data["incidents"][0]["update_overdue"] is False


def test_fast_path_headers_and_methods():
    client = Client()
    response = client.get("/status/")
    assert response.status_code == 200
    assert response["Cache-Control"] == "public, max-age=15"
    assert response["X-Frame-Options"] == "DENY"
    assert client.get("/status/index.json")["Access-Control-Allow-Origin"] == "*"
    # Anything but GET goes through the normal stack and its method check.
    assert client.post("/status/").status_code == 405
    assert client.head("/status/").status_code == 200


def test_page_still_served_when_the_cache_is_down(settings, public_incident):
    settings.CACHES = {
        **settings.CACHES,
        "broken": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
        },
    }
    settings.QUELL_STATUS_PAGE_CACHE_ALIAS = "broken"
    settings.QUELL_STATUS_PAGE_LOCAL_SECONDS = 0
    from comms import status_cache

    status_cache.invalidate()  # logs, does not raise
    response = Client().get("/status/")
    assert response.status_code == 200
    assert "Our team is investigating the issue" in response.content.decode()


def test_gzip_is_served_to_clients_that_accept_it(public_incident):
    import gzip

    client = Client()
    plain = client.get("/status/")
    packed = client.get("/status/", HTTP_ACCEPT_ENCODING="gzip, deflate, br")
    assert packed["Content-Encoding"] == "gzip"
    assert packed["Vary"] == "Accept-Encoding"
    assert "Content-Encoding" not in plain
    assert gzip.decompress(packed.content) == plain.content
    assert len(packed.content) < len(plain.content)


def test_subscribe_form_is_rate_limited_per_client(settings):
    settings.QUELL_STATUS_SUBSCRIBE_PER_HOUR = 3
    client = Client(REMOTE_ADDR=fresh_client_ip())
    responses = [
        client.post("/status/subscribe/", {"email": f"u{i}@example.com"}) for i in range(4)
    ]
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert 0 < int(responses[-1]["Retry-After"]) <= 3600
    assert Subscriber.objects.count() == 3


def test_subscribe_rate_limit_counts_the_client_behind_the_proxy(settings):
    """Behind a proxy every request comes from the proxy's address; the limit must count the
    client named in the trusted header, so one client cannot lock out everyone else."""
    settings.QUELL_STATUS_SUBSCRIBE_PER_HOUR = 2
    settings.QUELL_TRUSTED_PROXY_COUNT = 1
    settings.QUELL_CLIENT_IP_HEADER = "X-Forwarded-For"
    proxy = fresh_client_ip()
    greedy, other = fresh_client_ip(), fresh_client_ip()

    def post(client_ip, n):
        return (
            Client(REMOTE_ADDR=proxy)
            .post(
                "/status/subscribe/",
                {"email": f"p{n}@example.com"},
                # A spoofed entry first: only the one the trusted proxy appended counts.
                HTTP_X_FORWARDED_FOR=f"{fresh_client_ip()}, {client_ip}",
            )
            .status_code
        )

    assert [post(greedy, n) for n in range(3)] == [200, 200, 429]
    assert post(other, 3) == 200


def test_component_uptime_counts_outages_over_ninety_days(commander):
    from comms import selectors
    from comms.models import ComponentStateChange

    now = timezone.now()
    comp = services.component_save(actor=commander, name="Orders")
    start = now - datetime.timedelta(days=10)
    ComponentStateChange.objects.create(component=comp, state="major_outage", changed_at=start)
    ComponentStateChange.objects.create(
        component=comp, state="degraded", changed_at=start + datetime.timedelta(hours=6)
    )
    ComponentStateChange.objects.create(
        component=comp, state="partial_outage", changed_at=start + datetime.timedelta(hours=7)
    )
    ComponentStateChange.objects.create(
        component=comp, state="operational", changed_at=start + datetime.timedelta(hours=10)
    )
    since = now - datetime.timedelta(days=90)
    uptime = selectors.component_uptime(components=[comp], since=since, now=now)
    # 6 h major + 3 h partial outage; degraded does not count as down.
    assert uptime[comp.pk] == round(100 * (1 - 9 / (90 * 24)), 2)
    services.component_set_state(component_id=comp.pk, state="major_outage", actor=commander)
    assert ComponentStateChange.objects.filter(component=comp).count() == 5
    data = json.loads(Client().get("/status/index.json").content)
    assert data["components"][0]["uptime_percent"] <= uptime[comp.pk]


def test_conditional_get_answers_not_modified_until_the_page_changes(public_incident, commander):
    client = Client()
    first = client.get("/status/")
    etag = first["ETag"]
    again = client.get("/status/", HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304 and again.content == b""
    gz = client.get("/status/", HTTP_ACCEPT_ENCODING="gzip")
    assert gz["ETag"] != etag
    from comms import status_cache

    services.component_save(actor=commander, name="Billing")
    status_cache.invalidate()  # what the save's on_commit does
    changed = client.get("/status/", HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200 and "Billing" in changed.content.decode()


@pytest.mark.django_db(transaction=True)
def test_confirm_and_unsubscribe_links_work_outside_a_test_transaction(settings):
    """As in production: no transaction around the request. The confirm page's GET used to lock
    the subscriber with select_for_update outside any transaction, a 500 on every link."""
    settings.QUELL_BASE_URL = "http://status.test"
    services.subscriber_subscribe(email="reader@example.com")
    delivery_send(Delivery.objects.get(kind=DeliveryKind.CONFIRMATION).pk)
    [message] = mail.outbox
    confirm = re.search(r"http://status.test(/status/subscribe/confirm/\S+/)", message.body)[1]
    client = Client()
    page = client.get(confirm)
    assert page.status_code == 200, page.content[:300]
    assert b"Confirm subscription" in page.content
    assert client.post(confirm).status_code == 200
    sub = Subscriber.objects.get()
    assert sub.confirmed_at is not None
    unsubscribe = services.unsubscribe_url(sub).removeprefix("http://status.test")
    assert client.get(unsubscribe).status_code == 200
    assert client.post(unsubscribe).status_code == 200
    sub.refresh_from_db()
    assert sub.unsubscribed_at is not None
