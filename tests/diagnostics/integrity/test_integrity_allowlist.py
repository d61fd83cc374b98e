"""The integrity checks' SQL allow-list (issue 10, item 2): functions, operators, casts and node
types are checked on the parse tree; everything not listed is refused with a message naming it.
The escapes below each ran SQL given as text on the target under the old deny-list."""

import re
from pathlib import Path

import pytest

from diagnostics.integrity.compiler import (
    IntegrityCheckError,
    canonical_predicate,
    canonical_query,
)

# (predicate, what the message must name)
ESCAPES = [
    ("ts_rewrite('a'::text::tsquery, 'SELECT pg_sleep(5)') IS NOT NULL", "ts_rewrite"),
    ("(SELECT count(*) FROM crosstab('SELECT pg_sleep(5)') AS t(a int)) > 0", "crosstab"),
    (
        "id IN (SELECT t.id FROM xpath_table('id', 'x', 'users', '/a', 'true') AS t(id int))",
        "xpath_table",
    ),
    (
        "query_to_xml('SELECT pg_read_file(''/etc/passwd'')', true, true, '') IS NOT NULL",
        "query_to_xml",
    ),
    ("cursor_to_xml('c', 1, true, true, '') IS NOT NULL", "cursor_to_xml"),
    ("table_to_xml('users', true, true, '') IS NOT NULL", "table_to_xml"),
    ("database_to_xml(true, true, '') IS NOT NULL", "database_to_xml"),
    ("PG_SLEEP(5) IS NULL", "pg_sleep"),
    ("pg_catalog.pg_read_file('/etc/passwd') <> ''", "pg_read_file"),
    ("public.crosstab('SELECT 1') IS NULL", "public.crosstab"),
    ("current_setting('data_directory') <> ''", "current_setting"),
    ("sneaky()", "sneaky"),
    ("'pg_authid'::regclass IS NOT NULL", "regclass"),
    ("id::regproc IS NOT NULL", "regproc"),
    ("id IN (SELECT oid FROM pg_class)", "pg_class"),
    ("id IN (SELECT 1 FROM pg_catalog.pg_roles)", "pg_catalog.pg_roles"),
    ("id IN (SELECT 1 FROM information_schema.tables)", "information_schema.tables"),
    ("a OPERATOR(public.=) b", "public.="),
    ("a === b", "==="),
    ("id = $1", "ParamRef"),
    ("xmlparse(document note) IS NULL", "XmlExpr"),
]


@pytest.mark.parametrize(("text", "named"), ESCAPES)
def test_escapes_are_refused_naming_what(text, named):
    with pytest.raises(IntegrityCheckError) as caught:
        canonical_predicate(text)
    assert caught.value.field == "predicate"
    assert named in str(caught.value)


@pytest.mark.parametrize(("text", "named"), ESCAPES[:7])
def test_escapes_are_refused_in_queries_too(text, named):
    with pytest.raises(IntegrityCheckError) as caught:
        canonical_query(f"SELECT id FROM users WHERE {text}")
    assert named in str(caught.value) and caught.value.field == "query"


ACCEPTED = [
    "role = 'ADMIN'",
    "\"role\" = 'ADMIN'",
    "published AND (coalesce(title, '') = '' OR coalesce(content, '') = '')",
    "published AND title = ''",
    "email NOT LIKE '%@x.test'",
    "PG_CATALOG.LOWER(email) <> email AND Upper(name) ILIKE 'x%'",
    "extract(year FROM created_at) < 2000 AND created_at AT TIME ZONE 'UTC' > now() - "
    "interval '1 day'",
    "amount::numeric(10, 2) < 0 AND created_at::timestamp with time zone > current_date",
    "id::text ~ '^a' AND n BETWEEN 1 AND 2 AND m NOT BETWEEN SYMMETRIC 1 AND 2",
    "NOT EXISTS (SELECT 1 FROM orders o WHERE o.user_id = users.id)",
    "tags @> ARRAY['a'] AND data ->> 'x' IS NULL AND data ? 'k'",
    "trim(both FROM name) = '' AND substring(name FROM 1 FOR 1) = 'x' AND name SIMILAR TO 'x%'",
    "CASE WHEN kind = 'a' THEN total > 0 ELSE total IS NULL END",
    "deleted_at IS NOT NULL AND deleted_at < created_at",
    "greatest(a, b) > least(c, d) AND nullif(x, '') IS NULL AND abs(balance) > 1e6",
    "id::uuid IS NOT NULL AND flag::boolean IS TRUE AND day::date > date '2020-01-01'",
    "pg_typeof(x)::text = 'integer' AND length(email) > 254",
]


@pytest.mark.parametrize("text", ACCEPTED)
def test_everyday_predicates_are_accepted(text):
    assert canonical_predicate(text)


@pytest.mark.parametrize(
    "text",
    [
        "SELECT g FROM generate_series(1, 50000000) g WHERE g < 0",
        "SELECT u.id, count(*) FROM users u JOIN orders o ON o.user_id = u.id GROUP BY u.id "
        "HAVING count(*) > 1 ORDER BY 2 DESC",
        "WITH x AS (SELECT id FROM users) SELECT * FROM x",
        "SELECT id, row_number() OVER (PARTITION BY email ORDER BY id) FROM users",
        "SELECT id FROM shop.orders WHERE total < 0 UNION ALL SELECT id FROM refunds",
    ],
)
def test_everyday_queries_are_accepted(text):
    assert canonical_query(text)


def _doc_predicates():
    """Predicates quoted in the docs (`"role" = 'ADMIN'` and the like)."""
    docs = Path(__file__).resolve().parents[3] / "docs"
    found = []
    for name in ("integrity.md",):
        text = (docs / name).read_text()
        found += re.findall(r"\(e\.g\. `([^`]+)`\)", text)
    return found


def test_predicates_in_the_docs_are_accepted():
    predicates = _doc_predicates()
    assert predicates
    for text in predicates:
        assert canonical_predicate(text)
