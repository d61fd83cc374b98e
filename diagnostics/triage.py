"""Triage answers from the latest diagnostics (settings.QUELL_TRIAGE_ANSWER_PROVIDERS).

incidents.triage asks `suggest_answers(incident_id)` which questions of the decision tree the
latest diagnostic runs already answer; incidents never imports this app. Each answer comes with
its evidence (the checks that say so, on which target, from which run) and the run's URL. A
question the results do not settle is left out: the responder answers it.

Read from Quell's own tables only (diagnostics.selectors), never from a target.
"""

from __future__ import annotations

from typing import Any

from . import selectors
from .models import ResultStatus, RunStatus

# Data integrity results come from diagnostics.integrity, which registers its reader here when
# it is installed (this app never imports it): f(incident_id) -> (violated, clean, url), where
# violated and clean are lists of (result with .severity, text).
_integrity_evidence = []


def register_integrity_evidence(reader) -> None:
    if reader not in _integrity_evidence:
        _integrity_evidence.append(reader)


BAD = (ResultStatus.WARNING, ResultStatus.CRITICAL)
PERFORMANCE_CHECKS = ("slow_queries", "long_running_queries", "blocking_locks", "connections")
SCHEMA_CHECKS = ("recent_migrations", "schema_changes")
# Impact that makes a performance problem "very slow" (SEV2) whatever the checks' own grades.
BLOCKING_DEPTH_SEVERE = 2  # a chain deeper than this
BLOCKED_SESSIONS_SEVERE = 10  # this many sessions blocked
CONNECTIONS_NEAR_MAX_PCT = 90.0  # client connections, % of the usable slots


def _results_for(target: dict) -> tuple[Any, dict[str, Any]]:
    """The run to read for one target summary (the latest finished one) and its results."""
    run_id = target.get("run_id")
    if not run_id:
        return None, {}
    run = selectors.run_get(run_id=run_id)
    if run.is_active and not run.results.all():
        previous = selectors.previous_finished_run(run=run)
        if previous is None:
            return None, {}
        run = selectors.run_get(run_id=previous.pk)
    return run, {r.key: r for r in run.results.all()}


def _run_url(run) -> str:
    from .services import run_url

    return run_url(run)


def _say(target_name: str, result) -> str:
    return f"{target_name}: {result.title} {result.status} ({result.summary})"


def _unreachable(run, results: dict) -> str | None:
    """Why the target could not be connected to, or None when it could."""
    conn = results.get("connection")
    if conn is None:
        if run.status == RunStatus.FAILED and run.error:
            return f"the run failed: {run.error}"
        return None
    if conn.status == ResultStatus.ERROR:
        return conn.summary or conn.error or "connection check failed"
    # CRITICAL with an error is a refused or failed connect; CRITICAL without one is a slow
    # but working connection (latency thresholds), which answers "yes, it connects".
    if conn.status == ResultStatus.CRITICAL and conn.error:
        return conn.summary or conn.error
    return None


def _timed_out(results: dict) -> list[str]:
    """Checks that hit Quell's statement_timeout: the target is too slow to answer."""
    return [
        r.title
        for r in results.values()
        if r.status == ResultStatus.ERROR and "statement_timeout" in (r.summary or "")
    ]


def suggest_answers(incident_id: int) -> dict[str, dict]:
    """{question key: {"answer", "evidence", "run_url"}} from the incident's latest runs."""
    summary = selectors.incident_diagnostics_summary(incident_id=incident_id)
    per_target = []
    for target in summary["targets"]:
        run, results = _results_for(target)
        if run is not None:
            per_target.append((target["name"], run, results))
    answers: dict[str, dict] = {}
    if per_target:
        _connection(per_target, answers)
        _schema(per_target, answers)
        _performance(per_target, answers)
    _integrity(incident_id, per_target, answers)
    return answers


def _connection(per_target, answers) -> None:
    down = []
    up = []
    for name, run, results in per_target:
        why = _unreachable(run, results)
        if why:
            down.append((name, run, why))
        elif "connection" in results:
            up.append((name, run, results["connection"]))
    if down:
        run = down[0][1]
        answers["can_connect"] = {
            "answer": "no",
            "evidence": "; ".join(f"{n}: {w} (run #{r.pk})" for n, r, w in down),
            "run_url": _run_url(run),
        }
    elif up:
        run = up[0][1]
        answers["can_connect"] = {
            "answer": "yes",
            "evidence": "; ".join(f"{n}: {c.summary} (run #{r.pk})" for n, r, c in up),
            "run_url": _run_url(run),
        }


def _schema(per_target, answers) -> None:
    changed, quiet = [], []
    for name, run, results in per_target:
        seen = [results[k] for k in SCHEMA_CHECKS if k in results]
        bad = [r for r in seen if r.status in BAD]
        if bad:
            changed += [(run, _say(name, r)) for r in bad]
        elif seen and all(r.status == ResultStatus.OK for r in seen):
            quiet += [(run, _say(name, r)) for r in seen]
    if changed:
        answers["recent_schema_change"] = {
            "answer": "yes",
            "evidence": "; ".join(text for _, text in changed),
            "run_url": _run_url(changed[0][0]),
        }
    elif quiet:
        answers["recent_schema_change"] = {
            "answer": "no",
            "evidence": "; ".join(text for _, text in quiet),
            "run_url": _run_url(quiet[0][0]),
        }


def _metric(result, name: str, default=0):
    try:
        return float((result.metrics or {}).get(name, default) or 0)
    except (TypeError, ValueError):
        return float(default)


def _blocking_impact(result) -> list[str]:
    """Why a blocking chain hurts users: blocked writers, depth, many sessions blocked.

    Read from the result's metrics (and its rows, for runs stored before `blocked_writers`), so
    that a chain blocking every checkout write is never graded "usable" by its wait time alone.
    """
    if result.status not in BAD:
        return []
    reasons = []
    writers = _metric(result, "blocked_writers", -1)
    if writers < 0:  # an older run: count the writer rows
        writers = sum(1 for f in (result.findings or []) if isinstance(f, dict) and f.get("writer"))
    if writers:
        reasons.append(f"{int(writers)} writer{'s' if writers != 1 else ''} blocked")
    depth = _metric(result, "chain_depth")
    if depth > BLOCKING_DEPTH_SEVERE:
        reasons.append(f"chain depth {int(depth)}")
    blocked = _metric(result, "blocked")
    if blocked >= BLOCKED_SESSIONS_SEVERE:
        reasons.append(f"{int(blocked)} sessions blocked")
    return reasons


def _connections_near_max(result) -> bool:
    return result.status in BAD or _metric(result, "utilisation_pct") >= CONNECTIONS_NEAR_MAX_PCT


def _not_run(results: dict) -> list[str]:
    """Performance checks that did not give an answer (skipped, failed or absent)."""
    missing = []
    for key in PERFORMANCE_CHECKS:
        r = results.get(key)
        if r is None:
            missing.append(key)
        elif r.status in (ResultStatus.SKIPPED, ResultStatus.ERROR):
            reason = (r.summary or r.error or r.status).split(";")[0]
            missing.append(f"{r.title or key} {r.status} ({reason})")
    return missing


def _performance(per_target, answers) -> None:
    """performance_issue, performance_severity and high_load, graded by impact.

    Impact decides, not only the checks' own grades: a blocking chain that blocks writers (or
    runs deep, or blocks many sessions), connections near max_connections, a critical check or a
    statement timeout mean "very slow" (SEV2) and the blocking branch when a chain is the cause.
    "Noticeable but usable" (SEV3) needs positive evidence: warnings only, no impact, and every
    performance check answered; a skipped or failed check never counts as "usable".
    """
    bad, ok, severe = [], [], []
    load, locks, blocking = [], [], []
    unanswered = []
    for name, run, results in per_target:
        if _unreachable(run, results):
            continue
        seen = [results[k] for k in PERFORMANCE_CHECKS if k in results]
        for r in seen:
            if r.key == "connections" and _connections_near_max(r):
                load.append((run, _say(name, r)))
                bad.append((run, _say(name, r)))
                severe.append((run, _say(name, r) + ": connections near max_connections"))
                continue
            if r.status in BAD:
                bad.append((run, _say(name, r)))
                if r.status == ResultStatus.CRITICAL and r.key != "connections":
                    severe.append((run, _say(name, r)))
                if r.key == "blocking_locks":
                    locks.append((run, _say(name, r)))
                    impact = _blocking_impact(r)
                    if impact:
                        blocking.append((run, f"{name}: {', '.join(impact)}"))
                        if r.status != ResultStatus.CRITICAL:
                            severe.append((run, f"{name}: {', '.join(impact)}"))
            elif r.status == ResultStatus.OK:
                ok.append((run, _say(name, r)))
        for title in _timed_out(results):
            severe.append((run, f"{name}: {title} timed out (statement_timeout)"))
        unanswered += [f"{name}: {what}" for what in _not_run(results)]
    if bad or severe:
        first = (bad or severe)[0][0]
        answers["performance_issue"] = {
            "answer": "yes",
            "evidence": "; ".join(text for _, text in bad + severe),
            "run_url": _run_url(first),
        }
        if severe:
            answers["performance_severity"] = {
                "answer": "very_slow",
                "evidence": "; ".join(text for _, text in severe),
                "run_url": _run_url(severe[0][0]),
            }
        elif not unanswered:
            answers["performance_severity"] = {
                "answer": "usable",
                "evidence": "Warnings only, no blocked writers, every performance check "
                "answered: " + "; ".join(text for _, text in bad),
                "run_url": _run_url(first),
            }
        # else: warnings, but some checks did not run: the responder grades it.
        if blocking:
            evidence = "A blocking chain holds up the work, check blocking queries: " + "; ".join(
                text for _, text in blocking
            )
            if load:
                evidence += "; the connections pile up behind it: " + "; ".join(
                    text for _, text in load
                )
            answers["high_load"] = {
                "answer": "no",
                "evidence": evidence,
                "run_url": _run_url(blocking[0][0]),
            }
        elif load:
            answers["high_load"] = {
                "answer": "yes",
                "evidence": "Connections near max_connections: "
                + "; ".join(text for _, text in load),
                "run_url": _run_url(load[0][0]),
            }
        elif locks:
            answers["high_load"] = {
                "answer": "no",
                "evidence": "Connections within limits; blocking locks instead, check blocking "
                "queries: " + "; ".join(text for _, text in locks),
                "run_url": _run_url(locks[0][0]),
            }
    elif ok:
        evidence = "; ".join(text for _, text in ok)
        if unanswered:
            evidence += "; not checked: " + "; ".join(unanswered)
        answers["performance_issue"] = {
            "answer": "no",
            "evidence": evidence,
            "run_url": _run_url(ok[0][0]),
        }


def _integrity(incident_id: int, per_target, answers) -> None:
    corrupt = []
    for name, run, results in per_target:
        errors = results.get("database_errors")
        if (
            errors is not None
            and "checksum" in (errors.summary or "")
            and (errors.status == ResultStatus.CRITICAL)
        ):
            corrupt.append((run, _say(name, errors)))
    violated, clean, url = [], [], ""
    for reader in _integrity_evidence:
        more_violated, more_clean, url = reader(incident_id)
        violated += more_violated
        clean += more_clean
    if corrupt or violated:
        answers["data_integrity_issue"] = {
            "answer": "yes",
            "evidence": "; ".join([t for _, t in corrupt] + [t for _, t in violated]),
            "run_url": _run_url(corrupt[0][0]) if corrupt else url,
        }
        wide = [t for r, t in violated if r.severity in ("critical", "high")]
        if corrupt:
            wide = [t for _, t in corrupt] + wide
        if wide:
            answers["integrity_scope"] = {
                "answer": "widespread",
                "evidence": "Critical or high-severity findings: " + "; ".join(wide),
                "run_url": _run_url(corrupt[0][0]) if corrupt else url,
            }
        else:
            answers["integrity_scope"] = {
                "answer": "isolated",
                "evidence": "Only medium or low-severity checks violated: "
                + "; ".join(t for _, t in violated),
                "run_url": url,
            }
    elif clean:
        answers["data_integrity_issue"] = {
            "answer": "no",
            "evidence": "Integrity checks pass: " + "; ".join(t for _, t in clean),
            "run_url": url,
        }
