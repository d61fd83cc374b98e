"""Every factory in tests/factories.py builds a row the database accepts (constraints too)."""

import inspect

import factory
import pytest

from tests import factories

FACTORIES = [
    cls
    for _, cls in inspect.getmembers(factories, inspect.isclass)
    if issubclass(cls, factory.django.DjangoModelFactory) and cls.__module__ == factories.__name__
]


def test_every_model_a_test_builds_has_a_factory():
    models = {f._meta.model.__name__ for f in FACTORIES}
    assert {
        "Incident",
        "ResponderAssignment",
        "TimelineEvent",
        "TargetDatabase",
        "IncidentTarget",
        "DiagnosticRun",
        "CheckResult",
        "IntegrityCheck",
        "IntegrityRun",
        "IntegrityResult",
        "RemediationAction",
        "Runbook",
        "MessageTemplate",
        "Channel",
        "StatusUpdate",
        "Delivery",
        "Subscriber",
        "Postmortem",
        "ActionItem",
        "Review",
    } <= models


@pytest.mark.django_db
@pytest.mark.parametrize("factory_class", FACTORIES, ids=lambda f: f.__name__)
def test_factory_builds_a_valid_row(factory_class):
    obj = factory_class()
    obj.full_clean(exclude=["password"])
    assert type(obj).objects.filter(pk=obj.pk).exists()
