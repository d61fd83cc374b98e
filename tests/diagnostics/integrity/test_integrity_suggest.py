"""Suggested checks from the catalog: the demo shop (foreign keys, unique indexes, an enum role,
published posts) and the planted database (references without foreign keys)."""

import os
import uuid
from pathlib import Path

import psycopg
import pytest
from django.urls import reverse

from diagnostics.integrity import services as integrity
from diagnostics.integrity.models import IntegrityResult
from diagnostics.integrity.suggest import apply_suggestions, suggestions_for
from tests.diagnostics.integrity.integrity_support import PG, _drop, shop_sql
from tests.diagnostics.records import make_target

pytestmark = pytest.mark.django_db

SHOP_SQL = Path(__file__).resolve().parents[3] / "diagnostics" / "demo" / "shop.sql"


@pytest.fixture
def demo_shop():
    name = f"quell_f_demo_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(**PG, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(**{**PG, "dbname": name}, autocommit=True) as conn:
        conn.execute(SHOP_SQL.read_text())
    yield name
    _drop(name)


def test_demo_shop_suggestions_follow_its_constraints_and_pass_until_an_fk_is_bypassed(
    demo_shop, admin_api, responder_api
):
    target = make_target(name="demo-shop", database=demo_shop)
    url = reverse("diagnostics-integrity-suggestions", kwargs={"pk": target.pk})
    listed = responder_api.get(url)
    assert listed.status_code == 200
    by_name = {s["name"]: s for s in listed.json()["results"]}
    assert "orphaned Profile (userId -> User)" in by_name
    assert by_name["orphaned Profile (userId -> User)"]["reason"] == (
        "foreign key Profile_userId_fkey"
    )
    for name in (
        "orphaned Post (authorId -> User)",
        "orphaned OrderItem (orderId -> Order)",
        "orphaned OrderItem (productId -> Product)",
        "duplicate User (email)",
        "duplicate Product (sku)",
        "User with role ADMIN",
        "published Post without title or content",
        "User records",
    ):
        assert name in by_name, sorted(by_name)
    assert not any(s["name"].startswith("_prisma") for s in listed.json()["results"])
    assert responder_api.post(url, {}, format="json").status_code == 403
    created = admin_api.post(url, {}, format="json")
    assert created.status_code == 201
    assert len(created.json()) == len(by_name)
    # Applying again creates nothing: every suggestion now exists.
    assert admin_api.post(url, {}, format="json").json() == []
    assert all(s["exists"] for s in responder_api.get(url).json()["results"])

    run = integrity.integrity_run_execute(
        run_id=integrity.integrity_run_start(target_id=target.pk, purpose="baseline").pk
    )
    assert run.status == "succeeded" and run.checks_violated == 0 and run.checks_errored == 0
    admins = IntegrityResult.objects.get(run=run, check_name="User with role ADMIN")
    assert admins.count == 3
    # A restore with triggers off (replication role) bypasses the foreign keys.
    shop_sql(
        demo_shop,
        'SET session_replication_role = replica; DELETE FROM "User" WHERE id = 5;',
    )
    after = integrity.integrity_run_execute(
        run_id=integrity.integrity_run_start(target_id=target.pk, purpose="verification").pk
    )
    results = {r.check_name: r for r in IntegrityResult.objects.filter(run=after)}
    assert results["orphaned Profile (userId -> User)"].sample == [[5]]
    assert results["orphaned Post (authorId -> User)"].count >= 1
    assert after.checks_violated >= 2
    assert "orphaned Profile (userId -> User) 0 -> 1" in after.summary


def test_references_without_foreign_keys_are_inferred(shop_target):
    suggestions = {s["name"]: s for s in suggestions_for(shop_target)}
    inferred = suggestions["orphaned profiles (user_id -> users)"]
    assert "no foreign key" in inferred["reason"]
    assert inferred["definition"]["parent_columns"] == ["id"]
    assert "users with role ADMIN" in suggestions
    assert suggestions["users with role ADMIN"]["definition"]["predicate"] == "\"role\" = 'ADMIN'"
    created = apply_suggestions(shop_target, names=["orphaned profiles (user_id -> users)"])
    assert [c.name for c in created] == ["orphaned profiles (user_id -> users)"]
