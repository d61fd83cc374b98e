"""Diagnostics' families in /metrics (registered with incidents.registry in ready())."""

from __future__ import annotations

from incidents.metrics import status_counts

from .models import CheckResult, DiagnosticRun, RunStatus


def write_metrics(out, latencies: list[dict]) -> None:
    counts = status_counts(DiagnosticRun, "status")
    out.family("quell_diagnostic_runs_total", "counter", "Diagnostic runs by status.")
    for value, n in sorted(counts.items()):
        out.sample("quell_diagnostic_runs_total", n, {"status": value})
    out.family("quell_diagnostic_run_failures_total", "counter", "Diagnostic runs that failed.")
    out.sample("quell_diagnostic_run_failures_total", counts.get(RunStatus.FAILED, 0))
    out.family("quell_diagnostic_check_results_total", "counter", "Check results by status.")
    for value, n in sorted(status_counts(CheckResult, "status").items()):
        out.sample("quell_diagnostic_check_results_total", n, {"status": value})
    phases = (("queued_at", "started_at", "queue"), ("started_at", "finished_at", "run"))
    for start, end, phase in phases:
        latencies.append(
            {
                "model": DiagnosticRun,
                "task": "diagnostic_run",
                "start": start,
                "end": end,
                "phase": phase,
            }
        )
