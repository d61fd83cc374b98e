"""Running integrity checks against a target: one read-only session (diagnostics.target), a
savepoint and a statement timeout per check. Never raises for the target's problems: each check
gets a result with status ok, violation or error."""

from __future__ import annotations

import dataclasses
import datetime
import re
import time
from decimal import Decimal
from typing import Any

from django.conf import settings

from diagnostics.target import SessionBroken, TargetUnreachable, Timeouts, open_session

from .compiler import IntegrityCheckError, compile_check, expected_for, violates


@dataclasses.dataclass
class Outcome:
    check_id: int
    status: str
    count: int | None = None
    expected: dict = dataclasses.field(default_factory=dict)
    sample: list = dataclasses.field(default_factory=list)
    sample_columns: list = dataclasses.field(default_factory=list)
    metrics: dict = dataclasses.field(default_factory=dict)
    sql: str = ""
    duration_ms: int = 0
    error: str = ""


def base_timeouts() -> Timeouts:
    return Timeouts(
        connect_s=settings.QUELL_DIAGNOSTICS_CONNECT_TIMEOUT_S,
        statement_ms=settings.QUELL_INTEGRITY_STATEMENT_TIMEOUT_MS,
        lock_ms=settings.QUELL_DIAGNOSTICS_LOCK_TIMEOUT_MS,
    )


def check_timeouts(check, base: Timeouts) -> Timeouts:
    """The session's bounds with this check's own statement timeout (capped)."""
    if not check.timeout_ms:
        return base
    statement_ms = min(int(check.timeout_ms), settings.QUELL_INTEGRITY_MAX_STATEMENT_TIMEOUT_MS)
    return dataclasses.replace(base, statement_ms=max(1, statement_ms))


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (datetime.date, datetime.datetime, datetime.time)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if isinstance(value, (str, int, float, bool, dict)) or value is None:
        return value
    if isinstance(value, (bytes, memoryview)):
        return "\\x" + bytes(value).hex()
    return str(value)


PK_SQL = """
SELECT c.relkind::text AS relkind, a.attname,
       (SELECT f.attname FROM pg_attribute f
        WHERE f.attrelid = c.oid AND f.attnum > 0 AND NOT f.attisdropped
        ORDER BY f.attnum LIMIT 1) AS first_column
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
LEFT JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON true
LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
ORDER BY k.ord
"""


def _sample_key(session, check) -> list[str]:
    """The columns that identify a sampled row: the primary key; for a table without one its
    ctid ([]); for a view or foreign table (no ctid) the check's columns or the first column."""
    schema, table = check.schema_name or "public", check.table_name
    rows = session.query(PK_SQL, (schema, table))
    if not rows:
        raise IntegrityCheckError(f"Table {schema}.{table} does not exist.")
    pk = [r["attname"] for r in rows if r["attname"]]
    if pk or rows[0]["relkind"] not in ("v", "f"):
        return pk
    return list(check.columns) or [rows[0]["first_column"]]


def _run_one(session, check, base: Timeouts, sample_limit: int) -> Outcome:
    outcome = Outcome(check_id=check.pk, status="error", expected=expected_for(check))
    started = time.monotonic()
    timeouts = check_timeouts(check, base)
    try:
        with session.savepoint():
            # SET LOCAL inside the savepoint: kept for this check, set again for the next one.
            session.execute(f"SET LOCAL statement_timeout = {int(timeouts.statement_ms)}")
            session.timeouts = timeouts  # the client-side watchdog follows the server's limit
            pk = _sample_key(session, check) if check.table_name else []
            compiled = compile_check(check, pk=pk, sample_limit=sample_limit)
            outcome.sql = compiled.text()
            rows = session.query(outcome.sql)
        _read(compiled, rows, outcome)
        outcome.status = "violation" if violates(outcome.count, outcome.expected) else "ok"
    except IntegrityCheckError as exc:
        outcome.error = str(exc)
    except SessionBroken as exc:
        outcome.error = str(exc)
    except Exception as exc:  # psycopg errors: timeouts, missing columns, permissions
        outcome.error = _describe_error(exc, timeouts)
    finally:
        session.timeouts = base
        outcome.duration_ms = int((time.monotonic() - started) * 1000)
    return outcome


# SQLSTATE classes whose messages only name things from the check's own definition (a missing
# column or table, a permission, a read-only transaction, a resource limit): shown as they are.
_SHOWN_CLASSES = ("42", "25", "40", "53")


def _describe_error(exc: Exception, timeouts: Timeouts) -> str:
    """What a result says about the target's error, for everyone who can see the result.

    Other errors' messages quote values: a failed cast echoes the row's text, a function
    reading a file puts the file into the message, a view's RAISE says anything. Those are
    named by condition only, never with the target's text.
    """
    sqlstate = getattr(exc, "sqlstate", None) or ""
    if sqlstate == "57014":
        return (
            f"Cancelled after the statement timeout ({timeouts.statement_ms} ms); give the "
            "check a longer timeout or a narrower predicate."
        )
    if sqlstate == "55P03":
        return f"Could not get a lock within {timeouts.lock_ms} ms (a table is locked)."
    diag = getattr(exc, "diag", None)
    primary = (getattr(diag, "message_primary", None) or "").strip()
    if sqlstate[:2] in _SHOWN_CLASSES and primary:
        return primary
    condition = re.sub(r"(?<!^)(?=[A-Z])", " ", type(exc).__name__).lower()
    return (
        f"The target refused the check: {condition} (SQLSTATE {sqlstate or 'unknown'}). The "
        "target's message is not shown: it can quote row data or file contents."
    )


def _read(compiled, rows: list[dict], outcome: Outcome) -> None:
    if compiled.mode == "count":
        outcome.count = int(rows[0]["quell_total"]) if rows else 0
        return
    if compiled.mode == "groups":
        outcome.count = int(rows[0]["quell_groups"]) if rows else 0
        total = int(rows[0]["quell_rows_total"]) if rows else 0
        outcome.metrics = {"rows": total, "extra_rows": total - outcome.count}
        outcome.sample_columns = ["rows", "keys"]
        outcome.sample = [[int(r["quell_rows"]), _json_value(r["quell_keys"])] for r in rows]
        return
    outcome.count = int(rows[0]["quell_total"]) if rows else 0
    columns = list(compiled.sample_columns) or [
        c for c in (rows[0].keys() if rows else []) if c != "quell_total"
    ]
    outcome.sample_columns = columns
    outcome.sample = [[_json_value(row.get(c)) for c in columns] for row in rows]


def run_integrity_checks(
    spec, checks: list, *, sample_limit: int | None = None
) -> tuple[list, str]:
    """(outcomes, error): every check's outcome, or no outcomes and why the target failed."""
    sample_limit = sample_limit or settings.QUELL_INTEGRITY_SAMPLE_ROWS
    base = base_timeouts()
    try:
        with open_session(spec, base) as session:
            return [_run_one(session, check, base, sample_limit) for check in checks], ""
    except TargetUnreachable as exc:
        return [], f"Target unreachable: {exc}"


def explain_check(spec, check) -> dict:
    """Compile a (possibly unsaved) check and EXPLAIN it on the target without running it:
    the SQL, the planner's row and cost estimates, or the error the target gives."""
    base = base_timeouts()
    out: dict[str, Any] = {"sql": "", "estimated_rows": None, "estimated_cost": None, "error": ""}
    try:
        with open_session(spec, base) as session:
            pk = _sample_key(session, check) if check.table_name else []
            compiled = compile_check(
                check, pk=pk, sample_limit=settings.QUELL_INTEGRITY_SAMPLE_ROWS
            )
            out["sql"] = compiled.text()
            plan = session.scalar("EXPLAIN (FORMAT JSON) " + out["sql"])
            top = (plan[0] if isinstance(plan, list) else {}).get("Plan", {})
            out["estimated_rows"] = top.get("Plan Rows")
            out["estimated_cost"] = top.get("Total Cost")
    except TargetUnreachable as exc:
        out["error"] = f"Target unreachable: {exc}"
    except IntegrityCheckError as exc:
        out["error"] = str(exc)
    except Exception as exc:  # the target's answer: unknown column, type mismatch, permission
        out["error"] = _describe_error(exc, base)
    return out
