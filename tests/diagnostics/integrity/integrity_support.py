"""The data integrity tests' planted database: a small users/profiles/posts database on the
local PostgreSQL server with planted problems, as in the playbook's examples (the fixtures
shop_template, shop_db, shop_target and shop_checks are in tests/diagnostics/conftest.py).

Planted in the template (copied per test, so a test may repair it):
- 10 users; emails a@x.test twice and b@x.test three times (2 duplicate groups, 5 rows);
  nobody has role 'ADMIN';
- profiles: 5 valid, 3 orphaned (user ids 100, 101, 102), 1 with no user (not an orphan);
- posts: 4 valid, 3 published with an empty title or empty/NULL content (ids 5, 6, 7), one
  unpublished draft with an empty title (not a violation).
"""

from __future__ import annotations

import psycopg

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "postgres"}

SHOP_SQL = """
CREATE TABLE users (id serial PRIMARY KEY, email text, role text NOT NULL DEFAULT 'USER',
                    name text);
CREATE TABLE profiles (id serial PRIMARY KEY, user_id integer, bio text);
CREATE TABLE posts (id serial PRIMARY KEY, author_id integer NOT NULL, title text,
                    content text, published boolean NOT NULL DEFAULT false);
CREATE TABLE audit_log (at timestamptz DEFAULT now(), note text);
INSERT INTO users (email, name)
SELECT CASE WHEN g IN (1, 2) THEN 'a@x.test' WHEN g IN (3, 4, 5) THEN 'b@x.test'
            ELSE 'u' || g || '@x.test' END, 'User ' || g
FROM generate_series(1, 10) g;
INSERT INTO profiles (user_id, bio)
SELECT u, 'bio' FROM unnest(ARRAY[1, 2, 3, 4, 5, 100, 101, 102]) u;
INSERT INTO profiles (user_id, bio) VALUES (NULL, 'no user yet');
INSERT INTO posts (author_id, title, content, published) VALUES
  (1, 'Hello', 'World', true), (2, 'Second', 'Text', true), (3, 'Draft', NULL, false),
  (4, 'Fourth', 'Body', true), (5, '', 'Body', true), (6, 'Title', '', true),
  (7, 'Title', NULL, true), (8, '', NULL, false);
INSERT INTO audit_log (note) VALUES ('one'), ('two');
"""


def _drop(name: str) -> None:
    with psycopg.connect(**PG, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


def shop_sql(dbname: str, statement: str) -> None:
    """Change the target database behind Quell's back (a repair, a new problem)."""
    with psycopg.connect(**{**PG, "dbname": dbname}, autocommit=True) as conn:
        conn.execute(statement)


PLAYBOOK_CHECKS = [
    {
        "name": "orphaned profiles",
        "kind": "orphans",
        "table_name": "profiles",
        "columns": ["user_id"],
        "parent_table": "users",
        "parent_columns": ["id"],
        "severity": "critical",
    },
    {
        "name": "duplicate emails",
        "kind": "duplicates",
        "table_name": "users",
        "columns": ["email"],
    },
    {"name": "users", "kind": "row_count", "table_name": "users", "min_count": 1},
    {"name": "posts", "kind": "row_count", "table_name": "posts"},
    {
        "name": "admin users",
        "kind": "critical_count",
        "table_name": "users",
        "predicate": "role = 'ADMIN'",
        "min_count": 1,
    },
    {
        "name": "published posts without content",
        "kind": "business_rule",
        "table_name": "posts",
        "predicate": "published AND (coalesce(title, '') = '' OR coalesce(content, '') = '')",
    },
]
