"""A realistic little world for the API fuzz, built through Quell's own services.

Open and resolved incidents with their team and timeline, a target on 127.0.0.1 at a port nothing
listens on (so runs and connection tests fail fast, on this machine), a finished diagnostic run
and integrity run, comms channels pointing at that closed port, components, a subscriber, a
draft and a published update with their deliveries, a postmortem with an action item and a
review, a runbook in progress and a triage walk. `World.path_parameters` hands the fuzz the ids
of these objects for each path, so detail endpoints see real rows as well as missing ones.
"""

from __future__ import annotations

import datetime
import re
import socket
from dataclasses import dataclass, field

from django.utils import timezone

from comms.models import Delivery, MessageTemplate, StatusUpdate, Subscriber
from comms.services import configuration as comms_config
from comms.services import subscribers as comms_subscribers
from comms.services import updates as comms_updates
from diagnostics import services as diagnostics_services
from diagnostics.integrity import services as integrity_services
from diagnostics.models import CheckResult
from diagnostics.remediation.models import Runbook
from diagnostics.remediation.runbooks import services as runbook_services
from incidents import services as incident_services
from incidents.models import ResponderRole
from incidents.triage.models import TriageTree
from postmortems.services import action_items as action_item_services
from postmortems.services import postmortems as postmortem_services
from postmortems.services import reviews as review_services
from tests.factories import UserFactory


def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class World:
    """Ids of the seeded objects, by the kind of object a path parameter names."""

    ids: dict[str, list] = field(default_factory=dict)

    # (path pattern, parameter) -> kind of id; the first matching pattern wins.
    ROUTES = (
        (r"^/api/v1/comms/templates/", "id", "template"),
        (r"^/api/v1/comms/updates/", "id", "update"),
        (r"^/api/v1/comms/channels/", "id", "channel"),
        (r"^/api/v1/comms/deliveries/", "id", "delivery"),
        (r"^/api/v1/comms/components/", "id", "component"),
        (r"^/api/v1/comms/subscribers/", "id", "subscriber"),
        (r"^/api/v1/diagnostics/targets/", "id", "target"),
        (r"^/api/v1/diagnostics/runs/", "id", "run"),
        (r"^/api/v1/diagnostics/integrity/checks/", "id", "integrity_check"),
        (r"^/api/v1/diagnostics/integrity/runs/", "id", "integrity_run"),
        (r"^/api/v1/diagnostics/remediations/", "id", "remediation"),
        (r"/runbooks/", "run_id", "runbook_run"),
        (r"/runbooks/", "step_id", "runbook_step"),
        (r"", "incident_id", "incident"),
        (r"", "target_id", "target"),
        (r"", "postmortem_id", "postmortem"),
        (r"", "review_id", "review"),
        (r"", "action_item_id", "action_item"),
        (r"", "assignment_id", "assignment"),
        (r"", "version", "triage_version"),
        (r"", "key", "check_key"),
        (r"", "check_id", "integrity_check"),
        (r"", "run_id", "integrity_run"),
    )

    def add(self, kind: str, *values) -> None:
        self.ids.setdefault(kind, []).extend(values)

    def path_parameters(self, path: str, made_up: dict) -> list[dict]:
        """Up to three sets of path parameters naming seeded objects (empty: nothing seeded)."""
        choices: dict[str, list] = {}
        for name in made_up:
            for pattern, parameter, kind in self.ROUTES:
                if parameter == name and re.search(pattern, path) and self.ids.get(kind):
                    choices[name] = self.ids[kind]
                    break
        if not choices or set(choices) != set(made_up):
            return []
        return [{name: values[i % len(values)] for name, values in choices.items()} for i in (0, 1)]


def seed_world(*, actor) -> World:
    world = World()
    port = closed_port()
    responder = UserFactory(username="fuzz-responder", role="responder")

    # Incidents: one open and staffed, one resolved (its postmortem), one closed to a report.
    open_incident = incident_services.incident_declare(
        title="Checkout writes time out",
        severity="SEV2",
        kind="performance",
        actor=actor,
        functionality_impacted="Checkout",
        users_affected_percent=30,
    )
    assignment = incident_services.role_assign(
        incident_id=open_incident.pk,
        role=ResponderRole.INCIDENT_COMMANDER,
        user=actor,
        actor=actor,
    )
    incident_services.role_assign(
        incident_id=open_incident.pk,
        role=ResponderRole.TECHNICAL_LEAD,
        user=responder,
        actor=actor,
    )
    incident_services.timeline_append(
        incident_id=open_incident.pk, message="Lock queue on orders", actor=actor
    )
    resolved = incident_services.incident_declare(
        title="Replica lag on reporting", severity="SEV3", kind="availability", actor=actor
    )
    incident_services.role_assign(
        incident_id=resolved.pk, role=ResponderRole.INCIDENT_COMMANDER, user=actor, actor=actor
    )
    for status in ("identified", "monitoring", "resolved"):
        incident_services.incident_transition(
            incident_id=resolved.pk, to_status=status, actor=actor, reason="fuzz seed"
        )
    world.add("incident", open_incident.pk, resolved.pk)
    world.add("assignment", assignment.pk)

    # A target on this machine where nothing listens; a run and a connection test fail fast.
    target = diagnostics_services.target_create(
        name="orders-primary",
        environment="production",
        host="127.0.0.1",
        port=port,
        database="orders",
        user="quell_reader",
        password="not-a-real-password",
        actor=actor,
    )
    diagnostics_services.incident_target_add(
        incident_id=open_incident.pk, target_id=target.pk, actor=actor, start_run=False
    )
    run = diagnostics_services.diagnostic_run_start(
        target_id=target.pk, incident_id=open_incident.pk, requested_by=actor
    )
    diagnostics_services.diagnostic_run_execute(run_id=run.pk)
    world.add("target", target.pk)
    world.add("run", run.pk)
    world.add(
        "check_key",
        *sorted(set(CheckResult.objects.filter(run=run).values_list("key", flat=True)))[:2]
        or ["connection_count"],
    )

    check = integrity_services.integrity_check_create(
        target_id=target.pk,
        actor=actor,
        name="orders without customer",
        kind="orphans",
        table_name="orders",
        columns=["customer_id"],
        parent_table="customers",
        parent_columns=["id"],
    )
    integrity_run = integrity_services.integrity_run_start(
        target_id=target.pk, check_ids=[check.pk], requested_by=actor
    )
    integrity_services.integrity_run_execute(run_id=integrity_run.pk)
    world.add("integrity_check", check.pk)
    world.add("integrity_run", integrity_run.pk)

    # Runbook in progress on the open incident.
    runbook = Runbook.objects.filter(steps__isnull=False, active=True).first()
    if runbook is not None:
        incident_runbook, _ = runbook_services.runbook_start(
            incident_id=open_incident.pk, runbook=runbook.key, actor=actor
        )
        world.add("runbook_run", incident_runbook.pk)
        world.add("runbook_step", *incident_runbook.steps.values_list("pk", flat=True)[:2])

    tree = TriageTree.objects.filter(status="published").first()
    if tree is not None:
        world.add("triage_version", tree.version)

    # Comms: channels at the closed port, components, a subscriber, a draft and a published update.
    webhook = comms_config.channel_save(
        actor=actor,
        name="Ops webhook",
        kind="webhook",
        audience="internal",
        url=f"http://127.0.0.1:{port}/hook",
        signing_secret="fuzz-signing-secret",
    )
    mail = comms_config.channel_save(
        actor=actor,
        name="Stakeholder mail",
        kind="email",
        audience="external",
        recipients=["stakeholders@example.com"],
    )
    component = comms_config.component_save(actor=actor, name="Checkout", targets=[target.pk])
    subscriber = comms_subscribers.subscriber_subscribe(email="reader@example.com")
    internal = MessageTemplate.objects.filter(audience="internal").order_by("pk").first()
    external = MessageTemplate.objects.filter(audience="external").order_by("pk").first()
    draft = comms_updates.update_create(
        incident_id=open_incident.pk, actor=actor, template_id=internal.pk
    )
    published = comms_updates.update_create_and_publish(
        incident_id=open_incident.pk, actor=actor, template_id=external.pk
    )
    world.add("template", *MessageTemplate.objects.values_list("pk", flat=True)[:2])
    world.add("channel", webhook.pk, mail.pk)
    world.add("component", component.pk)
    world.add("subscriber", subscriber.pk, *Subscriber.objects.values_list("pk", flat=True)[:1])
    world.add("update", draft.pk, published.pk)
    world.add("delivery", *Delivery.objects.values_list("pk", flat=True)[:2])
    assert StatusUpdate.objects.count() >= 2

    # Postmortem of the resolved incident, with an action item and a review.
    postmortem = getattr(resolved, "postmortem", None) or postmortem_services.postmortem_create(
        incident_id=resolved.pk, actor=actor
    )
    item = action_item_services.action_item_create(
        postmortem_id=postmortem.pk,
        title="Alert on replica lag over 30 s",
        category="monitoring",
        actor=actor,
        owner=responder,
        due_date=timezone.localdate() + datetime.timedelta(days=14),
    )
    review = review_services.review_schedule(
        postmortem_id=postmortem.pk,
        actor=actor,
        starts_at=timezone.now() + datetime.timedelta(days=3),
        duration_minutes=45,
    )
    world.add("postmortem", postmortem.pk)
    world.add("action_item", item.pk)
    world.add("review", review.pk)
    return world
