import pytest
from django.contrib.auth.models import Group

from config.celery import app as celery_app
from incidents import services as incident_services
from incidents.models import ResponderRole
from incidents.severity import Severity
from tests.factories import UserFactory


@pytest.fixture(autouse=True)
def eager_celery():
    """Tasks queued after commit run in-process: mail lands in mail.outbox."""
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture
def resolve(django_capture_on_commit_callbacks):
    """resolve(incident, actor) moves an incident to resolved and runs the after-commit work
    (signals, so the postmortem draft appears)."""

    def do(incident, actor=None):
        with django_capture_on_commit_callbacks(execute=True):
            incident_services.incident_transition(
                incident_id=incident.pk, to_status="resolved", actor=actor
            )
        incident.refresh_from_db()
        return incident

    return do


@pytest.fixture
def incident_factory(commander, django_capture_on_commit_callbacks):
    """incident_factory(severity=..., staffed=True) declares an incident with its team."""

    def make(severity=Severity.SEV2, staffed=True, title="Checkout writes time out", **extra):
        with django_capture_on_commit_callbacks(execute=True):
            incident = incident_services.incident_declare(
                title=title,
                severity=severity,
                kind="performance",
                actor=commander,
                functionality_impacted="Checkout",
                users_affected_percent=30,
                **extra,
            )
            if staffed:
                tech = UserFactory(username="tech-lead", role="responder")
                incident_services.role_assign(
                    incident_id=incident.pk,
                    role=ResponderRole.INCIDENT_COMMANDER,
                    user=commander,
                    actor=commander,
                )
                incident_services.role_assign(
                    incident_id=incident.pk,
                    role=ResponderRole.TECHNICAL_LEAD,
                    user=tech,
                    actor=commander,
                )
        return incident

    return make


@pytest.fixture
def resolved_incident(incident_factory, resolve, commander):
    incident = incident_factory()
    return resolve(incident, commander)


@pytest.fixture
def postmortem(resolved_incident):
    return resolved_incident.postmortem


@pytest.fixture
def specialist(db):
    group, _ = Group.objects.get_or_create(name="database-specialists")
    user = UserFactory(username="dba", role="viewer", first_name="Dana", last_name="Ba")
    user.groups.add(group)
    return user
