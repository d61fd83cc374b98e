"""From a diagnostics finding to its fix (issue 13, item 3): the remediation panel opened with a
finding's pid and backend_start previews that very session and says it is the root blocker."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from diagnostics.remediation.models import RemediationAction
from tests.diagnostics.remediation_support import IDLE_IN_TX
from tests.factories import UserFactory

pytestmark = pytest.mark.usefixtures("quick_confirmation")


def _client(user):
    client = Client()
    client.force_login(user)
    return client


def _url(incident, target, pid, start, **extra):
    query = {
        "remediate": "terminate",
        "target": target.pk,
        "pid": pid,
        "backend_start": start,
        "finding": "blocking_locks",
        **extra,
    }
    base = reverse("remediation:incident-remediation", args=[incident.pk])
    return base + "?" + "&".join(f"{k}={v}" for k, v in query.items()).replace("+", "%2B")


def test_the_preview_opens_for_the_root_blocker_itself(
    plant, server, scratch, target, incident, commander_user
):
    idle = plant(IDLE_IN_TX, wait="state = 'idle in transaction'")
    start = server.backend(idle.pid, scratch)[1].isoformat()
    response = _client(commander_user).get(_url(incident, target, idle.pid, start, root_of=2))
    html = response.content.decode()
    assert response.status_code == 200
    assert f"pid {idle.pid} is the root blocker</strong> of the blocking chain" in html
    assert "it blocks 2 sessions" in html and "that very session" in html
    assert f'value="{idle.pid}|' in html and "checked aria-label" in html
    assert RemediationAction.objects.filter(incident=incident, status="previewed").count() == 1


def test_a_pid_now_used_by_another_session_is_left_unticked(
    plant, server, scratch, target, incident, commander_user
):
    idle = plant(IDLE_IN_TX, wait="state = 'idle in transaction'")
    html = (
        _client(commander_user)
        .get(_url(incident, target, idle.pid, "2001-01-01T00:00:00+00:00", root_of=1))
        .content.decode()
    )
    assert f"pid {idle.pid} is now a different session" in html
    assert f'value="{idle.pid}|' in html and "checked aria-label" not in html


def test_someone_who_may_not_remediate_sees_the_form_filled_and_who_may(
    plant, server, scratch, target, incident
):
    idle = plant(IDLE_IN_TX, wait="state = 'idle in transaction'")
    start = server.backend(idle.pid, scratch)[1].isoformat()
    responder = UserFactory(role="responder")
    html = _client(responder).get(_url(incident, target, idle.pid, start)).content.decode()
    assert f"pid {idle.pid} is the root blocker" not in html  # no root_of: a plain finding
    assert f"<strong>pid {idle.pid}</strong>, found by diagnostics" in html
    assert "Only a commander" in html
    assert not RemediationAction.objects.filter(incident=incident).exists()


def test_an_address_without_a_whole_finding_shows_the_plain_panel(target, incident, commander_user):
    client = _client(commander_user)
    base = reverse("remediation:incident-remediation", args=[incident.pk])
    for query in ("?remediate=explode&pid=1", "?remediate=terminate&pid=x", "?pid=5"):
        response = client.get(base + query)
        assert response.status_code == 200
        assert "quell-rem-finding" not in response.content.decode()
    assert not RemediationAction.objects.filter(incident=incident).exists()
