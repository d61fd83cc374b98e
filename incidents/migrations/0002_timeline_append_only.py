"""Make the timeline append-only in the database itself.

The application never updates or deletes a TimelineEvent; this trigger makes PostgreSQL refuse
it too, whoever asks (a bug, a shell, the admin, raw SQL). TRUNCATE is deliberately left alone:
it is an operator's explicit act (and how the test runner empties tables), not a row edit.
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION quell_timeline_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'timeline events are append-only: % refused on event %', TG_OP, OLD.id
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Record a correction as a new event.';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER timeline_append_only
    BEFORE UPDATE OR DELETE ON incidents_timelineevent
    FOR EACH ROW EXECUTE FUNCTION quell_timeline_refuse_change();
"""

DROP = """
DROP TRIGGER IF EXISTS timeline_append_only ON incidents_timelineevent;
DROP FUNCTION IF EXISTS quell_timeline_refuse_change();
"""


class Migration(migrations.Migration):
    dependencies = [("incidents", "0001_initial")]

    operations = [migrations.RunSQL(CREATE, DROP)]
