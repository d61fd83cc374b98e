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


def _performance(per_target, answers) -> None:
    bad, ok, severe = [], [], []
    load, locks = [], []
    for name, run, results in per_target:
        if _unreachable(run, results):
            continue
        seen = [results[k] for k in PERFORMANCE_CHECKS if k in results]
        for r in seen:
            if r.status in BAD:
                bad.append((run, _say(name, r)))
                if r.status == ResultStatus.CRITICAL and r.key != "connections":
                    severe.append((run, _say(name, r)))
                if r.key == "connections":
                    load.append((run, _say(name, r)))
                if r.key == "blocking_locks":
                    locks.append((run, _say(name, r)))
            elif r.status == ResultStatus.OK:
                ok.append((run, _say(name, r)))
        for title in _timed_out(results):
            severe.append((run, f"{name}: {title} timed out (statement_timeout)"))
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
        else:
            answers["performance_severity"] = {
                "answer": "usable",
                "evidence": "Warnings only, nothing critical: "
                + "; ".join(text for _, text in bad),
                "run_url": _run_url(first),
            }
        if load:
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
        answers["performance_issue"] = {
            "answer": "no",
            "evidence": "; ".join(text for _, text in ok),
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
