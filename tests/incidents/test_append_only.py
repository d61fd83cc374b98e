"""The database itself refuses to rewrite the timeline."""

import pytest
from django.db import InternalError, ProgrammingError, connection, transaction

from incidents.models import TimelineEvent

pytestmark = pytest.mark.django_db

# The trigger raises with SQLSTATE insufficient_privilege (42501): psycopg maps it to
# InsufficientPrivilege, which Django surfaces as ProgrammingError.
REFUSED = (ProgrammingError, InternalError)


@pytest.fixture
def event(incident):
    return incident.timeline.get()


def test_orm_update_is_refused(event):
    event.message = "rewritten"
    with pytest.raises(REFUSED, match="append-only: UPDATE refused"), transaction.atomic():
        event.save()
    event.refresh_from_db()
    assert event.message.startswith("Incident declared")


def test_queryset_update_is_refused(event):
    with pytest.raises(REFUSED, match="append-only"), transaction.atomic():
        TimelineEvent.objects.filter(pk=event.pk).update(message="rewritten")


def test_orm_delete_is_refused(event):
    with pytest.raises(REFUSED, match="append-only: DELETE refused"), transaction.atomic():
        event.delete()
    assert TimelineEvent.objects.filter(pk=event.pk).exists()


def test_queryset_delete_is_refused(event):
    with pytest.raises(REFUSED, match="append-only"), transaction.atomic():
        TimelineEvent.objects.all().delete()
    assert TimelineEvent.objects.filter(pk=event.pk).exists()


def test_raw_sql_update_and_delete_are_refused(event):
    for sql in (
        "UPDATE incidents_timelineevent SET message = 'x' WHERE id = %s",
        "DELETE FROM incidents_timelineevent WHERE id = %s",
    ):
        with (
            pytest.raises(REFUSED, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql, [event.pk])
    event.refresh_from_db()
    assert event.message.startswith("Incident declared")


def test_insert_is_allowed(incident):
    from incidents.services import timeline_append

    timeline_append(incident_id=incident.pk, message="still fine")
    assert incident.timeline.count() == 2
