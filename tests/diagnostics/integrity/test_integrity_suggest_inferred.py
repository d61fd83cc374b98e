"""Suggested checks that see past the catalog, on throwaway PostgreSQL 15 and 18 clusters:
case- and whitespace-insensitive duplicates beside the exact ones (a unique index left invalid
let both through), and references without foreign keys inferred from sampled values."""

import time

import pytest

from diagnostics.integrity import services as integrity
from diagnostics.integrity.models import IntegrityResult
from diagnostics.integrity.suggest import apply_suggestions, suggestions_for
from tests.diagnostics.records import make_target

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


def _target(cluster, dbname):
    return make_target(host=cluster.host, port=cluster.port, database=dbname)


def _run(target):
    run = integrity.integrity_run_execute(
        run_id=integrity.integrity_run_start(target_id=target.pk, purpose="adhoc").pk
    )
    assert run.status == "succeeded", run.error
    return {r.check_name: r for r in IntegrityResult.objects.filter(run=run)}


def test_text_unique_columns_get_a_case_and_space_insensitive_duplicate_check(fresh_db):
    cluster, dbname, _ = fresh_db
    cluster.sql(
        "CREATE TABLE accounts (id serial PRIMARY KEY, email text NOT NULL, plan int);"
        "INSERT INTO accounts (email) VALUES ('ann@x.test'), ('ann@x.test'), ('Bob@x.test'),"
        " ('bob@x.test '), (' BOB@x.test'), ('carl@x.test'), ('Dan@x.test'), ('dan@x.test');"
        "CREATE UNIQUE INDEX accounts_plan_key ON accounts (plan);",
        dbname=dbname,
    )
    # The unique index was built concurrently over duplicates: it failed and stayed invalid.
    with pytest.raises(Exception, match="could not create unique index"):
        cluster.sql(
            "CREATE UNIQUE INDEX CONCURRENTLY accounts_email_key ON accounts (email)", dbname=dbname
        )
    target = _target(cluster, dbname)

    suggestions = {s["name"]: s for s in suggestions_for(target)}
    exact = suggestions["duplicate accounts (email)"]
    assert exact["kind"] == "duplicates"
    folded = suggestions["duplicate accounts (email) ignoring case and spaces"]
    assert folded["kind"] == "business_rule"
    assert 'lower(btrim("email"))' in folded["definition"]["query"]
    assert "case or surrounding spaces" in folded["reason"]
    # An integer unique column has no case to ignore.
    assert "duplicate accounts (plan) ignoring case and spaces" not in suggestions

    created = apply_suggestions(target, names=[exact["name"], folded["name"]])
    assert len(created) == 2
    results = _run(target)

    exact_result = results["duplicate accounts (email)"]
    assert exact_result.status == "violation" and exact_result.count == 1  # ann, twice
    assert exact_result.sample == [[2, [1, 2]]]
    folded_result = results[folded["name"]]
    assert folded_result.status == "violation"
    assert folded_result.count == 2  # bob (3 spellings) and dan (2); ann is the exact check's
    assert folded_result.sample_columns == ["email", "rows", "spellings", "keys"]
    bob, dan = folded_result.sample
    assert bob[0] == "bob@x.test" and bob[1] == 3
    assert sorted(bob[2]) == sorted(["Bob@x.test", "bob@x.test ", " BOB@x.test"])
    assert bob[3] == [3, 4, 5]
    assert dan == ["dan@x.test", 2, ["Dan@x.test", "dan@x.test"], [7, 8]]

    # Defined now: both marked as existing, nothing created twice.
    again = {s["name"]: s for s in suggestions_for(target)}
    assert again[exact["name"]]["exists"] and again[folded["name"]]["exists"]
    assert apply_suggestions(target, names=[folded["name"]]) == []


@pytest.fixture
def blog(fresh_db):
    """users (ids 1..90 but every third deleted: 60) and tags (1..30); articles reference users
    by author_id and reviewer without a foreign key (one orphaned author, 999); views is a
    counter 1..25; events reference sessions by uuid."""
    cluster, dbname, _ = fresh_db
    cluster.sql(
        """
        CREATE TABLE users (id serial PRIMARY KEY, name text);
        INSERT INTO users (name) SELECT 'user ' || g FROM generate_series(1, 90) g;
        DELETE FROM users WHERE id % 3 = 0;
        CREATE TABLE tags (id serial PRIMARY KEY, label text);
        INSERT INTO tags (label) SELECT 'tag ' || g FROM generate_series(1, 30) g;
        CREATE TABLE articles (id serial PRIMARY KEY, author_id integer, reviewer integer,
                               views integer, title text);
        INSERT INTO articles (author_id, reviewer, views, title)
        SELECT u.ids[1 + g % 40], u.ids[21 + g % 30], 1 + g % 25, 'article ' || g
        FROM generate_series(1, 200) g,
             (SELECT array_agg(id ORDER BY id) AS ids FROM users) u;
        INSERT INTO articles (author_id, reviewer, views, title) VALUES (999, 31, 1, 'orphan');
        CREATE TABLE sessions (id uuid PRIMARY KEY DEFAULT gen_random_uuid());
        INSERT INTO sessions SELECT FROM generate_series(1, 5);
        CREATE TABLE events (id bigserial PRIMARY KEY, session uuid);
        INSERT INTO events (session) SELECT id FROM sessions;
        ANALYZE;
        """,
        dbname=dbname,
    )
    return cluster, dbname


def test_references_without_foreign_keys_are_inferred_from_sampled_values(blog):
    cluster, dbname = blog
    target = _target(cluster, dbname)

    listed = suggestions_for(target)
    names = [s["name"] for s in listed]
    assert len(names) == len(set(names))  # never the same check twice
    suggestions = {s["name"]: s for s in listed}

    author = suggestions["orphaned articles (author_id -> users)"]
    # 40 valid authors and the orphan 999: 40 of 41 sampled distinct values are users' ids.
    assert author["evidence"] == {
        "sampled": 41,
        "contained": 40,
        "share_pct": 97.6,
        "chance": None,  # named like a reference: the name is evidence enough
        "candidate_table": "users",
        "candidate_column": "id",
        "sample_percent": 100.0,
        "other_candidates": [],
    }
    assert "40 of 41 sampled distinct values (97.6 %) are among users.id" in author["reason"]
    assert author["definition"]["parent_columns"] == ["id"]
    # Not named like a reference, but its 30 values are users' ids, which miss every third
    # number: (2/3) ** 30 says this is no coincidence.
    reviewer = suggestions["orphaned articles (reviewer -> users)"]
    assert reviewer["evidence"]["share_pct"] == 100.0
    assert reviewer["evidence"]["sampled"] == 30
    assert 0 < reviewer["evidence"]["chance"] < 0.001
    assert "by chance alone about" in reviewer["reason"]
    # A counter (1..25) fits inside tags' dense keys (1..30) whatever it counts: chance 1.
    assert not any("(views ->" in n for n in names)
    events = suggestions["orphaned events (session -> sessions)"]
    assert events["evidence"]["sampled"] == 5 and events["evidence"]["share_pct"] == 100.0
    # Tables' own keys and the parents themselves are never candidates.
    assert not any(n.startswith("orphaned users") or n.startswith("orphaned tags") for n in names)

    apply_suggestions(target, names=[author["name"]])
    results = _run(target)
    orphaned = results[author["name"]]
    assert orphaned.status == "violation" and orphaned.count == 1
    assert orphaned.sample == [[201]]

    # Once defined (whichever parent), the inferred check is marked as existing.
    again = {s["name"]: s for s in suggestions_for(target)}
    assert again[author["name"]]["exists"]
    assert not again[reviewer["name"]]["exists"]


def test_reference_inference_is_bounded_by_pairs_and_per_probe_timeouts(
    blog, holders, settings, caplog
):
    cluster, dbname = blog
    target = _target(cluster, dbname)

    # A migration holds users exclusively: probes against it give up at the lock timeout
    # instead of waiting, and the rest of the suggestions still come.
    holder = holders(cluster, dbname).send("BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE;")
    holder.wait_state("state = 'idle in transaction'")
    started = time.monotonic()
    suggestions = {s["name"]: s for s in suggestions_for(target)}
    assert time.monotonic() - started < 5
    assert "orphaned articles (author_id -> users)" not in suggestions
    assert "orphaned events (session -> sessions)" in suggestions
    holder.kill()

    # A cap on (column, table) pairs: the first column is probed against one table, then
    # inference stops and says so.
    settings.QUELL_INTEGRITY_INFER_MAX_PAIRS = 1
    with caplog.at_level("WARNING", logger="diagnostics.integrity.suggest"):
        capped = suggestions_for(target)
    assert not any("evidence" in s for s in capped)
    assert any("stopped after 1 probes (pair cap reached)" in m for m in caplog.messages)
