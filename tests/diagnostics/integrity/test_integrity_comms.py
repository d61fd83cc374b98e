"""What comms and postmortems show from integrity events: the latest verification per target
is the data integrity status; a clean baseline alone does not claim that no data was lost."""

import pytest

from comms.rendering import build_context
from comms.selectors import incident_facts
from diagnostics.integrity import services as integrity
from diagnostics.integrity.selectors import incident_integrity_status
from diagnostics.models import IncidentTarget
from postmortems.services.postmortems import data_impact_prefill
from tests.diagnostics.integrity.integrity_support import shop_sql
from tests.factories import IncidentFactory

pytestmark = pytest.mark.django_db


def _run(target, incident, purpose, checks):
    run = integrity.integrity_run_start(
        target_id=target.pk, incident_id=incident.pk, purpose=purpose, check_ids=checks
    )
    return integrity.integrity_run_execute(run_id=run.pk)


def test_status_follows_the_verification_after_remediation(shop_db, shop_target, shop_checks):
    incident = IncidentFactory()
    IncidentTarget.objects.create(incident=incident, target=shop_target)
    checks = [shop_checks["orphaned profiles"].pk, shop_checks["admin users"].pk]
    _run(shop_target, incident, "baseline", checks)
    facts = incident_facts(incident)
    assert facts.integrity.startswith(f"Integrity baseline on {shop_target.name}: 2 violations")
    assert facts.integrity_ok is None  # before remediation nothing is verified yet
    assert "No data was lost" not in build_context(incident, facts)["data_loss_statement"]

    shop_sql(
        shop_db,
        "DELETE FROM profiles WHERE user_id >= 100; UPDATE users SET role = 'ADMIN' WHERE id = 1",
    )
    _run(shop_target, incident, "verification", checks)
    # A later ad hoc run does not displace the verification.
    _run(shop_target, incident, "adhoc", [shop_checks["users"].pk])
    facts = incident_facts(incident)
    assert facts.integrity.startswith(
        f"Integrity verification on {shop_target.name}: 0 violations in 2 checks; "
        "admin users 0 -> 1; orphaned profiles 3 -> 0"
    )
    assert facts.integrity_ok is True
    context = build_context(incident, facts)
    assert context["data_integrity_status"] == facts.integrity
    assert context["data_loss_statement"] == "No data was lost during this incident."
    status = incident_integrity_status(incident_id=incident.pk)
    assert status["ok"] is True and len(status["lines"]) == 1
    prefill = data_impact_prefill(incident.pk)
    assert "Integrity baseline on" in prefill and "Integrity verification on" in prefill


def test_failed_verification_is_reported_as_not_ok(shop_target, shop_checks):
    incident = IncidentFactory()
    IncidentTarget.objects.create(incident=incident, target=shop_target)
    checks = [shop_checks["orphaned profiles"].pk]
    _run(shop_target, incident, "baseline", checks)
    _run(shop_target, incident, "verification", checks)
    facts = incident_facts(incident)
    assert "1 violation in 1 check" in facts.integrity
    assert facts.integrity_ok is False
    assert incident_integrity_status(incident_id=incident.pk)["ok"] is False
