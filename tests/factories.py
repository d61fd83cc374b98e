"""factory_boy factories shared by every app's tests."""

import datetime

import factory
from django.contrib.auth.models import Group, User
from django.utils import timezone

from comms.models import (
    Channel,
    Component,
    ComponentStateChange,
    Delivery,
    MessageTemplate,
    ReminderLog,
    StatusUpdate,
    Subscriber,
    UndeliveredInitialNotification,
)
from diagnostics.integrity.models import IntegrityCheck, IntegrityResult, IntegrityRun
from diagnostics.models import CheckResult, DiagnosticRun, IncidentTarget, TargetDatabase
from diagnostics.remediation.models import (
    IncidentRunbook,
    IncidentRunbookStep,
    RemediationAction,
    Runbook,
    RunbookStep,
)
from incidents.models import (
    EventKind,
    Incident,
    Kind,
    ResponderAssignment,
    ResponderRole,
    TimelineEvent,
)
from incidents.severity import Severity
from postmortems.models import ActionItem, Postmortem, Review


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", "pw-for-tests")

    @factory.post_generation
    def role(self, create, extracted, **kwargs):
        """UserFactory(role="responder") puts the user in that access group."""
        if create and extracted:
            self.groups.add(Group.objects.get(name=extracted))
        if create:
            self.save()


class IncidentFactory(factory.django.DjangoModelFactory):
    """A bare incident row; use incidents.services.incident_declare to get its events too."""

    class Meta:
        model = Incident

    title = factory.Sequence(lambda n: f"Database issue {n}")
    slug = factory.LazyAttribute(lambda o: o.title.lower().replace(" ", "-")[:60])
    severity = Severity.SEV3
    kind = Kind.PERFORMANCE
    detected_at = factory.LazyFunction(timezone.now)
    declared_at = factory.LazyFunction(timezone.now)
    channel_name = factory.Sequence(lambda n: f"#incident-2026-01-01-issue-{n}")


# --- Incidents ----------------------------------------------------------------------------


class ResponderAssignmentFactory(factory.django.DjangoModelFactory):
    """A role holder; real code assigns through incidents.services.role_assign."""

    class Meta:
        model = ResponderAssignment

    incident = factory.SubFactory(IncidentFactory)
    role = ResponderRole.INCIDENT_COMMANDER
    user = factory.SubFactory(UserFactory)
    assigned_at = factory.LazyFunction(timezone.now)


class TimelineEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TimelineEvent

    incident = factory.SubFactory(IncidentFactory)
    occurred_at = factory.LazyFunction(timezone.now)
    kind = EventKind.NOTE
    message = factory.Sequence(lambda n: f"Note {n}")


# --- Diagnostics --------------------------------------------------------------------------


class TargetDatabaseFactory(factory.django.DjangoModelFactory):
    """A target registered through diagnostics.services.target_create (secrets encrypted)."""

    class Meta:
        model = TargetDatabase

    name = factory.Sequence(lambda n: f"target-{n}")
    environment = "production"
    host = "127.0.0.1"
    port = 5432
    database = "postgres"
    user = "postgres"
    password = ""

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        from diagnostics import services

        return services.target_create(**kwargs)


class IncidentTargetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = IncidentTarget

    incident = factory.SubFactory(IncidentFactory)
    target = factory.SubFactory(TargetDatabaseFactory)


class DiagnosticRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DiagnosticRun

    target = factory.SubFactory(TargetDatabaseFactory)
    queued_at = factory.LazyFunction(timezone.now)
    deadline = factory.LazyAttribute(lambda o: o.queued_at + datetime.timedelta(minutes=5))


class CheckResultFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CheckResult

    run = factory.SubFactory(DiagnosticRunFactory)
    key = factory.Sequence(lambda n: f"check_{n}")
    title = factory.LazyAttribute(lambda o: o.key.replace("_", " ").capitalize())
    family = "connection"
    status = "ok"


class IntegrityCheckFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = IntegrityCheck

    target = factory.SubFactory(TargetDatabaseFactory)
    name = factory.Sequence(lambda n: f"integrity check {n}")
    kind = "row_count"


class IntegrityRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = IntegrityRun

    target = factory.SubFactory(TargetDatabaseFactory)
    queued_at = factory.LazyFunction(timezone.now)
    deadline = factory.LazyAttribute(lambda o: o.queued_at + datetime.timedelta(minutes=5))


class IntegrityResultFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = IntegrityResult

    run = factory.SubFactory(IntegrityRunFactory)
    check_name = factory.Sequence(lambda n: f"integrity check {n}")
    kind = "row_count"
    severity = "high"
    status = "ok"


class RemediationActionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RemediationAction

    target = factory.SubFactory(TargetDatabaseFactory)
    kind = "cancel"
    previewed_at = factory.LazyFunction(timezone.now)


class RunbookFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Runbook

    key = factory.Sequence(lambda n: f"runbook-{n}")
    title = factory.Sequence(lambda n: f"Runbook {n}")


class RunbookStepFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RunbookStep

    runbook = factory.SubFactory(RunbookFactory)
    title = factory.Sequence(lambda n: f"Step {n}")


class IncidentRunbookFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = IncidentRunbook

    incident = factory.SubFactory(IncidentFactory)
    runbook = factory.SubFactory(RunbookFactory)
    title = factory.LazyAttribute(lambda o: o.runbook.title)
    started_at = factory.LazyFunction(timezone.now)


class IncidentRunbookStepFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = IncidentRunbookStep

    run = factory.SubFactory(IncidentRunbookFactory)
    title = factory.Sequence(lambda n: f"Step {n}")


# --- Comms --------------------------------------------------------------------------------


class MessageTemplateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MessageTemplate

    key = factory.Sequence(lambda n: f"template-{n}")
    name = factory.Sequence(lambda n: f"Template {n}")
    audience = "internal"
    subject = "[{severity}] {title}"
    body = "{summary}"


class ComponentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Component

    name = factory.Sequence(lambda n: f"Component {n}")


class ComponentStateChangeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ComponentStateChange

    component = factory.SubFactory(ComponentFactory)
    state = "degraded"
    changed_at = factory.LazyFunction(timezone.now)


class ChannelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Channel

    name = factory.Sequence(lambda n: f"channel-{n}")
    kind = "slack"
    audience = "internal"
    url = "http://127.0.0.1:9/hook"


class StatusUpdateFactory(factory.django.DjangoModelFactory):
    """A draft update row; real code writes and publishes through comms.services."""

    class Meta:
        model = StatusUpdate

    incident = factory.SubFactory(IncidentFactory)
    audience = "internal"
    status = "investigating"
    subject = factory.Sequence(lambda n: f"Update {n}")
    body = "We are investigating."


class SubscriberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Subscriber

    email = factory.Sequence(lambda n: f"subscriber{n}@example.com")


class DeliveryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Delivery

    kind = "update"
    transport = "slack"
    destination = "ops-slack"
    subject = "Update"
    body = "We are investigating."


class ReminderLogFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ReminderLog

    incident = factory.SubFactory(IncidentFactory)
    due_at = factory.LazyFunction(timezone.now)


class UndeliveredInitialNotificationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = UndeliveredInitialNotification

    incident = factory.SubFactory(IncidentFactory)
    reason = "No channel receives internal updates for this severity."


# --- Postmortems --------------------------------------------------------------------------


class PostmortemFactory(factory.django.DjangoModelFactory):
    """A bare postmortem row; real code creates it through postmortems.services."""

    class Meta:
        model = Postmortem

    incident = factory.SubFactory(IncidentFactory)
    title = factory.LazyAttribute(lambda o: f"Postmortem: {o.incident.title}")


class ActionItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ActionItem

    postmortem = factory.SubFactory(PostmortemFactory)
    title = factory.Sequence(lambda n: f"Action item {n}")
    category = "monitoring"


class ReviewFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Review

    postmortem = factory.SubFactory(PostmortemFactory)
    starts_at = factory.LazyFunction(lambda: timezone.now() + datetime.timedelta(days=1))


def api_token_for(user, name: str = "test") -> str:
    """Issue an API token for `user` and return its secret (the only time it exists)."""
    from config.accounts.services import token_issue

    return token_issue(user=user, name=name)[1]


def fresh_client_ip() -> str:
    """A client address no earlier test (or test run) used, so rate limits counted in the
    shared cache start from zero (documentation range 2001:db8::/32)."""
    import ipaddress
    import secrets

    return str(ipaddress.IPv6Address(0x20010DB8 << 96 | secrets.randbits(96)))


def forget_throttle_counts(user) -> None:
    """Drop the shared cache's API throttle counts for `user` (every scope and window): user
    ids repeat across test databases, and the counts outlive them in Redis."""
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(settings.CACHES["default"]["LOCATION"])
    keys = list(client.scan_iter(f"quell:throttle:*:user-{user.pk}:*"))
    if keys:
        client.delete(*keys)
    from config.accounts.throttles import forget_reservations

    forget_reservations()
