"""One display name everywhere, and the remediation form's text inputs (issue 13, item 11)."""

import re

import pytest
from django.test import Client

from incidents import services
from incidents.models import EventKind
from incidents.names import display_name
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_display_name_is_the_full_name_or_the_username():
    named = UserFactory(username="demo-commander", first_name="Dana", last_name="Reyes")
    plain = UserFactory(username="demo-responder")
    assert display_name(named) == "Dana Reyes"
    assert display_name(plain) == "demo-responder"
    assert display_name(None) == ""


def test_timeline_and_team_panel_name_the_same_person_the_same_way(incident, commander):
    ic = UserFactory(
        username="demo-commander", first_name="Dana", last_name="Reyes", role="commander"
    )
    services.role_assign(incident_id=incident.pk, role="incident_commander", user=ic, actor=ic)
    event = incident.timeline.filter(kind=EventKind.ROLE_ASSIGNED).latest("id")
    assert event.message.startswith("Dana Reyes is now Incident Commander")
    assert "self-assigned" in event.message
    assert event.data["username"] == "demo-commander"  # the data keeps the login
    assert event.actor_display == "Dana Reyes"
    client = Client()
    client.force_login(commander)
    html = client.get(f"/incidents/{incident.pk}/").content.decode()
    assert "Dana Reyes is now Incident Commander" in html
    assert "demo-commander is now" not in html


def test_remediation_text_inputs_say_type_text(incident):
    from diagnostics.models import IncidentTarget, TargetDatabase

    target = TargetDatabase.objects.create(
        name="shop", host="127.0.0.1", database="shop", remediation_allowed=True
    )
    IncidentTarget.objects.create(incident=incident, target=target)
    client = Client()
    client.force_login(UserFactory(role="commander"))
    html = client.get(f"/incidents/{incident.pk}/remediation/").content.decode()
    for name in ("user", "application", "query_contains"):
        tag = re.search(rf'<input[^>]*name="{name}"[^>]*>', html)
        assert tag, name
        assert 'type="text"' in tag.group(0), tag.group(0)


def test_the_runbook_panel_names_who_started_and_ticked_by_display_name(incident):
    from diagnostics.remediation.runbooks import services as runbooks

    ic = UserFactory(
        username="demo-commander", first_name="Dana", last_name="Reyes", role="commander"
    )
    run, _ = runbooks.runbook_start(incident_id=incident.pk, runbook="quick-mitigation", actor=ic)
    step = run.steps.order_by("position").first()
    runbooks.runbook_step_set(
        incident_id=incident.pk, run_id=run.pk, step_id=step.pk, done=True, actor=ic
    )
    client = Client()
    client.force_login(ic)
    html = client.get(f"/incidents/{incident.pk}/runbooks/").content.decode()
    assert "started by Dana Reyes" in html and "done by Dana Reyes" in html
    assert "demo-commander" not in html
