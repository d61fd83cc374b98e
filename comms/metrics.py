"""Comms' families in /metrics (registered with incidents.registry in ready())."""

from __future__ import annotations

from incidents.metrics import status_counts

from .models import Delivery, DeliveryState


def write_metrics(out, latencies: list[dict]) -> None:
    counts = status_counts(Delivery, "state")
    out.family("quell_comms_deliveries_total", "counter", "Notification deliveries by status.")
    for value, n in sorted(counts.items()):
        out.sample("quell_comms_deliveries_total", n, {"status": value})
    out.family(
        "quell_comms_delivery_failures_total",
        "counter",
        "Notification deliveries that failed (after their retries).",
    )
    out.sample("quell_comms_delivery_failures_total", counts.get(DeliveryState.FAILED, 0))
    latencies.append(
        {
            "model": Delivery,
            "task": "comms_delivery",
            "start": "created_at",
            "end": "delivered_at",
            "phase": "run",
        }
    )
