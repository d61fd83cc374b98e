"""What a target is and lacks, read through a session: its managed platform, whether
pg_stat_statements can be read, and the "Test connection" probe (reachability, latency,
version, recovery, missing grants).

Catalog reads on top of diagnostics.target (which opens the sessions); like it, nothing here
touches Quell's own database and no message carries a credential.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from .target import (
    ConnectionSpec,
    SessionBroken,
    TargetSession,
    TargetUnreachable,
    Timeouts,
    connection_error_message,
    open_session,
    quote_ident,
    scrub,
)

# Settings a managed platform leaves behind, by platform. Checked in pg_settings and pg_roles.
_PLATFORM_SETTINGS = [
    ("aurora", "apg_%"),
    ("aurora", "aurora_%"),
    ("rds", "rds.%"),
    ("azure", "azure.%"),
    ("gcp", "cloudsql.%"),
    ("alloydb", "alloydb.%"),
    ("neon", "neon.%"),
    ("timescale", "timescaledb.%"),
]
# Well-known settings read by name too: current_setting() also sees values that pg_settings
# lists only once the platform's module is loaded in this backend.
_PLATFORM_NAMED_SETTINGS = [
    ("rds", "rds.extensions"),
    ("rds", "rds.force_ssl"),
    ("azure", "azure.extensions"),
    ("gcp", "cloudsql.iam_authentication"),
    ("alloydb", "alloydb.iam_authentication"),
    ("neon", "neon.timeline_id"),
]
_PLATFORM_ROLES = [
    ("supabase", "supabase_admin"),
    ("rds", "rds_superuser"),
    ("rds", "rdsadmin"),
    ("azure", "azure_superuser"),
    ("azure", "azure_pg_admin"),
    ("gcp", "cloudsqlsuperuser"),
    ("alloydb", "alloydbsuperuser"),
    ("heroku", "heroku_admin"),
    ("crunchy_bridge", "crunchy_superuser"),
]


def detect_platform(session: TargetSession) -> str:
    """rds / aurora / azure / gcp / supabase / ... from what each platform leaves behind."""
    rows = session.query(
        "SELECT name FROM pg_settings WHERE "
        + " OR ".join(["name LIKE %s"] * len(_PLATFORM_SETTINGS)),
        [pattern for _, pattern in _PLATFORM_SETTINGS],
    )
    names = [r["name"] for r in rows]
    named = session.one(
        "SELECT to_regproc('aurora_version') IS NOT NULL AS aurora, "
        "ARRAY(SELECT n FROM unnest(%s::text[]) n "
        "      WHERE current_setting(n, true) IS NOT NULL) AS present",
        ([name for _, name in _PLATFORM_NAMED_SETTINGS],),
    )
    if named and named["aurora"]:  # Aurora also carries every rds.* setting
        return "aurora"
    names += list((named or {}).get("present") or [])
    for platform, pattern in _PLATFORM_SETTINGS:  # order matters: aurora before rds
        prefix = pattern.rstrip("%")
        if any(n.startswith(prefix) for n in names):
            return platform
    role_names = {
        r["rolname"]
        for r in session.query(
            "SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)",
            ([role for _, role in _PLATFORM_ROLES],),
        )
    }
    for platform, role in _PLATFORM_ROLES:
        if role in role_names:
            return platform
    return ""


def pg_stat_statements_state(session: TargetSession) -> dict[str, Any]:
    """available / created / readable, with the fix for the first one missing.

    Not preloaded answers SQLSTATE 55000 on read: that is "created but not readable".
    """
    state: dict[str, Any] = {
        "available": False,
        "created": False,
        "readable": False,
        "version": None,
        "schema": None,
        "fix": "",
        "reason": "",
    }
    ext = session.extension("pg_stat_statements")
    state["available"] = bool(ext) or session.extension_available("pg_stat_statements")
    preload_fix = (
        "add pg_stat_statements to shared_preload_libraries and restart the server: "
        "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements';"
        + (
            " (on a managed platform, in its parameter group / server parameters)"
            if session.platform
            else ""
        )
    )
    if not ext:
        if not state["available"]:
            state["reason"] = "the pg_stat_statements extension is not installed on the server"
            state["fix"] = (
                "install the PostgreSQL contrib package, then "
                + preload_fix
                + " and CREATE EXTENSION pg_stat_statements;"
            )
        else:
            state["reason"] = "the pg_stat_statements extension is not created in this database"
            state["fix"] = "CREATE EXTENSION pg_stat_statements;"
            preload = session.setting("shared_preload_libraries")
            if preload is not None and "pg_stat_statements" not in preload:
                state["fix"] = preload_fix + " then CREATE EXTENSION pg_stat_statements;"
        return state
    state.update(created=True, version=ext["version"], schema=ext["schema"])
    try:
        with session.savepoint():
            session.execute(
                f"SELECT 1 FROM {quote_ident(ext['schema'])}.pg_stat_statements LIMIT 1"
            )
        state["readable"] = True
    except pg_errors.ObjectNotInPrerequisiteState:  # 55000: not in shared_preload_libraries
        state["reason"] = "pg_stat_statements must be loaded via shared_preload_libraries"
        state["fix"] = preload_fix
    except pg_errors.InsufficientPrivilege:
        state["reason"] = "this role may not read pg_stat_statements"
        state["fix"] = session.monitor_fix
    return state


# The role "Test connection" proposes instead of a superuser (docs/diagnostics.md has the full
# recipe, with the grants a remediating target needs on top).
LEAST_PRIVILEGE_FIX = (
    "CREATE ROLE quell_diagnostics LOGIN PASSWORD '...'; "
    "GRANT pg_monitor TO quell_diagnostics; "
    "GRANT USAGE ON SCHEMA public TO quell_diagnostics; "
    "GRANT SELECT ON ALL TABLES IN SCHEMA public TO quell_diagnostics; "
    "then connect as quell_diagnostics (see docs/diagnostics.md, least-privilege role)"
)


def probe(spec: ConnectionSpec, timeouts: Timeouts = Timeouts()) -> dict:  # noqa: B008
    """Test a connection: reachability, latency, version, recovery, platform, missing grants.

    Never raises for a target problem; `error` says what went wrong, without credentials.
    """
    result: dict[str, Any] = {
        "reachable": False,
        "latency_ms": None,
        "connect_ms": None,
        "server_version": None,
        "server_version_num": None,
        "in_recovery": None,
        "platform": "",
        "missing": [],
        "warnings": [],
        "error": "",
        "target": spec.describe(),
    }
    try:
        with open_session(spec, timeouts) as session:
            started = time.monotonic()
            session.execute("SELECT 1")
            result["latency_ms"] = round((time.monotonic() - started) * 1000, 2)
            result["connect_ms"] = round(session.connect_ms, 2)
            result["reachable"] = True
            result["server_version"] = session.server_version
            result["server_version_num"] = session.server_version_num
            result["in_recovery"] = session.in_recovery
            result["platform"] = session.platform
            result["current_user"] = session.current_user
            if session.is_superuser:
                result["warnings"].append(
                    {
                        "what": "superuser",
                        "why": (
                            f"{session.current_user} is a superuser: Quell only needs to read, "
                            "and a superuser's session can read server files and run anything. "
                            "Use a least-privilege role (pg_monitor plus SELECT) instead"
                        ),
                        "fix": LEAST_PRIVILEGE_FIX,
                    }
                )
            if not (session.is_superuser or session.roles["pg_monitor"]):
                result["missing"].append(
                    {
                        "what": "pg_monitor",
                        "why": "without it, other sessions' queries and statistics are hidden",
                        "fix": session.monitor_fix,
                    }
                )
            pgss = pg_stat_statements_state(session)
            if not pgss["readable"]:
                result["missing"].append(
                    {"what": "pg_stat_statements", "why": pgss["reason"], "fix": pgss["fix"]}
                )
    except TargetUnreachable as exc:
        result["error"] = scrub(str(exc), spec)
    except (psycopg.Error, SessionBroken) as exc:
        result["error"] = connection_error_message(exc, spec)
    return result
