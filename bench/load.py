"""Mixed API load against Quell served the way scripts/run serves it: requests/s and latency.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python bench/load.py [--duration 30] [--clients 20] [--rate 120] [--keep]

It creates a throwaway database (`quell_bench_load`, dropped at the end unless `--keep`),
migrates it and loads 1,000 incidents (the newest 2% open) with their timelines through the
services, plus one responder (with an API token) per client. Then it starts gunicorn exactly as
the Procfile's `web` process does (`config.gunicorn`: 2 worker processes x 4 threads, a psycopg
pool of 4 per process), with DEBUG off, on a free loopback port, and drives it for `--duration`
seconds from `--clients` concurrent clients (processes x threads, each on one keep-alive
connection) sending a fixed mix, in two phases:

- closed loop (capacity): every client sends its next request as soon as the last one is
  answered, so the server runs flat out and latency is mostly queueing;
- paced: the clients together offer `--rate` requests/s (default 120, the 100 requests/s of
  issue 14 with room to spare) on a fixed schedule, and each request's time counts from when
  it was due (no coordinated omission). This is the load a busy integration puts on Quell.

The mix:

    45% incident list (open incidents, then a filtered history page)
    35% incident detail
    12% timeline note appended to an open incident
     8% alert ingestion (the generic webhook, repeats of 40 alerts: dedup, then append/repeat)

The baseline, measured in the same run with the same clients: the same gunicorn configuration
serving a constant JSON document of the detail's size from a bare WSGI callable (what the
server and the clients cost on this machine without Quell). It prints requests/s, p50/p95/p99
per kind and overall, and errors (any answer that is not 2xx, or a failed connection).
Targets (issue 14), judged on the paced phase: at least 100 requests/s served with p99 under
150 ms, and no errors in either phase; the command exits 1 when one is missed. Every request
goes to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._db import (  # noqa: E402
    DEFAULT_SERVER,
    drop_database,
    recreate_database,
    use_throwaway_secrets,
    with_dbname,
)

DB_NAME = "quell_bench_load"
INCIDENTS = 1000
MIX = [("list", 45), ("detail", 35), ("note", 12), ("alert", 8)]
ALERT_FINGERPRINTS = 40
# The constant document the baseline serves: about the size of an incident detail.
BASELINE_BODY = json.dumps({"id": 1, "title": "x" * 1500}).encode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def seed(clients: int) -> dict:
    """Incidents, role holders and timelines through the services; one responder token per
    client. Returns what the clients need: tokens and the ids to read and write."""
    import django

    django.setup()
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from django.db import connections

    from config.accounts.services import token_issue
    from incidents import services
    from incidents.models import Incident, Status

    call_command("migrate", verbosity=0, interactive=False)
    responder = Group.objects.get(name="responder")
    commander = User.objects.create(username="bench-commander")
    commander.groups.add(Group.objects.get(name="commander"))
    tokens = []
    for n in range(clients):
        user = User.objects.create(username=f"bench-client-{n:02d}")
        user.groups.add(responder)
        tokens.append(token_issue(user=user, name="load")[1])
    rng = random.Random(7)
    for n in range(INCIDENTS):
        incident = services.incident_declare(
            actor=commander,
            title=f"Load incident {n}: replica lag on orders-{n % 17}",
            severity=rng.choice(["SEV1", "SEV2", "SEV3", "SEV4", "SEV4"]),
            kind=rng.choice(["performance", "availability", "data_integrity", "other"]),
            description="Seeded by bench/load.py.",
        )
        for step in range(3):
            services.timeline_append(
                incident_id=incident.pk, actor=commander, message=f"Seeded note {step}"
            )
    ids = list(Incident.objects.order_by("pk").values_list("pk", flat=True))
    # Most of a real history is closed: keep the newest 2% open (what responders work on).
    open_ids = ids[-max(1, len(ids) // 50) :]
    Incident.objects.exclude(pk__in=open_ids).update(status=Status.CLOSED)
    connections.close_all()
    return {"tokens": tokens, "ids": ids, "open_ids": open_ids}


def start_server(env: dict, app: str, port: int, log) -> subprocess.Popen:
    """gunicorn with the Procfile's web configuration (config.gunicorn), on `port`."""
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--config", "python:config.gunicorn", app],
        cwd=ROOT,
        env={**env, "QUELL_PORT": str(port)},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"gunicorn exited with {process.returncode}: see {log.name}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/api/v1/")
            conn.getresponse().read()
            return process
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"gunicorn did not answer within 60 s: see {log.name}")


def stop_server(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


class Client:
    """One keep-alive connection sending the mix, recording (kind, seconds, ok) per request."""

    def __init__(self, port: int, token: str, seeded: dict, seed_value: int, baseline: bool):
        self.port = port
        self.headers = {
            "Authorization": f"Token {token}",
            "Accept": "application/json",
            "Content-Type": "application/json",
        }
        self.seeded = seeded
        self.rng = random.Random(seed_value)
        self.baseline = baseline
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.kinds = [k for k, weight in MIX for _ in range(weight)]

    def request(self, kind: str) -> tuple[str, str, bytes | None]:
        rng, ids, open_ids = self.rng, self.seeded["ids"], self.seeded["open_ids"]
        if kind == "list":
            if rng.random() < 0.5:
                return "GET", "/api/v1/incidents/?open=true", None
            severity = rng.choice(["SEV1", "SEV2", "SEV3"])
            return "GET", f"/api/v1/incidents/?severity={severity}&kind=performance", None
        if kind == "detail":
            return "GET", f"/api/v1/incidents/{rng.choice(ids)}/", None
        if kind == "note":
            body = {"message": f"Load note {rng.randrange(10**9)}: checked replica lag again"}
            return (
                "POST",
                f"/api/v1/incidents/{rng.choice(open_ids)}/timeline/",
                json.dumps(body).encode(),
            )
        n = rng.randrange(ALERT_FINGERPRINTS)
        alert = {
            "title": f"Load alert {n}: connections near max_connections",
            "severity": "warning",
            "fingerprint": f"bench-load-{n}",
            "summary": "seen by bench/load.py",
            "source": "bench",
        }
        return "POST", "/api/v1/alerts/webhook/", json.dumps(alert).encode()

    def run(self, until: float, out: list, interval: float = 0.0) -> None:
        """Send until `until`: back to back (interval 0, the closed loop), or one request every
        `interval` seconds on a fixed schedule. A paced request's time counts from when it was
        due, not when it went out, so a slow answer that delays the next ones is charged to
        them too (no coordinated omission)."""
        due = time.perf_counter() + self.rng.random() * interval  # spread the clients' phases
        while time.monotonic() < until:
            kind = self.rng.choice(self.kinds)
            method, path, body = ("GET", "/baseline", None) if self.baseline else self.request(kind)
            if interval:
                time.sleep(max(0.0, due - time.perf_counter()))
                started, due = due, due + interval
            else:
                started = time.perf_counter()
            try:
                self.conn.request(method, path, body=body, headers=self.headers)
                response = self.conn.getresponse()
                response.read()
                ok = 200 <= response.status < 300
                status = response.status
            except (OSError, http.client.HTTPException) as exc:
                ok, status = False, type(exc).__name__
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            out.append((kind, time.perf_counter() - started, ok, status))


def client_process(port, tokens, seeded, duration, baseline, seed_value, queue, interval) -> None:
    """Several clients on threads in one process (processes spread the clients' own CPU)."""
    until = time.monotonic() + duration
    results: list = []
    threads = [
        threading.Thread(
            target=Client(port, token, seeded, seed_value * 100 + n, baseline).run,
            args=(until, results, interval),
        )
        for n, token in enumerate(tokens)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    queue.put(results)


def drive(
    port: int, seeded: dict, clients: int, duration: float, baseline: bool, rate: float = 0.0
) -> list:
    """Results of `clients` clients for `duration` s: closed loop, or `rate` requests/s in all."""
    processes = min(4, clients)
    interval = clients / rate if rate else 0.0
    queue: multiprocessing.Queue = multiprocessing.Queue()
    workers = [
        multiprocessing.Process(
            target=client_process,
            args=(
                port,
                seeded["tokens"][p::processes],
                seeded,
                duration,
                baseline,
                p,
                queue,
                interval,
            ),
        )
        for p in range(processes)
    ]
    for worker in workers:
        worker.start()
    results = [row for _ in workers for row in queue.get()]
    for worker in workers:
        worker.join()
    return results


def percentile(values: list[float], q: float) -> float:
    return (
        statistics.quantiles(values, n=100, method="inclusive")[q - 1]
        if len(values) > 1
        else values[0]
    )


def report(label: str, results: list, duration: float) -> dict:
    print(f"\n{label}: {len(results):,} requests in {duration:.0f} s")
    columns = ("requests", "req/s", "p50 ms", "p95 ms", "p99 ms")
    print(f"{'kind':<10} " + " ".join(f"{c:>8}" for c in columns) + f" {'errors':>7}")
    kinds = sorted({r[0] for r in results})
    summary = {}
    for kind in [*kinds, "all"]:
        rows = results if kind == "all" else [r for r in results if r[0] == kind]
        times = [r[1] * 1000 for r in rows]
        errors = [r for r in rows if not r[2]]
        summary[kind] = {
            "rps": len(rows) / duration,
            "p50": percentile(times, 50),
            "p95": percentile(times, 95),
            "p99": percentile(times, 99),
            "errors": len(errors),
        }
        s = summary[kind]
        print(
            f"{kind:<10} {len(rows):>8,} {s['rps']:>8.1f} {s['p50']:>8.1f} {s['p95']:>8.1f} "
            f"{s['p99']:>8.1f} {s['errors']:>7}"
        )
        if errors and kind != "all":
            statuses = sorted({str(r[3]) for r in errors})
            print(f"{'':<10} errors: {', '.join(statuses)}")
    return summary["all"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument(
        "--rate",
        type=float,
        default=120.0,
        help="requests/s offered in all in the paced phase (the targets are judged there)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    args = parser.parse_args()

    server = os.environ.get("DATABASE_URL", DEFAULT_SERVER)
    recreate_database(server, DB_NAME)
    use_throwaway_secrets()
    broker = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    env = {
        **os.environ,
        "DATABASE_URL": with_dbname(server, DB_NAME),
        "REDIS_URL": broker,
        "DJANGO_SETTINGS_MODULE": "config.settings.dev",
        "DJANGO_DEBUG": "false",
        "DJANGO_LOG_LEVEL": "WARNING",
        "QUELL_COMMS_NOTIFY_ON_DECLARE": "false",
        # One sender posting 8% of a 100+ requests/s mix is 10 times what an Alertmanager
        # sends; the bench measures serving, not the alert throttle (tests/accounts cover it).
        "QUELL_THROTTLE_ALERTS": "60000/minute",
        "PYTHONPATH": str(ROOT),
    }
    os.environ.update(env)
    try:
        t0 = time.perf_counter()
        seeded = seed(args.clients)
        print(
            f"seeded {len(seeded['ids']):,} incidents ({len(seeded['open_ids']):,} open), "
            f"{args.clients} client tokens in {time.perf_counter() - t0:.1f} s"
        )
        with tempfile.NamedTemporaryFile(
            "w", prefix="quell-load-", suffix=".log", delete=False
        ) as log:
            print(f"server log: {log.name}")
            port = free_port()
            baseline_env = {**env, "QUELL_BENCH_BASELINE_BODY_BYTES": str(len(BASELINE_BODY))}
            process = start_server(baseline_env, "bench.load_baseline:application", port, log)
            try:
                baseline = drive(port, seeded, args.clients, min(args.duration, 10), True)
            finally:
                stop_server(process)
            base = report(
                "baseline: bare WSGI app on the same gunicorn", baseline, min(args.duration, 10)
            )

            port = free_port()
            process = start_server(env, "config.wsgi:application", port, log)
            try:
                drive(port, seeded, args.clients, 3, False)  # warm: pools, caches, first alerts
                capacity = drive(port, seeded, args.clients, args.duration, False)
                paced = drive(port, seeded, args.clients, args.duration, False, rate=args.rate)
            finally:
                stop_server(process)
        title = "Quell (config.gunicorn: 2 workers x 4 threads)"
        most = report(f"{title}, closed loop (capacity)", capacity, args.duration)
        quell = report(f"{title}, paced at {args.rate:g} req/s offered", paced, args.duration)
        print(
            f"\nQuell capacity {most['rps']:.1f} req/s = {most['rps'] / base['rps']:.2f} of the "
            f"bare server (p99 {most['p99']:.1f} ms with every client sending back to back)"
        )
        print(
            f"at {args.rate:g} req/s offered: {quell['rps']:.1f} req/s served, p99 "
            f"{quell['p99']:.1f} ms, errors {quell['errors'] + most['errors']}"
        )
        met = (
            quell["rps"] >= 100
            and quell["p99"] < 150
            and quell["errors"] == 0
            and most["errors"] == 0
        )
        print(
            "targets (>= 100 req/s served with p99 < 150 ms, 0 errors in either phase): "
            + ("met" if met else "NOT met")
        )
        return 0 if met else 1
    finally:
        if not args.keep:
            drop_database(server, DB_NAME)


if __name__ == "__main__":
    sys.exit(main())
