"""Quell's own sessions on targets, by identity: the backend pid and its backend_start.

Every connection Quell opens to a target (diagnostics, integrity, monitors, remediation, test
connection) is recorded here right after it connects (diagnostics.target calls `remember`
through the hook DiagnosticsConfig.ready installs). Remediation refuses exactly these sessions:
an application_name is chosen by whoever connects, so a session calling itself ``quell-x``
proves nothing. A pid is reused by the server, but never with the same backend_start, so a row
outliving its session can never make another session immune; old rows are pruned anyway.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Iterable

from django.utils import timezone

from .models import OwnSession

logger = logging.getLogger(__name__)

# Longer than any session Quell keeps open on a target (every statement is time-bounded).
KEEP = datetime.timedelta(days=1)
# Rows past KEEP are pruned by each process at most this often (time.monotonic() seconds): a
# row outliving its session can never make another session immune, so pruning is housekeeping,
# not worth a statement on every connection.
PRUNE_EVERY_S = 3600.0
_pruned_at: float | None = None


def _prune_due() -> bool:
    global _pruned_at
    now = time.monotonic()
    if _pruned_at is not None and now - _pruned_at < PRUNE_EVERY_S:
        return False
    _pruned_at = now
    return True


def remember(*, pid: int, backend_start: datetime.datetime, application_name: str) -> None:
    """Record a session Quell has just opened; never fails the connection (logged instead)."""
    try:
        now = timezone.now()
        if _prune_due():
            OwnSession.objects.filter(opened_at__lt=now - KEEP).delete()
        OwnSession.objects.bulk_create(
            [
                OwnSession(
                    pid=pid,
                    backend_start=backend_start,
                    application_name=application_name[:64],
                    opened_at=now,
                )
            ],
            ignore_conflicts=True,
        )
    except Exception:  # a failed record costs the session its immunity, not the diagnosis
        logger.warning(
            "Could not record Quell's session pid %s: remediation will not recognise it",
            pid,
            exc_info=True,
        )


def known(pairs: Iterable[tuple[int, datetime.datetime]]) -> set[tuple[int, datetime.datetime]]:
    """The (pid, backend_start) pairs among `pairs` that are sessions Quell opened."""
    pairs = [(pid, start) for pid, start in pairs if start is not None]
    if not pairs:
        return set()
    rows = OwnSession.objects.filter(pid__in={pid for pid, _ in pairs}).values_list(
        "pid", "backend_start"
    )
    recorded = set(rows)
    return {pair for pair in pairs if pair in recorded}
