"""Test checks for the diagnostics service, API, admin and task tests (their fixtures,
test_checks, target_dbname, markers, live_target, are in tests/diagnostics/conftest.py).

A scratch database on the machine's PostgreSQL (127.0.0.1:5432) is the target; two small checks
defined here read it, so these tests do not depend on the full check suite's timing. The suite
itself is exercised by the check tests and the end-to-end test.
"""

from __future__ import annotations

from diagnostics.checks.base import Check, CheckOutcome, CheckStatus, Family

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "postgres"}


class CounterCheck(Check):
    """Reads pg_stat_database counters: gives metrics for comparisons."""

    key = "d2_test_counters"
    title = "Test counters"
    family = Family.ERRORS

    def run(self, session):
        row = session.one(
            "SELECT xact_commit, xact_rollback, tup_returned FROM pg_stat_database "
            "WHERE datname = current_database()"
        )
        return CheckOutcome(
            CheckStatus.OK,
            f"{row['xact_commit']} commits",
            metrics={k: int(v) for k, v in row.items()},
        )


class MarkerCheck(Check):
    """Warns about every row of the target's d2_markers table (findings a test controls)."""

    key = "d2_test_markers"
    title = "Test markers"
    family = Family.CHANGES
    default_thresholds = {"critical_at": 3}

    def run(self, session):
        rows = session.query("SELECT name, size FROM d2_markers ORDER BY name")
        if not rows:
            return CheckOutcome(CheckStatus.OK, "no markers")
        status = (
            CheckStatus.CRITICAL
            if len(rows) >= self.thresholds["critical_at"]
            else CheckStatus.WARNING
        )
        return CheckOutcome(status, f"{len(rows)} marker(s)", findings=rows)


TEST_KEYS = [CounterCheck.key, MarkerCheck.key]
TEST_SUITE = {"keys": TEST_KEYS}
