"""Text search stays answerable from the trigram indexes (a rare word must not read the table)."""

import pytest
from django.db import connection

from incidents.models import Incident
from incidents.selectors import incident_search

pytestmark = pytest.mark.django_db


def test_incident_search_can_use_the_trigram_indexes(make_incident):
    make_incident(title="Replica lag on orders-db")
    query = incident_search(Incident.objects.all(), "zzqq-rare").query
    sql, params = query.sql_with_params()
    with connection.cursor() as cursor:
        # On a tiny table PostgreSQL would rightly scan it (or walk the declared_at index);
        # forbid both to see whether the trigram indexes (bitmap scans) can answer the query.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_indexscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    for column in ("title", "description", "channel_name", "detected_by"):
        assert f"incident_{column}_trgm" in plan, plan
