"""The incident lifecycle, for other apps to react to.

These are the only signals Quell uses. Services send them with `send_after_commit`, so a
receiver never sees a change that was rolled back and never runs inside the service's
transaction: a slow receiver (sending mail, starting a diagnostic run) cannot hold a row lock.

Every signal is sent with `incident_id` and `actor_id` (None for the system); extra arguments
are listed beside each.
"""

from django.db import transaction
from django.dispatch import Signal

# An incident was declared (by a person, a report, an alert or a monitor).
incident_declared = Signal()
# Its status changed. Extra: from_status, to_status.
incident_status_changed = Signal()
# It reached "resolved" (also sent as incident_status_changed). Extra: from_status.
incident_resolved = Signal()
# It went back from resolved to investigating. Extra: reason.
incident_reopened = Signal()
# It was closed (postmortem published or waived).
incident_closed = Signal()
# Its severity changed. Extra: from_severity, to_severity.
incident_severity_changed = Signal()
# Somebody took a role. Extra: role, role_name, user_id.
incident_role_assigned = Signal()


def send_after_commit(signal: Signal, **kwargs) -> None:
    """Send `signal` once the current transaction commits (at once outside a transaction)."""
    # send_robust: one app's failing receiver must not stop the others from hearing about the
    # incident (Django logs each receiver's exception on the "django.dispatch" logger).
    transaction.on_commit(lambda: signal.send_robust(sender="incidents", **kwargs), robust=True)
