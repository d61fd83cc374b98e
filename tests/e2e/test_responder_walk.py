"""The responder's hour, walked in a real browser (issue 13's proof).

An on-call engineer on a throwaway PostgreSQL cluster with a real blocking chain (a session
idle in transaction holds a row of "User", checkout updates queue behind it), with a real
Celery worker running every diagnostic run:

1. declare with the database;
2. see the root blocker at the top of the page;
3. terminate it from the finding, as the Technical Lead;
4. compare before and after;
5. publish readable updates;
6. resolve;
7. write the postmortem with a gated action item that stays open until the check holds over
   its window.

Screenshots of each step go to test-artifacts/<test name>/.
"""

from __future__ import annotations

import datetime
import re

import pytest
from django.db.models import F
from playwright.sync_api import expect

from diagnostics.models import DiagnosticRun
from incidents.models import Incident
from postmortems.models import ActionItem
from tests.celery_worker import celery_worker
from tests.diagnostics.clusters import PG15_BIN, Cluster
from tests.factories import TargetDatabaseFactory, UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

APP_ROLE = "shop_app"
SHOP = "shop"


@pytest.fixture(scope="module")
def cluster():
    cluster = Cluster("walk", PG15_BIN).start()
    yield cluster
    cluster.stop()


@pytest.fixture
def blocking_chain(cluster):
    """The shop database: a session of the application role idle in transaction holds row 1
    of "User"; two checkout updates wait on it."""
    cluster.drop_database(SHOP)
    cluster.create_database(SHOP)
    cluster.sql(
        f"DO $$ BEGIN CREATE ROLE {APP_ROLE} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; "
        "END $$;",
        dbname="postgres",
    )
    cluster.sql(
        'CREATE TABLE "User" (id serial PRIMARY KEY, email text);'
        "INSERT INTO \"User\" (email) SELECT 'u' || g FROM generate_series(1, 20) g;"
        f'GRANT SELECT, UPDATE ON "User" TO {APP_ROLE};'
        # Only the application connects to the shop (besides the superuser Quell uses).
        f"REVOKE CONNECT ON DATABASE {SHOP} FROM PUBLIC;"
        f"GRANT CONNECT ON DATABASE {SHOP} TO {APP_ROLE};",
        dbname=SHOP,
    )
    root = cluster.holder(SHOP, APP_ROLE)
    root.send('BEGIN; SELECT * FROM "User" WHERE id = 1 FOR UPDATE;')
    root.wait_state("state = 'idle in transaction'")
    writers = []
    for n in range(2):
        writer = cluster.holder(SHOP, APP_ROLE)
        writer.send(f"UPDATE \"User\" SET email = 'checkout-{n}' WHERE id = 1;")
        writer.wait_state("wait_event_type = 'Lock'")
        writers.append(writer)
    yield root, writers
    for holder in [root, *writers]:
        holder.kill()
    cluster.drop_database(SHOP)
    cluster.sql(f"ALTER ROLE {APP_ROLE} RESET ALL", dbname="postgres")


@pytest.fixture
def worker(tmp_path, live_server):
    with celery_worker(tmp_path, name="quell-walk", consume_default=True) as running:
        yield running


def test_the_responders_hour(
    page, browser, live_server, login, screenshot, cluster, blocking_chain, worker
):
    root, writers = blocking_chain
    page.set_default_timeout(30_000)
    target = TargetDatabaseFactory(
        name="shop-db",
        host=cluster.host,
        port=cluster.port,
        database=SHOP,
        user="postgres",
        sslmode="disable",
        remediation_allowed=True,
    )
    ines = UserFactory(username="ines", first_name="Ines", last_name="Ortega", role="commander")
    tomas = UserFactory(username="tomas", first_name="Tomas", last_name="Lind", role="responder")

    # 1. Declare with the database: the form offers it, and the run starts at detection.
    login(ines)
    page.goto(f"{live_server.url}/incidents/declare/")
    page.get_by_label("Title").fill("Checkout writes hang")
    page.locator("label.severity-choice.sev1").click()
    page.get_by_label("Kind").select_option("availability")
    page.locator("select[name=affected_targets]").select_option(label="shop-db (production)")
    screenshot("1-declare-with-the-database")
    page.get_by_role("button", name="Declare incident").click()
    expect(page.locator("h1")).to_have_text("Checkout writes hang")
    incident = Incident.objects.get(title="Checkout writes hang")
    assert incident.severity == "SEV1"
    first_run = DiagnosticRun.objects.get(incident=incident)
    assert first_run.trigger == "incident"

    # 2. The worker runs it; the root blocker appears at the top of the page by itself.
    top = page.locator(f"#what-matters-{incident.pk}")
    expect(top.locator(".wm-root")).to_contain_text(f"Root blocker: pid {root.pid}", timeout=60_000)
    expect(top.locator(".wm-root")).to_contain_text("blocks 2 sessions")
    tree = top.locator(".blocking-tree")
    for writer in writers:
        expect(tree).to_contain_text(f"pid {writer.pid} waits")
    expect(tree).to_contain_text("idle in transaction")
    assert top.bounding_box()["y"] < page.locator("#summary-heading").bounding_box()["y"]
    first_run.refresh_from_db()
    assert first_run.status == "succeeded"
    screenshot("2-root-blocker-at-the-top")

    # The Incident Commander names the Technical Lead.
    roles = page.locator("form[data-assign-form]")
    roles.locator("select[name=role]").select_option("technical_lead")
    roles.get_by_label("Person").select_option(label="Tomas Lind (tomas)")
    roles.get_by_role("button", name="Assign").click()
    expect(page.locator(".notice.success")).to_have_text("Tomas Lind is now Technical Lead.")

    # 3. The Technical Lead, on a browser of their own, terminates the root blocker from the
    #    finding.
    context = browser.new_context(viewport=page.viewport_size)
    lead = context.new_page()
    lead.set_default_timeout(30_000)
    sign_in(lead, live_server, tomas)
    lead.goto(f"{live_server.url}/incidents/{incident.pk}/")
    top = lead.locator(f"#what-matters-{incident.pk}")
    top.get_by_role("link", name=f"Terminate root blocker {root.pid} (blocks 2)").first.click()
    panel = lead.locator(f"#remediation-body-{incident.pk}")
    expect(panel.locator(".quell-rem-finding")).to_contain_text(
        f"pid {root.pid} is the root blocker"
    )
    expect(panel.locator(f"input[name=backend][value^='{root.pid}|']")).to_be_checked()
    lead.screenshot(path=screenshot.folder / "3a-preview-as-technical-lead.png", full_page=True)
    lead.once("dialog", lambda dialog: dialog.accept())
    panel.get_by_role("button", name=re.compile("Confirm: terminate")).click()
    expect(panel.locator("td.o-terminated").first).to_have_text("terminated")
    cluster.wait_for(
        "SELECT count(*) = 0 FROM pg_stat_activity WHERE wait_event_type = 'Lock'", dbname=SHOP
    )
    expect(lead.locator("#timeline")).to_contain_text("Tomas Lind")
    lead.screenshot(path=screenshot.folder / "3b-root-blocker-terminated.png", full_page=True)

    # 4. Run again (the worker takes it), then compare before and after.
    top = lead.locator(f"#what-matters-{incident.pk}")
    expect(top.locator(".wm-stale")).to_contain_text("A remediation ran after this run")
    top.get_by_role("button", name="Run diagnostics on shop-db again").click()
    expect(lead.locator(f"#what-matters-{incident.pk} .wm-stale")).to_have_count(0, timeout=60_000)
    second = DiagnosticRun.objects.filter(incident=incident).exclude(pk=first_run.pk).get()
    expect(lead.locator(f"#what-matters-{incident.pk} .wm-target")).to_contain_text(
        f"run #{second.pk}", timeout=60_000
    )
    expect(lead.locator(f"#what-matters-{incident.pk} .wm-root")).to_have_count(0)
    lead.goto(f"{live_server.url}/diagnostics/runs/{second.pk}/")
    lead.locator("#compare-with").select_option(str(first_run.pk))
    lead.get_by_role("button", name="Compare").click()
    locks = lead.locator(".compare-check", has_text="Locks and blocking chains")
    expect(locks.locator(".cleared")).to_contain_text("root blocker")
    assert "[{'" not in lead.content()
    lead.screenshot(path=screenshot.folder / "4-compare-before-and-after.png", full_page=True)
    context.close()

    # 5. The Incident Commander publishes readable updates: diagnostics as sentences, the
    #    termination among the actions taken, nothing raw.
    page.reload()
    page.locator("#id_transition_reason").fill(
        "A session of the shop app held a row lock on User for minutes (idle in transaction)"
    )
    page.get_by_role("button", name="Cause identified").click()
    expect(page.locator(".incident-head")).to_contain_text("Identified")
    comms = page.locator("#panel-comms")
    comms.get_by_label("Template").select_option(label="Status update (internal)")
    comms.get_by_role("button", name="Compose").click()
    message = comms.locator("form.comms-composer").get_by_label("Message")
    expect(message).to_be_visible()
    text = message.input_value()
    assert "uptime s" not in text and "connect ms" not in text, text
    diagnostics = text.split("Diagnostic Information:")[1].split("Actions Taken:")[0]
    assert "- shop-db, diagnostics at" in diagnostics, diagnostics
    actions = text.split("Actions Taken:")[1].split("Next Steps:")[0]
    assert f"(pid {root.pid} terminated: the session ended). (Tomas Lind)" in actions, actions
    assert "Status changed from investigating to identified" in actions, actions
    assert "Diagnostic" not in actions and "note" not in actions.lower(), actions
    message.fill(
        re.sub(r"\[TO FILL[^\]]*\]", "Checkout writes flow again; watching for 30 minutes", text)
    )
    comms.locator("form.comms-composer").get_by_role("button", name="Publish").click()
    expect(comms).to_contain_text("Checkout writes flow again", timeout=15_000)
    screenshot("5a-internal-update-published")
    comms.screenshot(path=screenshot.folder / "5a-comms-panel.png")

    comms.get_by_label("Template").select_option(label="Status page: Identified (external)")
    comms.get_by_role("button", name="Compose").click()
    composer = comms.locator("form.comms-composer")
    body = composer.get_by_label("Message")
    body.fill(re.sub(r"\[TO FILL[^\]]*\]", "15 minutes", body.input_value()))
    composer.get_by_role("button", name="Publish").click()
    expect(comms).to_contain_text("restore service within 15 minutes", timeout=15_000)
    page.goto(f"{live_server.url}/status/")
    expect(page.locator("body")).to_contain_text("restore service within 15 minutes")
    screenshot("5b-status-page")

    # 6. Resolve.
    page.goto(f"{live_server.url}/incidents/{incident.pk}/")
    page.get_by_role("button", name="Resolve").click()
    expect(page.locator(".incident-head")).to_contain_text("Resolved")
    expect(page.locator("#panel-postmortems")).to_contain_text("Open postmortem")
    screenshot("6-resolved")

    # 7. The postmortem, with an action item gated on the locks check over a window.
    page.locator("#panel-postmortems").get_by_role("link", name="Open postmortem").click()
    expect(page.locator("h1")).to_contain_text("Postmortem")
    walk_postmortem_gate(page, screenshot, incident, target, cluster)


def row_item_id(row) -> int:
    return int(row.get_attribute("data-item"))


def sign_in(page, live_server, user, password="pw-for-tests"):
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", user.get_username())
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_load_state()


def add_gated_item(page, title: str, target, check_label: str):
    page.locator("#action-items summary", has_text="Add an action item").click()
    form = page.locator("#action-item-form")
    form.get_by_label("Title").fill(title)
    form.get_by_label("Verify on target").select_option(label=str(target))
    form.get_by_label("Verification check").select_option(label=check_label)
    expect(form.get_by_label("Must hold for (minutes)")).to_have_value("")
    form.get_by_role("button", name="Add action item").click()
    row = page.locator("#action-items tr", has_text=title)
    expect(row).to_be_visible()
    return row


def walk_postmortem_gate(page, screenshot, incident, target, cluster):
    """Write the postmortem and add two gated action items. The fix of a definition (the
    application role's idle_in_transaction_session_timeout) is verified by one pass once it is
    made; a state (no blocking chain) must keep passing over its window: verifying it now keeps
    the item open, and once the window is up the page runs the check again by itself and the
    item closes, without a reload."""
    page.get_by_label("Summary").fill(
        "A shop_app session idle in transaction held a row lock on User; checkout writes queued "
        "behind it for minutes until the Technical Lead terminated it."
    )
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".messages")).to_contain_text("Saved (version")
    items = page.locator("#action-items")

    timeout = add_gated_item(
        page,
        "Set idle_in_transaction_session_timeout for shop_app",
        target,
        "Idle-in-transaction timeouts (idle_transaction_timeouts)",
    )
    expect(timeout).not_to_contain_text("must keep passing")  # a definition: one pass
    timeout.get_by_role("button", name="Verify and close").click()
    expect(timeout.locator(".pm-check-warning")).to_contain_text(
        f"without an idle-in-transaction timeout ({APP_ROLE})", timeout=60_000
    )
    expect(timeout.locator(".pm-item-status")).to_have_text("Open")
    screenshot("7a-fix-not-made-yet")
    cluster.sql(
        f"ALTER ROLE {APP_ROLE} SET idle_in_transaction_session_timeout = '60s'", dbname=SHOP
    )
    timeout.get_by_role("button", name="Verify and close").click()
    expect(timeout.locator(".pm-item-status")).to_have_text("Done", timeout=60_000)

    chain = add_gated_item(
        page,
        "Alert on lock queues behind idle transactions",
        target,
        "Locks and blocking chains (blocking_locks)",
    )
    expect(chain).to_contain_text("must keep passing for 10 min")
    chain.get_by_role("button", name="Verify and close").click()
    # The worker runs the check; the list follows by itself: passed, but held open.
    expect(chain.locator(".pm-check-holding")).to_contain_text(
        "it must hold for 10 minutes", timeout=60_000
    )
    expect(chain.locator(".pm-item-status")).to_have_text("Open")
    screenshot("7b-gate-holds-open-over-its-window")
    items.screenshot(path=screenshot.folder / "7b-action-items.png")

    # Eleven minutes on (the item's first pass and every run so far moved back in time), the
    # page runs the check again by itself and closes the item.
    eleven = datetime.timedelta(minutes=11)
    ActionItem.objects.filter(pk=row_item_id(chain)).update(
        passing_since=F("passing_since") - eleven
    )
    DiagnosticRun.objects.filter(target=target).update(
        queued_at=F("queued_at") - eleven, started_at=F("started_at") - eleven
    )
    expect(chain.locator(".pm-item-status")).to_have_text("Done", timeout=90_000)
    item = ActionItem.objects.get(pk=row_item_id(chain))
    assert item.verification_status == "ok" and item.completed_at is not None
    verifications = DiagnosticRun.objects.filter(target=target, suite={"keys": ["blocking_locks"]})
    assert verifications.count() == 2  # the first pass, and the one when the window was up
    screenshot("7c-gates-verified")
    items.screenshot(path=screenshot.folder / "7c-action-items.png")
