"""config.kernel.sql: hot-path statements bound and prepared on the server, rows to instances."""

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from config.kernel.sql import fetch_instances, model_columns, server_bound_cursor
from incidents import selectors
from incidents.models import Incident, TimelineEvent
from tests.factories import IncidentFactory, TimelineEventFactory

pytestmark = pytest.mark.django_db


def _prepared_statements() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


def test_the_incident_detail_is_prepared_once_it_has_run_the_threshold_times():
    incident = IncidentFactory()
    threshold = settings.DATABASES["default"]["OPTIONS"]["prepare_threshold"]
    assert threshold is not None

    for _ in range(threshold + 1):
        detail = selectors.incident_detail_get(incident_id=incident.pk)

    assert detail.pk == incident.pk and detail.title == incident.title
    assert any("declared_by_username" in sql for sql in _prepared_statements())


def test_django_sees_the_statements_it_does_not_build():
    incident = IncidentFactory()
    with CaptureQueriesContext(connection) as queries:
        selectors.incident_detail_get(incident_id=incident.pk)
    assert len(queries) == 1
    assert "declared_by_username" in queries[0]["sql"]


def test_instances_are_those_the_orm_loads_converters_included():
    event = TimelineEventFactory(data={"fingerprint": "abc", "nested": {"n": 1}})
    sql = (
        f"SELECT {model_columns(TimelineEvent, 't')}, 42 AS answer "
        f"FROM {TimelineEvent._meta.db_table} t WHERE t.id = %s"
    )

    [loaded] = fetch_instances(TimelineEvent, sql, [event.pk], extras=("answer",))

    expected = TimelineEvent.objects.get(pk=event.pk)
    assert loaded.answer == 42
    assert loaded._state.adding is False and loaded._state.db == "default"
    for field in TimelineEvent._meta.concrete_fields:
        assert getattr(loaded, field.attname) == getattr(expected, field.attname), field.name
    # JSONField's decoding (a converter the ORM applies) ran: a dict, not the jsonb text.
    assert loaded.data == {"fingerprint": "abc", "nested": {"n": 1}}


def test_no_row_is_an_empty_list_and_errors_are_djangos():
    sql = f"SELECT {model_columns(Incident, 'i')} FROM {Incident._meta.db_table} i WHERE i.id = %s"
    assert fetch_instances(Incident, sql, [0]) == []

    from django.db import ProgrammingError

    with pytest.raises(ProgrammingError), server_bound_cursor() as cursor:
        cursor.execute("SELECT no_such_column FROM incidents_incident WHERE id = %s", [1])
