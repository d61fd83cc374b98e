"""Who may call every API operation: one table, checked for six callers.

The operations come from the OpenAPI schema (drf-spectacular's endpoint enumeration), so a new
endpoint without a row here fails `test_every_api_operation_has_a_row`. Each call is made
against real rows (an incident with its own Incident Commander, a postmortem, a status-page
draft, a target on a closed port), inside a savepoint rolled back after it, and judged only as
refused (401/403) or not: no target is contacted beyond a refused connection on 127.0.0.1.

Callers: anonymous, viewer, responder, commander, admin, and "ic", a responder who is the
Incident Commander of the incident (and of the postmortem's incident).
"""

from __future__ import annotations

import pytest
from django.db import transaction
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from comms import services as comms_services
from diagnostics.models import IncidentTarget
from incidents import services as incident_services
from tests.diagnostics.records import make_target
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

ANON, VIEWER, RESPONDER, COMMANDER, ADMIN, IC = (
    "anonymous",
    "viewer",
    "responder",
    "commander",
    "admin",
    "ic",
)
CALLERS = (ANON, VIEWER, RESPONDER, COMMANDER, ADMIN, IC)

# Who is let through (everyone else gets 401 or 403).
READERS = {VIEWER, RESPONDER, COMMANDER, ADMIN, IC}
RESPONDERS = {RESPONDER, COMMANDER, ADMIN, IC}
COMMANDS = {COMMANDER, ADMIN, IC}  # commander group, admins, and this incident's IC
COMMANDER_GROUP = {COMMANDER, ADMIN}
ADMINS = {ADMIN}

# (method, path) -> who may. Paths are the schema's; {placeholders} are filled in by _path.
MATRIX: dict[tuple[str, str], set[str]] = {
    ("GET", "/api/v1/action-items/"): READERS,
    ("POST", "/api/v1/action-items/"): RESPONDERS,
    ("GET", "/api/v1/action-items/{action_item_id}/"): READERS,
    ("PATCH", "/api/v1/action-items/{action_item_id}/"): RESPONDERS,
    ("POST", "/api/v1/action-items/{action_item_id}/complete/"): RESPONDERS,
    ("POST", "/api/v1/alerts/alertmanager/"): RESPONDERS,
    ("POST", "/api/v1/alerts/webhook/"): RESPONDERS,
    ("GET", "/api/v1/comms/channels/"): ADMINS,
    ("POST", "/api/v1/comms/channels/"): ADMINS,
    ("GET", "/api/v1/comms/channels/{pk}/"): ADMINS,
    ("PUT", "/api/v1/comms/channels/{pk}/"): ADMINS,
    ("PATCH", "/api/v1/comms/channels/{pk}/"): ADMINS,
    ("DELETE", "/api/v1/comms/channels/{pk}/"): ADMINS,
    ("POST", "/api/v1/comms/channels/{pk}/test/"): ADMINS,
    ("GET", "/api/v1/comms/components/"): READERS,
    ("POST", "/api/v1/comms/components/"): ADMINS,
    ("GET", "/api/v1/comms/components/{pk}/"): READERS,
    ("PUT", "/api/v1/comms/components/{pk}/"): ADMINS,
    ("PATCH", "/api/v1/comms/components/{pk}/"): ADMINS,
    ("DELETE", "/api/v1/comms/components/{pk}/"): ADMINS,
    ("POST", "/api/v1/comms/components/{pk}/state/"): COMMANDER_GROUP,
    ("GET", "/api/v1/comms/deliveries/"): READERS,
    ("GET", "/api/v1/comms/deliveries/{pk}/"): READERS,
    ("POST", "/api/v1/comms/deliveries/{pk}/retry/"): RESPONDERS,
    ("POST", "/api/v1/comms/incidents/{incident_id}/preview/"): RESPONDERS,
    ("GET", "/api/v1/comms/incidents/{incident_id}/status/"): READERS,
    ("GET", "/api/v1/comms/incidents/{incident_id}/updates/"): READERS,
    # Published at once to the status page: the publishing roles only.
    ("POST", "/api/v1/comms/incidents/{incident_id}/updates/"): COMMANDS,
    ("GET", "/api/v1/comms/subscribers/"): ADMINS,
    ("GET", "/api/v1/comms/subscribers/{pk}/"): ADMINS,
    ("DELETE", "/api/v1/comms/subscribers/{pk}/"): ADMINS,
    ("GET", "/api/v1/comms/templates/"): READERS,
    ("POST", "/api/v1/comms/templates/"): ADMINS,
    ("GET", "/api/v1/comms/templates/{pk}/"): READERS,
    ("PUT", "/api/v1/comms/templates/{pk}/"): ADMINS,
    ("PATCH", "/api/v1/comms/templates/{pk}/"): ADMINS,
    ("GET", "/api/v1/comms/templates/variables/"): READERS,
    ("GET", "/api/v1/comms/updates/{pk}/"): READERS,
    ("PUT", "/api/v1/comms/updates/{pk}/"): RESPONDERS,
    ("PATCH", "/api/v1/comms/updates/{pk}/"): RESPONDERS,
    ("DELETE", "/api/v1/comms/updates/{pk}/"): RESPONDERS,
    # An external draft: publishing it is for the publishing roles.
    ("POST", "/api/v1/comms/updates/{pk}/publish/"): COMMANDS,
    ("GET", "/api/v1/diagnostics/checks/"): READERS,
    ("POST", "/api/v1/diagnostics/declare/"): RESPONDERS,
    ("GET", "/api/v1/diagnostics/incidents/{incident_id}/runbooks/"): READERS,
    ("POST", "/api/v1/diagnostics/incidents/{incident_id}/runbooks/"): RESPONDERS,
    (
        "POST",
        "/api/v1/diagnostics/incidents/{incident_id}/runbooks/{run_id}/steps/{step_id}/",
    ): RESPONDERS,
    ("GET", "/api/v1/diagnostics/incidents/{incident_id}/runs/"): READERS,
    ("GET", "/api/v1/diagnostics/incidents/{incident_id}/summary/"): READERS,
    ("GET", "/api/v1/diagnostics/incidents/{incident_id}/targets/"): READERS,
    ("POST", "/api/v1/diagnostics/incidents/{incident_id}/targets/"): RESPONDERS,
    ("DELETE", "/api/v1/diagnostics/incidents/{incident_id}/targets/{target_id}/"): RESPONDERS,
    ("GET", "/api/v1/diagnostics/integrity/checks/{pk}/"): READERS,
    ("PUT", "/api/v1/diagnostics/integrity/checks/{pk}/"): ADMINS,
    ("PATCH", "/api/v1/diagnostics/integrity/checks/{pk}/"): ADMINS,
    ("DELETE", "/api/v1/diagnostics/integrity/checks/{pk}/"): ADMINS,
    ("GET", "/api/v1/diagnostics/integrity/checks/{pk}/results/"): READERS,
    ("GET", "/api/v1/diagnostics/integrity/runs/{pk}/"): READERS,
    ("GET", "/api/v1/diagnostics/integrity/runs/{pk}/compare/"): READERS,
    ("GET", "/api/v1/diagnostics/remediations/"): READERS,
    ("GET", "/api/v1/diagnostics/remediations/{pk}/"): READERS,
    ("POST", "/api/v1/diagnostics/remediations/{pk}/execute/"): RESPONDERS,
    # On the incident's target: commanders, its IC and its Technical Lead (not a plain responder).
    ("POST", "/api/v1/diagnostics/remediations/preview/"): COMMANDS,
    ("GET", "/api/v1/diagnostics/runbooks/"): READERS,
    ("GET", "/api/v1/diagnostics/runs/"): READERS,
    ("POST", "/api/v1/diagnostics/runs/"): RESPONDERS,
    ("GET", "/api/v1/diagnostics/runs/{pk}/"): READERS,
    ("GET", "/api/v1/diagnostics/runs/{pk}/compare/"): READERS,
    ("GET", "/api/v1/diagnostics/targets/"): READERS,
    ("POST", "/api/v1/diagnostics/targets/"): ADMINS,
    ("GET", "/api/v1/diagnostics/targets/{pk}/"): READERS,
    ("PUT", "/api/v1/diagnostics/targets/{pk}/"): ADMINS,
    ("PATCH", "/api/v1/diagnostics/targets/{pk}/"): ADMINS,
    ("DELETE", "/api/v1/diagnostics/targets/{pk}/"): ADMINS,
    ("GET", "/api/v1/diagnostics/targets/{pk}/checks/{key}/results/"): READERS,
    ("GET", "/api/v1/diagnostics/targets/{pk}/integrity/checks/"): READERS,
    ("POST", "/api/v1/diagnostics/targets/{pk}/integrity/checks/"): ADMINS,
    ("POST", "/api/v1/diagnostics/targets/{pk}/integrity/checks/preview/"): ADMINS,
    ("GET", "/api/v1/diagnostics/targets/{pk}/integrity/runs/"): READERS,
    ("POST", "/api/v1/diagnostics/targets/{pk}/integrity/runs/"): RESPONDERS,
    ("GET", "/api/v1/diagnostics/targets/{pk}/integrity/suggestions/"): RESPONDERS,
    ("POST", "/api/v1/diagnostics/targets/{pk}/integrity/suggestions/"): ADMINS,
    ("GET", "/api/v1/diagnostics/targets/{pk}/runs/"): READERS,
    ("POST", "/api/v1/diagnostics/targets/{pk}/runs/"): RESPONDERS,
    ("POST", "/api/v1/diagnostics/targets/{pk}/test-connection/"): RESPONDERS,
    ("GET", "/api/v1/docs/"): READERS,
    ("GET", "/api/v1/incidents/"): READERS,
    ("POST", "/api/v1/incidents/"): RESPONDERS,
    ("GET", "/api/v1/incidents/{incident_id}/"): READERS,
    ("PATCH", "/api/v1/incidents/{incident_id}/"): RESPONDERS,
    ("POST", "/api/v1/incidents/{incident_id}/acknowledge/"): RESPONDERS,
    ("GET", "/api/v1/incidents/{incident_id}/roles/"): READERS,
    # Volunteering for Operations Lead (the role grants have rows of their own below).
    ("POST", "/api/v1/incidents/{incident_id}/roles/"): RESPONDERS,
    # Relieving the current Incident Commander.
    ("POST", "/api/v1/incidents/{incident_id}/roles/{assignment_id}/relieve/"): COMMANDS,
    ("POST", "/api/v1/incidents/{incident_id}/severity/"): COMMANDS,
    ("GET", "/api/v1/incidents/{incident_id}/alerts/"): READERS,
    ("GET", "/api/v1/incidents/{incident_id}/timeline/"): READERS,
    ("POST", "/api/v1/incidents/{incident_id}/timeline/"): RESPONDERS,
    ("POST", "/api/v1/incidents/{incident_id}/transition/"): COMMANDS,
    ("GET", "/api/v1/incidents/{incident_id}/triage/"): READERS,
    ("POST", "/api/v1/incidents/{incident_id}/triage/"): RESPONDERS,
    ("POST", "/api/v1/incidents/{incident_id}/triage/answer/"): RESPONDERS,
    # Applying the outcome regrades the incident: the call of its commanders.
    ("POST", "/api/v1/incidents/{incident_id}/triage/apply/"): COMMANDS,
    ("POST", "/api/v1/incidents/{incident_id}/triage/back/"): RESPONDERS,
    ("GET", "/api/v1/incidents/{incident_id}/triage/suggestions/"): READERS,
    ("GET", "/api/v1/incidents/{incident_id}/triage/walks/"): READERS,
    ("GET", "/api/v1/postmortems/"): READERS,
    ("POST", "/api/v1/postmortems/"): RESPONDERS,
    ("GET", "/api/v1/postmortems/{postmortem_id}/"): READERS,
    ("PATCH", "/api/v1/postmortems/{postmortem_id}/"): RESPONDERS,
    ("GET", "/api/v1/postmortems/{postmortem_id}/markdown/"): READERS,
    ("POST", "/api/v1/postmortems/{postmortem_id}/publish/"): COMMANDS,
    ("POST", "/api/v1/postmortems/{postmortem_id}/return-to-draft/"): RESPONDERS,
    ("POST", "/api/v1/postmortems/{postmortem_id}/review/"): RESPONDERS,
    ("GET", "/api/v1/postmortems/{postmortem_id}/review-proposal/"): READERS,
    ("POST", "/api/v1/postmortems/{postmortem_id}/submit/"): RESPONDERS,
    ("POST", "/api/v1/postmortems/{postmortem_id}/waive/"): COMMANDS,
    ("POST", "/api/v1/reports/"): RESPONDERS,
    ("GET", "/api/v1/reviews/"): READERS,
    ("GET", "/api/v1/reviews/{review_id}/"): READERS,
    ("POST", "/api/v1/reviews/{review_id}/cancel/"): RESPONDERS,
    ("GET", "/api/v1/reviews/{review_id}/ics/"): READERS,
    ("POST", "/api/v1/reviews/{review_id}/reschedule/"): RESPONDERS,
    ("GET", "/api/v1/schema/"): READERS,
    ("GET", "/api/v1/triage/tree/"): READERS,
    ("GET", "/api/v1/triage/trees/{version}/"): READERS,
}

# Role grants on the incident (POST .../roles/): (role, whom) -> who may. "self" is the caller;
# "other" is a third responder. Handover is the IC granting the IC to somebody else.
ROLE_GRANTS: dict[tuple[str, str], set[str]] = {
    ("incident_commander", "self"): COMMANDS,
    ("incident_commander", "other"): COMMANDS,
    ("technical_lead", "self"): COMMANDS,
    ("technical_lead", "other"): COMMANDS,
    ("communications_lead", "self"): COMMANDS,
    ("communications_lead", "other"): COMMANDS,
    ("operations_lead", "self"): RESPONDERS,
    ("operations_lead", "other"): RESPONDERS,
    ("other", "self"): RESPONDERS,
    ("other", "other"): RESPONDERS,
}

# Bodies for operations whose permission depends on what is asked (decided after validation).
BODIES = {
    ("POST", "/api/v1/comms/incidents/{incident_id}/updates/"): lambda w: {
        "audience": "external",
        "subject": "Investigating",
        "body": "We are looking into slow checkouts.",
        "publish": True,
    },
    ("POST", "/api/v1/incidents/{incident_id}/roles/"): lambda w: {
        "role": "operations_lead",
        "user": w["caller_id"],
    },
    ("POST", "/api/v1/diagnostics/remediations/preview/"): lambda w: {
        "target": w["target_id"],
        "incident": w["incident_id"],
        "kind": "cancel",
        "filters": {"pid": 4242},
    },
}


def _operations() -> set[tuple[str, str]]:
    generator = SchemaGenerator()
    generator._initialise_endpoints()
    return {(method, path) for path, _regex, method, _view in generator.endpoints}


@pytest.fixture
def world(django_capture_on_commit_callbacks, settings):
    """The callers and the rows the operations act on."""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    users = {
        VIEWER: UserFactory(username="m-viewer", role="viewer"),
        RESPONDER: UserFactory(username="m-responder", role="responder"),
        COMMANDER: UserFactory(username="m-commander", role="commander"),
        ADMIN: UserFactory(username="m-admin", role="admin", is_staff=True, is_superuser=True),
        IC: UserFactory(username="m-ic", role="responder"),
    }
    third = UserFactory(username="m-third", role="responder")
    with django_capture_on_commit_callbacks(execute=False):
        incident = incident_services.incident_declare(
            title="Checkout slow", severity="SEV2", kind="performance", actor=users[COMMANDER]
        )
        ic = incident_services.role_assign(
            incident_id=incident.pk, role="incident_commander", user=users[IC]
        )
        # A closed port: remediation is refused or attempted, and a refused connection is fast.
        target = make_target(port=1, remediation_allowed=True)
        IncidentTarget.objects.create(incident=incident, target=target)
        draft = comms_services.update_create(
            incident_id=incident.pk,
            actor=users[COMMANDER],
            audience="external",
            subject="Investigating",
            body="We are looking into it.",
        )
    with django_capture_on_commit_callbacks(execute=True):
        done = incident_services.incident_declare(
            title="Replica lag", severity="SEV3", kind="performance", actor=users[COMMANDER]
        )
        incident_services.role_assign(
            incident_id=done.pk, role="incident_commander", user=users[IC]
        )
        incident_services.incident_transition(
            incident_id=done.pk, to_status="resolved", actor=users[COMMANDER]
        )
    done.refresh_from_db()
    return {
        "users": users,
        "third": third,
        "incident_id": incident.pk,
        "ic_assignment_id": ic.pk,
        "target_id": target.pk,
        "update_id": draft.pk,
        "postmortem_id": done.postmortem.pk,
    }


def _path(template: str, w: dict) -> str:
    missing = 999999
    pk = missing
    if template.startswith("/api/v1/comms/updates/"):
        pk = w["update_id"]
    elif template.startswith("/api/v1/diagnostics/targets/"):
        pk = w["target_id"]
    return template.format(
        incident_id=w["incident_id"],
        postmortem_id=w["postmortem_id"],
        assignment_id=w["ic_assignment_id"],
        target_id=w["target_id"],
        pk=pk,
        action_item_id=missing,
        review_id=missing,
        run_id=missing,
        step_id=missing,
        key="connections",
        version=1,
    )


def _client(w: dict, caller: str) -> APIClient:
    client = APIClient()
    if caller != ANON:
        client.force_authenticate(w["users"][caller])
    return client


def _refused(client: APIClient, method: str, path: str, body: dict | None) -> tuple[bool, int]:
    """Call inside a savepoint that is rolled back: every call sees the same rows."""
    sid = transaction.savepoint()
    try:
        response = getattr(client, method.lower())(path, body or {}, format="json")
    finally:
        transaction.savepoint_rollback(sid)
    return response.status_code in (401, 403), response.status_code


def test_every_api_operation_has_a_row():
    operations = _operations()
    assert sorted(operations - MATRIX.keys()) == [], "new API operations need a MATRIX row"
    assert sorted(MATRIX.keys() - operations) == [], "MATRIX rows for operations that are gone"


@pytest.mark.parametrize("caller", CALLERS)
def test_api_operations_admit_exactly_the_callers_in_the_matrix(world, caller):
    client = _client(world, caller)
    caller_id = world["users"][caller].pk if caller != ANON else None
    wrong = []
    for (method, template), allowed in sorted(MATRIX.items()):
        body = BODIES.get((method, template), lambda w: {})({**world, "caller_id": caller_id})
        refused, code = _refused(client, method, _path(template, world), body)
        if refused == (caller in allowed):
            want = "allowed" if caller in allowed else "refused"
            wrong.append(f"{method} {template}: {code}, expected {want}")
    assert wrong == [], f"{caller}:\n" + "\n".join(wrong)


@pytest.mark.parametrize("caller", CALLERS)
def test_role_grants_admit_exactly_the_callers_in_the_matrix(world, caller):
    client = _client(world, caller)
    path = f"/api/v1/incidents/{world['incident_id']}/roles/"
    wrong = []
    for (role, whom), allowed in ROLE_GRANTS.items():
        user = world["users"].get(caller) if whom == "self" else world["third"]
        body = {"role": role, "user": user.pk if user else world["third"].pk}
        if role == "other":
            body["role_name"] = "Scribe"
        refused, code = _refused(client, "POST", path, body)
        if refused == (caller in allowed):
            want = "allowed" if caller in allowed else "refused"
            wrong.append(f"grant {role} to {whom}: {code}, expected {want}")
    assert wrong == [], f"{caller}:\n" + "\n".join(wrong)
