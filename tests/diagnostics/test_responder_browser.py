"""In a real browser, on a throwaway cluster with a real blocking chain (issue 13, items 1, 3, 9):
declare with the database, see the root blocker at the top of the incident page, terminate it
from the finding, then compare the runs before and after. Screenshots of each step go to
test-artifacts/<test name>/."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from diagnostics.models import DiagnosticRun
from incidents.models import Incident
from tests.factories import TargetDatabaseFactory, UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

APP_ROLE = "shop_app"


@pytest.fixture
def eager_tasks():
    """Runs execute in the request that queues them: no worker in this test."""
    from config.celery import app

    saved = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = saved


@pytest.fixture
def shop(pg15, holders):
    """A shop database on the throwaway cluster: a session idle in transaction holds a row of
    "User" (the root), two checkout updates wait on it, a third waits on one of those."""
    dbname = f"shop_{id(pg15) % 100000}"
    pg15.drop_database(dbname)
    pg15.create_database(dbname)
    pg15.sql(
        f"DO $$ BEGIN CREATE ROLE {APP_ROLE} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; "
        "END $$;",
        dbname="postgres",
    )
    pg15.sql(
        'CREATE TABLE "User" (id serial PRIMARY KEY, email text);'
        "INSERT INTO \"User\" (email) SELECT 'u' || g FROM generate_series(1, 20) g;"
        f'GRANT SELECT, UPDATE ON "User" TO {APP_ROLE};',
        dbname=dbname,
    )
    root = holders(pg15, dbname, APP_ROLE)
    root.send('BEGIN; SELECT * FROM "User" WHERE id = 1 FOR UPDATE;')
    root.wait_state("state = 'idle in transaction'")
    writers = []
    for n in range(2):
        writer = holders(pg15, dbname, APP_ROLE)
        writer.send(f"UPDATE \"User\" SET email = 'checkout-{n}' WHERE id = 1;")
        writer.wait_state("wait_event_type = 'Lock'")
        writers.append(writer)
    yield pg15, dbname, root, writers
    for holder in [root, *writers]:
        holder.kill()
    pg15.drop_database(dbname)


def test_declare_see_the_root_blocker_terminate_it_and_compare(
    page, live_server, login, screenshot, shop, eager_tasks
):
    cluster, dbname, root, writers = shop
    page.set_default_timeout(20_000)
    target = TargetDatabaseFactory(
        name="shop-db",
        host=cluster.host,
        port=cluster.port,
        database=dbname,
        user="postgres",
        sslmode="disable",
        remediation_allowed=True,
    )
    commander = UserFactory(
        username="ines", first_name="Ines", last_name="Ortega", role="commander"
    )
    login(commander)

    # 1. Declare with the database (the form opened from the databases page's link).
    page.goto(f"{live_server.url}/incidents/declare/?targets={target.pk}&kind=availability")
    picker = page.locator("select[name=affected_targets]")
    expect(picker).to_be_visible()
    assert picker.evaluate("s => [...s.selectedOptions].map(o => o.textContent)") == [
        "shop-db (production)"
    ]
    page.fill("input[name=title]", "Checkout writes hang")
    page.locator("label.severity-choice.sev1").click()
    screenshot("1-declare-with-the-database")
    page.get_by_role("button", name="Declare incident").click()
    expect(page.locator("h1")).to_have_text("Checkout writes hang")
    incident = Incident.objects.get(title="Checkout writes hang")
    first_run = DiagnosticRun.objects.get(incident=incident)
    assert first_run.trigger == "incident" and first_run.status == "succeeded"

    # 2. The root blocker at the top of the page, with the tree of who waits on whom.
    top = page.locator(f"#what-matters-{incident.pk}")
    expect(top.locator(".wm-root")).to_contain_text(f"Root blocker: pid {root.pid}")
    expect(top.locator(".wm-root")).to_contain_text("blocks 2 sessions")
    tree = top.locator(".blocking-tree")
    expect(tree.locator(".tree-node.root")).to_contain_text(f"Root blocker pid {root.pid}")
    for writer in writers:
        expect(tree).to_contain_text(f"pid {writer.pid} waits")
    expect(tree).to_contain_text("idle in transaction")
    expect(tree).to_contain_text('UPDATE "User" SET email = \'checkout-')
    # The what-matters panel sits above the summary card.
    top_y = top.bounding_box()["y"]
    assert top_y < page.locator("#summary-heading").bounding_box()["y"]
    screenshot("2-root-blocker-at-the-top")
    top.screenshot(path=screenshot("2-root-blocker-at-the-top").with_name("2b-what-matters.png"))

    # 3. From the finding to the fix: the preview says it is the root blocker, ticked.
    top.get_by_role("link", name=f"Terminate root blocker {root.pid} (blocks 2)").first.click()
    panel = page.locator(f"#remediation-body-{incident.pk}")
    expect(panel.locator(".quell-rem-finding")).to_contain_text(
        f"pid {root.pid} is the root blocker"
    )
    expect(panel.locator(".quell-rem-finding")).to_contain_text("that very session")
    expect(panel.locator(f"input[name=backend][value^='{root.pid}|']")).to_be_checked()
    panel.screenshot(
        path=screenshot("3-preview-of-the-root-blocker").with_name("3b-preview-panel.png")
    )
    page.once("dialog", lambda dialog: dialog.accept())
    panel.get_by_role("button", name=re.compile("Confirm: terminate")).click()
    expect(panel.locator("td.o-terminated").first).to_have_text("terminated")
    cluster.wait_for(
        "SELECT count(*) = 0 FROM pg_stat_activity WHERE wait_event_type = 'Lock'", dbname=dbname
    )
    screenshot("4-root-blocker-terminated")

    # 4. What matters says the findings may be gone; run again, then compare before and after.
    top = page.locator(f"#what-matters-{incident.pk}")
    expect(top.locator(".wm-stale")).to_contain_text("A remediation ran after this run")
    top.get_by_role("button", name="Run diagnostics on shop-db again").click()
    expect(page.locator(f"#what-matters-{incident.pk} .wm-stale")).to_have_count(0)
    second = DiagnosticRun.objects.filter(incident=incident).exclude(pk=first_run.pk).get()
    after = page.locator(f"#what-matters-{incident.pk} .wm-target")
    expect(after).to_contain_text(f"run #{second.pk}")
    expect(after.locator(".wm-root")).to_have_count(0)
    screenshot("4c-what-matters-after")
    page.goto(f"{live_server.url}/diagnostics/runs/{second.pk}/")
    expect(page.get_by_role("link", name=f"#{incident.pk} Checkout writes hang")).to_be_visible()
    compare = page.get_by_role("button", name="Compare")
    assert "button" in (compare.get_attribute("class") or "")
    page.locator("#compare-with").select_option(str(first_run.pk))
    compare.click()
    changed = page.locator("table.compare tr.status-changed")
    expect(changed.filter(has_text="Locks and blocking chains")).to_have_count(1)
    locks = page.locator(".compare-check", has_text="Locks and blocking chains")
    expect(locks.locator(".cleared")).to_contain_text("root blocker")
    html = page.content()
    assert "[{'" not in html and "{'mode'" not in html
    page.locator("section.quell-diagnostics").screenshot(
        path=screenshot("5-compare-before-and-after").with_name("5b-compare.png")
    )

    # The first run's page: readable findings with the tree and the fix offers.
    page.goto(f"{live_server.url}/diagnostics/runs/{first_run.pk}/")
    expect(page.locator(".blocking-tree .tree-node.root")).to_contain_text(str(root.pid))
    page.get_by_text(re.compile(r"All \d+ check\(s\)")).click()
    locks = page.locator("table.checks tr", has_text="Locks and blocking chains")
    expect(locks.locator("th").filter(has_text="Transaction open")).to_be_visible()
    expect(locks.locator("td.fixes")).to_contain_text([f"Terminate root blocker {root.pid}"])
    assert "[{'" not in page.content()
    screenshot("6-run-page")

    # The databases page: the target reads by its health, with no grey "skipped".
    page.goto(f"{live_server.url}/diagnostics/")
    row = page.locator("tr", has_text="shop-db")
    expect(row.locator(".st-skipped")).to_have_count(0)
    screenshot("7-databases")
