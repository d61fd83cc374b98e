"""The severity policy: one typed object per severity, checked at start-up, read by every app."""

import datetime
from zoneinfo import ZoneInfo

import pytest
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.utils import timezone

from comms import selectors as comms_selectors
from comms.models import ChannelKind
from comms.services.common import _channel_delivery
from incidents import selectors, services
from incidents.models import ResponderRole
from incidents.severity import (
    ROLE_NAMES,
    ReviewDeadline,
    SeverityPolicy,
    UpdateCadence,
    all_severity_policies,
    severity_policy,
)
from postmortems.guards import postmortem_settled_before_close
from postmortems.scheduling import review_deadline
from tests.factories import ChannelFactory, IncidentFactory


def _policy_errors() -> list[tuple[str, str]]:
    return sorted((e.id, e.msg) for e in run_checks() if e.id and e.id.startswith("quell.E00"))


def test_role_names_are_the_responder_roles():
    assert tuple(ResponderRole.values) == ROLE_NAMES


def test_defaults_are_the_playbook_policy():
    sev1, sev2, sev3, sev4 = all_severity_policies().values()
    assert sev1 == SeverityPolicy(
        severity="SEV1",
        required_roles=(
            "incident_commander",
            "technical_lead",
            "operations_lead",
            "communications_lead",
        ),
        bridge=True,
        stakeholders=(),
        postmortem_required=True,
        review=ReviewDeadline(days=3, business=False),
        update_cadence=UpdateCadence(first_minutes=5, every_minutes=20),
    )
    assert sev2.review == ReviewDeadline(days=5, business=True)
    assert sev3.bridge is False and sev3.postmortem_required is True
    assert sev3.update_cadence == UpdateCadence(every_minutes=240)
    assert sev4.required_roles == ("incident_commander",)
    assert sev4.postmortem_required is False and sev4.review is None
    assert sev4.update_cadence == UpdateCadence()


def test_policy_is_frozen():
    with pytest.raises(AttributeError):
        severity_policy("SEV1").bridge = False


def test_unknown_severity_is_refused():
    with pytest.raises(ValueError):
        severity_policy("SEV 1")


def test_default_settings_pass_the_check():
    assert _policy_errors() == []


def test_new_setting_wins_field_by_field_over_the_old_ones(settings):
    settings.QUELL_SEVERITY_POLICY = {
        "SEV4": {"bridge": True, "update_cadence": {"every_minutes": 30}},
    }
    sev4 = severity_policy("SEV4")
    assert sev4.bridge is True
    assert sev4.update_cadence == UpdateCadence(every_minutes=30)
    # Fields not given still come from the older settings.
    assert sev4.required_roles == ("incident_commander",)
    assert sev4.review is None


def test_old_settings_still_work(settings):
    settings.QUELL_BRIDGE_SEVERITIES = ["SEV3"]
    settings.QUELL_POSTMORTEM_SEVERITIES = ["SEV1"]
    assert severity_policy("SEV3").bridge is True
    assert severity_policy("SEV1").bridge is False
    assert severity_policy("SEV2").postmortem_required is False


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        # The review's case: "SEV 1" silently meant no update cadence for SEV1.
        (
            {"QUELL_UPDATE_CADENCE": {"SEV 1": {"every_minutes": 20}, "SEV2": {}, "SEV3": {}}},
            {"quell.E001": ["'SEV 1'"], "quell.E002": ["SEV1", "SEV4"]},
        ),
        (
            {"QUELL_SEVERITY_POLICY": {"sev2": {"bridge": True}}},
            {"quell.E001": ["'sev2'"]},
        ),
        (
            {"QUELL_BRIDGE_SEVERITIES": ["SEV1", "SEV5"]},
            {"quell.E001": ["QUELL_BRIDGE_SEVERITIES", "'SEV5'"]},
        ),
        (
            {"QUELL_REVIEW_POLICY": {"SEV1": None, "SEV2": None, "SEV3": None}},
            {"quell.E002": ["QUELL_REVIEW_POLICY has no entry for SEV4"]},
        ),
        (
            {"QUELL_SEVERITY_POLICY": {"SEV3": {"required_roles": ["incident_comander"]}}},
            {"quell.E003": ["'incident_comander'"]},
        ),
        (
            {"QUELL_SEVERITY_POLICY": {"SEV2": {"review": {"days": -5, "business": True}}}},
            {"quell.E004": ["['SEV2']['review']['days']", "-5"]},
        ),
        (
            {"QUELL_SEVERITY_POLICY": {"SEV1": {"update_cadence": {"first_minutes": -1}}}},
            {"quell.E004": ["first_minutes"]},
        ),
        (
            {"QUELL_SEVERITY_POLICY": {"SEV1": {"bridge": "yes", "pager": True}}},
            {"quell.E005": ["'pager'", "['bridge'] must be true or false"]},
        ),
        (
            {"QUELL_STAKEHOLDERS": ["cto@example.com"]},
            {"quell.E005": ["QUELL_STAKEHOLDERS must be a JSON object"]},
        ),
    ],
)
def test_bad_policy_is_an_error_at_start_up(settings, overrides, expected):
    for name, value in overrides.items():
        setattr(settings, name, value)
    errors = _policy_errors()
    assert sorted({check_id for check_id, _ in errors}) == sorted(expected)
    for check_id, fragments in expected.items():
        messages = " | ".join(msg for i, msg in errors if i == check_id)
        for fragment in fragments:
            assert fragment in messages


def test_manage_py_check_refuses_a_bad_policy(settings):
    settings.QUELL_SEVERITY_POLICY = {"SEV 1": {}}
    with pytest.raises(SystemCheckError, match=r"quell\.E001"):
        call_command("check")


# --- Consumers follow an overridden policy ------------------------------------------------

SEV4_LIKE_SEV1 = {
    "SEV4": {
        "required_roles": ["incident_commander", "communications_lead"],
        "bridge": True,
        "stakeholders": ["cto@example.com", " "],
        "postmortem": True,
        "review": {"days": 2, "business": False},
        "update_cadence": {"first_minutes": 3, "every_minutes": 10},
    }
}


@pytest.fixture
def sev4_like_sev1(settings):
    settings.QUELL_SEVERITY_POLICY = SEV4_LIKE_SEV1
    settings.QUELL_BRIDGE_URL_TEMPLATE = "https://meet.example.com/{slug}"
    settings.QUELL_CLOSE_GUARDS = []


@pytest.mark.django_db
def test_incidents_follow_the_policy(sev4_like_sev1):
    incident = services.incident_declare(title="Odd policy", severity="SEV4")
    assert selectors.incident_missing_roles(incident) == [
        "incident_commander",
        "communications_lead",
    ]
    assert incident.bridge_url == f"https://meet.example.com/{incident.slug}"


@pytest.mark.django_db
def test_comms_cadence_follows_the_policy(sev4_like_sev1):
    incident = IncidentFactory(
        severity="SEV4", declared_at=timezone.now() - datetime.timedelta(minutes=4)
    )
    due = comms_selectors.incident_update_due(incident)
    assert due.overdue and due.reason == "first external update"
    assert due.every_minutes == 10
    now = timezone.now()
    assert comms_selectors.next_update_time(incident, now=now) == now + datetime.timedelta(
        minutes=10
    )


@pytest.mark.django_db
def test_comms_stakeholders_follow_the_policy(sev4_like_sev1):
    channel = ChannelFactory(kind=ChannelKind.EMAIL, recipients=[], include_stakeholders=True)
    incident = IncidentFactory(severity="SEV4")
    delivery = _channel_delivery(channel, incident=incident)
    assert delivery.recipients == ["cto@example.com"]


def test_review_deadline_follows_the_policy(sev4_like_sev1, settings):
    settings.TIME_ZONE = "UTC"
    resolved = datetime.datetime(2026, 3, 6, 9, 0, tzinfo=ZoneInfo("UTC"))  # Friday
    due = review_deadline(resolved_at=resolved, severity="SEV4", holiday_set=set())
    assert due.date() == datetime.date(2026, 3, 8)  # two calendar days


@pytest.mark.django_db
def test_postmortem_requirement_follows_the_policy(settings):
    incident = IncidentFactory(severity="SEV4")
    assert postmortem_settled_before_close(incident) is None
    settings.QUELL_SEVERITY_POLICY = {"SEV4": {"postmortem": True}}
    assert "has none yet" in postmortem_settled_before_close(incident)
