#!/usr/bin/env python
"""Alert ingestion benchmark: 10,000 Alertmanager alerts through the webhook, against raw SQL.

    .venv/bin/python bench/alerts.py [--alerts 10000] [--sizes 100,1]

It creates a dedicated database (quell_bench_alerts on the server of DATABASE_URL, or the local
one), migrates it, registers 50 targets (disabled, so linking one starts no diagnostic run and
nothing connects anywhere; each with its exporter's instance as an alias), and for each payload
size sends the same 10,000 alerts through Django's real WSGI handler in this one process: the
webhook secret's authentication, the alert throttle (in Redis, set high), validation, target
mapping, routing, dedup and grouping, and the timeline. The alerts are 500 distinct ones (10
alert names on 50 databases) delivered 20 times each, some resolved in between:

- payloads of 100: one Alertmanager notification per group (`group_by: [cluster]`, 5 clusters
  of 10 databases, each notification carrying its group's 100 alerts);
- payloads of 1: one notification per alert (`group_by: [alertname, datname]`).

The floor, measured in the same run: the rows Quell ended with (incidents, timeline events,
alert groups, alerts, affected targets) deleted and inserted again by psycopg, one transaction
per payload as Quell used. It prints alerts/s for both and the ratio; the target is at least
200 alerts/s on one process. The database is dropped at the end (unless --keep).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import secrets
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

import psycopg  # noqa: E402

from bench._db import (  # noqa: E402
    django_on_scratch_database,
    drop_database,
)
from bench._wsgi import call  # noqa: E402

TARGETS = 50
CLUSTERS = 5
NAMES = (
    "PostgresqlTooManyConnections",
    "PostgresqlDeadLocks",
    "PostgresqlSlowQueries",
    "PostgresqlHighRollbackRate",
    "PostgresqlReplicationLag",
    "PostgresqlDown",
    "PostgresqlTableNotAutoVacuumed",
    "PostgresqlTooManyLocksAcquired",
    "PostgresqlBloatIndexHigh",
    "PostgresqlCommitRateLow",
)
# The webhook secret of this run (nothing outside the run ever sees it).
SECRET = secrets.token_urlsafe(24)
# What Quell wrote, in foreign-key order (the floor re-inserts these rows).
TABLES = (
    "incidents_incident",
    "incidents_timelineevent",
    "diagnostics_incidenttarget",
    "detection_alertgroup",
    "detection_alert",
)
TARGET_TARGET = 200.0  # alerts/s


def alert(index: int) -> dict:
    """The index-th alert sent: its database, name and status are functions of the index."""
    target = index % TARGETS
    name = (index // TARGETS) % len(NAMES)
    round_ = index // (TARGETS * len(NAMES))
    status = "resolved" if (round_ + name) % 5 == 4 else "firing"
    datname = f"db_{target:02d}"
    labels = {
        "alertname": NAMES[name],
        "cluster": f"cluster-{target % CLUSTERS}",
        "datname": datname,
        "instance": f"pg-{target:02d}:9187",
        "job": "postgres",
        "severity": "critical" if name in (1, 5) else "warning",
    }
    fingerprint = hashlib.sha256(f"{target}:{name}".encode()).hexdigest()[:16]
    return {
        "status": status,
        "labels": labels,
        "annotations": {"summary": f"{NAMES[name]} on {datname}"},
        "startsAt": "2026-12-04T02:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-12-04T02:30:00Z",
        "generatorURL": "http://prometheus:9090/graph",
        "fingerprint": fingerprint,
    }


def notification(alerts: list[dict], group_labels: dict) -> dict:
    shown = ",".join(f'{k}="{v}"' for k, v in sorted(group_labels.items()))
    return {
        "version": "4",
        "groupKey": f"{{}}:{{{shown}}}",
        "truncatedAlerts": 0,
        "status": "firing" if any(a["status"] == "firing" for a in alerts) else "resolved",
        "receiver": "quell",
        "groupLabels": group_labels,
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": alerts,
    }


def payloads(total: int, size: int) -> list[dict]:
    """The notifications carrying alerts 0..total-1, `size` alerts each (100 or 1)."""
    alerts = [alert(i) for i in range(total)]
    if size == 1:
        return [
            notification(
                [a], {"alertname": a["labels"]["alertname"], "datname": a["labels"]["datname"]}
            )
            for a in alerts
        ]
    per_cluster: dict[str, list[dict]] = {}
    out = []
    for a in alerts:
        cluster = a["labels"]["cluster"]
        batch = per_cluster.setdefault(cluster, [])
        batch.append(a)
        if len(batch) == size:
            out.append(notification(batch, {"cluster": cluster}))
            per_cluster[cluster] = []
    out += [notification(b, {"cluster": c}) for c, b in per_cluster.items() if b]
    return out


class Webhook:
    """POSTs through Django's real WSGI handler, as a WSGI server would."""

    def __init__(self):
        from django.core.handlers.wsgi import WSGIHandler

        self.handler = WSGIHandler()

    def post(self, path: str, body: dict) -> dict:
        data = json.dumps(body).encode()
        status, answer = call(
            self.handler,
            "POST",
            path,
            body=data,
            content_type="application/json",
            authorization=f"Bearer {SECRET}",
        )
        if not status.startswith("200"):
            raise SystemExit(f"POST {path} answered {status}: {answer[:300]!r}")
        return json.loads(answer)


def reset(conn: psycopg.Connection) -> None:
    conn.execute(
        "TRUNCATE detection_alert, detection_alertgroup, diagnostics_incidenttarget,"
        " incidents_timelineevent, incidents_responderassignment, incidents_incident"
        " RESTART IDENTITY CASCADE"
    )
    conn.commit()


def quell_side(webhook: Webhook, notes: list[dict]) -> tuple[float, dict]:
    actions: dict[str, int] = {}
    t0 = time.perf_counter()
    for note in notes:
        for outcome in webhook.post("/api/v1/alerts/alertmanager/", note)["alerts"]:
            actions[outcome["action"]] = actions.get(outcome["action"], 0) + 1
    return time.perf_counter() - t0, actions


def floor_side(conn: psycopg.Connection, transactions: int) -> tuple[float, dict]:
    """Delete what Quell wrote and insert the same rows again, in as many transactions."""
    rows: dict[str, tuple[list[str], list[tuple]]] = {}
    for table in TABLES:
        cur = conn.execute(f"SELECT * FROM {table} ORDER BY id")
        rows[table] = ([d.name for d in cur.description], cur.fetchall())
    conn.commit()
    reset(conn)
    counts = {t: len(r) for t, (_, r) in rows.items()}
    # The rows are dealt out across the transactions, so a row may come before the one it
    # references: foreign keys are not checked (replica role; the rows were valid in Quell).
    conn.execute("SET session_replication_role = replica")
    t0 = time.perf_counter()
    for n in range(transactions):
        with conn.cursor() as cur:
            for table in TABLES:
                columns, values = rows[table]
                share = values[n::transactions]
                if not share:
                    continue
                placeholders = ", ".join(["%s"] * len(columns))
                cur.executemany(
                    f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})",
                    [
                        tuple(
                            psycopg.types.json.Jsonb(v) if isinstance(v, dict) else v for v in row
                        )
                        for row in share
                    ],
                )
        conn.commit()
    elapsed = time.perf_counter() - t0
    conn.execute("SET session_replication_role = origin")
    conn.commit()
    return elapsed, counts


def profile(webhook: Webhook, notes: list[dict], conn: psycopg.Connection) -> None:
    import cProfile
    import pstats

    reset(conn)
    profiler = cProfile.Profile()
    profiler.enable()
    quell_side(webhook, notes)
    profiler.disable()
    stats = pstats.Stats(profiler)
    stats.sort_stats("cumulative").print_stats(r"(detection|incidents|diagnostics|config)/", 30)
    stats.sort_stats("tottime").print_stats(25)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=int, default=10_000, help="alerts sent per payload size")
    parser.add_argument("--sizes", default="100,1", help="alerts per payload (100 and/or 1)")
    parser.add_argument("--db", default="quell_bench_alerts", help="benchmark database (recreated)")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="also profile N payloads of 1 after the timed runs and print where the time goes",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    admin_url, bench_url = django_on_scratch_database(
        args.db,
        QUELL_ALERT_WEBHOOK_TOKEN=SECRET,
        QUELL_THROTTLE_ALERTS="100000000/minute",
        QUELL_COMMS_NOTIFY_ON_DECLARE="false",
    )
    logging.getLogger("diagnostics").setLevel(logging.WARNING)
    from django.core.management import call_command
    from django.db import connections

    from diagnostics.target_services import target_create

    try:
        call_command("migrate", verbosity=0, interactive=False)
        for n in range(TARGETS):
            target_create(
                name=f"shop-{n:02d}",
                host=f"pg-{n:02d}.bench.invalid",
                database=f"db_{n:02d}",
                user="quell_monitor",
                aliases=[f"pg-{n:02d}:9187"],
                enabled=False,
            )
        webhook = Webhook()
        conn = psycopg.connect(bench_url)
        results = []
        for size in sizes:
            notes = payloads(args.alerts, size)
            reset(conn)
            elapsed, actions = quell_side(webhook, notes)
            floor, counts = floor_side(conn, len(notes))
            results.append((size, len(notes), elapsed, floor, actions, counts))
            print(
                f"payloads of {size}: {len(notes)} POSTs, {args.alerts / elapsed:,.0f} alerts/s"
                f" (floor {args.alerts / floor:,.0f}/s); {actions}; rows {counts}"
            )
        if args.profile:
            profile(webhook, payloads(args.profile, 1), conn)
        conn.close()
        connections.close_all()
        print()
        print("| payload | POSTs | Quell | alerts/s | raw SQL | alerts/s | ratio |")
        print("|---|---|---|---|---|---|---|")
        worst = None
        for size, posts, elapsed, floor, _, _ in results:
            rate = args.alerts / elapsed
            worst = rate if worst is None else min(worst, rate)
            print(
                f"| {size} | {posts:,} | {elapsed:.2f} s | {rate:,.0f} | {floor:.2f} s |"
                f" {args.alerts / floor:,.0f} | {elapsed / floor:.1f}x |"
            )
        print(f"\nslowest {worst:,.0f} alerts/s (target >= {TARGET_TARGET:.0f})")
        return 0 if worst >= TARGET_TARGET else 1
    finally:
        if not args.keep:
            drop_database(admin_url, args.db)


if __name__ == "__main__":
    sys.exit(main())
