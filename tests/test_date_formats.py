"""One date style everywhere: the admin shows dates as the responder pages do (issue 13, 11)."""

import datetime

import pytest
from django.utils import formats

from tests.factories import UserFactory

MOMENT = datetime.datetime(2026, 1, 5, 15, 4, 7, tzinfo=datetime.UTC)


def test_datetime_format_is_the_pages_utc_style():
    assert formats.date_format(MOMENT, "DATETIME_FORMAT") == "2026-01-05 15:04:07 UTC"
    assert formats.date_format(MOMENT.date(), "DATE_FORMAT") == "2026-01-05"


@pytest.mark.django_db
def test_admin_changelist_shows_the_same_style(client):
    from incidents import services

    admin = UserFactory(role="admin")
    admin.is_staff = admin.is_superuser = True
    admin.save()
    incident = services.incident_declare(
        title="Checkout hangs", severity="SEV2", kind="performance", actor=admin
    )
    client.force_login(admin)
    html = client.get("/admin/incidents/incident/").content.decode()
    declared = incident.declared_at.astimezone(datetime.UTC)
    assert formats.date_format(declared, "DATETIME_FORMAT") in html
    assert "a.m." not in html and "p.m." not in html
