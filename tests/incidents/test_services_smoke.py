import pytest

from incidents import services
from incidents.models import Status

pytestmark = pytest.mark.django_db


def test_declare_then_resolve_records_each_step(responder):
    incident = services.incident_declare(title="Checkout slow", severity="SEV2", actor=responder)
    services.incident_transition(
        incident_id=incident.pk, to_status=Status.RESOLVED, actor=responder
    )
    kinds = list(incident.timeline.values_list("kind", flat=True))
    assert kinds == ["declared", "status_changed"]
