"""The SQL side of integrity checks without a database: names only as identifiers, user SQL
validated by PostgreSQL's parser and replaced by its canonical rendering."""

from types import SimpleNamespace

import pytest

from diagnostics.integrity.compiler import (
    IntegrityCheckError,
    canonical_predicate,
    canonical_query,
    compile_check,
    expected_for,
    validate_identifier,
    violates,
)


def _check(**values):
    base = {
        "kind": "orphans",
        "schema_name": "public",
        "table_name": "profiles",
        "columns": ["user_id"],
        "parent_schema": "",
        "parent_table": "users",
        "parent_columns": ["id"],
        "predicate": "",
        "query": "",
        "min_count": None,
        "max_count": None,
    }
    base.update(values)
    return SimpleNamespace(**base)


@pytest.mark.parametrize("name", ["users", "User", "createdAt", "order", "created-at", "a b", "é"])
def test_plain_names_are_accepted(name):
    assert validate_identifier(name, field="table_name") == name


@pytest.mark.parametrize(
    "name", ['x"; DROP TABLE y; --', "a.b", "x;y", "x)", "x--", "/*x*/", "", "n" * 64]
)
def test_names_that_are_not_plain_are_refused(name):
    with pytest.raises(IntegrityCheckError) as caught:
        validate_identifier(name, field="columns")
    assert caught.value.field == "columns"


def test_names_are_quoted_as_identifiers_in_the_compiled_sql():
    sql = compile_check(
        _check(table_name="Profile", columns=["userId"], parent_table="User"),
        pk=["id"],
        sample_limit=5,
    ).text()
    assert sql == (
        'SELECT "Profile"."id", count(*) OVER () AS quell_total FROM "public"."Profile" '
        'WHERE "Profile"."userId" IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "public"."User" '
        'AS "quell_parent" WHERE "quell_parent"."id" = "Profile"."userId") '
        'ORDER BY "Profile"."id" LIMIT 5'
    )


def test_self_reference_and_composite_keys():
    sql = compile_check(
        _check(
            table_name="emp",
            columns=["org", "manager"],
            parent_table="emp",
            parent_columns=["org", "id"],
        ),
        pk=["org", "id"],
        sample_limit=3,
    ).text()
    assert '"quell_parent"."org" = "emp"."org" AND "quell_parent"."id" = "emp"."manager"' in sql
    dup = compile_check(
        _check(kind="duplicates", table_name="emp", columns=["email"]),
        pk=["org", "id"],
        sample_limit=3,
    ).text()
    assert 'jsonb_build_array("emp"."org", "emp"."id")' in dup


def test_predicates_are_rendered_by_the_parser_comments_and_all():
    assert canonical_predicate("role = 'ADMIN' -- the admins") == "role = 'ADMIN'"
    assert canonical_predicate("/* x */ published AND title = ''") == "published AND title = ''"
    # A semicolon inside a string is data, not a second statement.
    assert canonical_predicate("note = 'a; DROP TABLE x'") == "note = 'a; DROP TABLE x'"
    assert canonical_predicate("$$ ); DROP TABLE x; -- $$ <> ''") == (
        "' ); DROP TABLE x; -- ' <> ''"
    )
    assert canonical_predicate("") == ""


@pytest.mark.parametrize(
    "text",
    [
        "1=1); DROP TABLE users; --",
        "true) UNION SELECT 1 WHERE (true",
        "true) ORDER BY (1",
        "true) LIMIT (1",
        "true) GROUP BY 1 HAVING (true",
        "true) FOR UPDATE --",
        "\"set_config\"('a', 'b', true) IS NOT NULL",
        "pg_catalog.pg_sleep(10) IS NULL",
        "PG_TERMINATE_BACKEND(1)",
        "lo_import('/etc/passwd') > 0",
        "x IN (SELECT ts_stat('SELECT 1'))",
        "nextval('s') > 0",
    ],
)
def test_predicates_that_do_more_than_a_condition_are_refused(text):
    with pytest.raises(IntegrityCheckError) as caught:
        canonical_predicate(text)
    assert caught.value.field == "predicate"


def test_queries_keep_reads_and_refuse_the_rest():
    assert canonical_query("select id from users where email like '%@x';") == (
        "SELECT id FROM users WHERE email LIKE '%@x'"
    )
    for text in ("EXPLAIN ANALYZE DELETE FROM users", "DO $$ BEGIN END $$", "SET role x", "VACUUM"):
        with pytest.raises(IntegrityCheckError):
            canonical_query(text)
    with pytest.raises(IntegrityCheckError, match="At most"):
        canonical_query("SELECT " + "1 + " * 5000 + "1")


def test_expectations_per_kind():
    assert expected_for(_check()) == {"max": 0}
    assert expected_for(_check(kind="critical_count")) == {"min": 1}
    assert expected_for(_check(kind="row_count", min_count=10)) == {"min": 10}
    assert expected_for(_check(kind="row_count")) == {}
    assert violates(0, {"min": 1}) and not violates(1, {"min": 1})
    assert violates(3, {"max": 2}) and not violates(5, {})
