#!/usr/bin/env python
"""Diagnostics benchmark: Quell's full check suite, end to end, against the same SQL sent by psql.

    .venv/bin/python bench/diagnostics.py [--sizes 100,1000,10000] [--idle 200] [--repeat 5]

It starts a throwaway PostgreSQL 15 cluster (tests/diagnostics/clusters.py helpers: run as the
postgres OS user, pg_stat_statements preloaded) with 200 idle client connections, and grows one
database to 100, 1,000 and 10,000 tables (each with a primary key and its sequence, a few rows,
some dead tuples). For each size, in the same run, it times:

- Quell: the full suite as a run takes it, task to stored results: `diagnostic_run_start`
  (creates the queued run) with Celery in eager mode, so the task executes in-process right
  after commit: claim the row, decrypt the credentials, connect, run every check, store every
  CheckResult, finish the run. Measured from the call to the succeeded run in the database.
- psql: the exact statements that run sent (recorded from the session, parameters inlined),
  as one script through `psql -X -f` (process start, connect, every statement, output to
  /dev/null).

Quell's own database is a scratch database on the server of DATABASE_URL (default: the local
one), migrated at the start and dropped at the end, like the cluster.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

import psycopg  # noqa: E402

from bench._db import (  # noqa: E402
    DEFAULT_SERVER,
    drop_database,
    recreate_database,
    use_throwaway_secrets,
    with_dbname,
)

# Per process, so two runs side by side do not drop each other's database.
QUELL_DB = f"quell_bench_diagnostics_{os.getpid()}"
TARGET_DB = "bench_target"
TARGETS = {"ratio": 1.5, "suite_s_at_10000": 2.0}


# --- the target cluster -----------------------------------------------------------------------


def start_cluster(idle: int):
    """A PostgreSQL 15 cluster with room for the idle connections (clusters.py helpers)."""
    from tests.diagnostics import clusters

    cluster = clusters.Cluster("bench", clusters.PG15_BIN)
    cluster.start()
    try:
        # clusters.Cluster starts with max_connections=60 on the command line (which wins over
        # ALTER SYSTEM): stop, then start again with the same options and more room.
        opts = (cluster.datadir / "postmaster.opts").read_text().strip()
        options = opts.split(" ", 1)[1].replace('"', "")
        options = options.replace("max_connections=60", f"max_connections={idle + 50}")
        options = options.replace("shared_buffers=32MB", "shared_buffers=256MB")
        options = " ".join(o for o in options.split(" -D ")[0:1])
        pg_ctl = str(cluster.bindir / "pg_ctl")
        clusters._as_postgres(
            [pg_ctl, "-D", str(cluster.datadir), "-m", "fast", "-w", "stop"], timeout=60
        )
        clusters._as_postgres(
            [
                pg_ctl,
                "-D",
                str(cluster.datadir),
                "-w",
                "-t",
                "60",
                "-l",
                str(cluster.root / "log"),
                "-o",
                options,
                "start",
            ],
            timeout=70,
        )
        cluster.create_database(TARGET_DB)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def grow_tables(cluster, upto: int, have: int) -> None:
    """Tables have+1 .. upto, each with a primary key, a sequence, 20 rows and 5 dead tuples."""
    with cluster.connect(TARGET_DB) as conn:
        step = 500
        for start in range(have + 1, upto + 1, step):
            stop = min(upto, start + step - 1)
            conn.execute(
                f"""
                DO $$
                BEGIN
                  FOR i IN {start}..{stop} LOOP
                    EXECUTE format(
                      'CREATE TABLE bench_t%s (id bigserial PRIMARY KEY, v text, n int);
                       INSERT INTO bench_t%s (v, n)
                         SELECT md5(g::text), g FROM generate_series(1, 20) g;
                       DELETE FROM bench_t%s WHERE n <= 5', i, i, i);
                  END LOOP;
                END $$;
                """
            )
        conn.execute("ANALYZE")


def open_idle(cluster, count: int) -> list[psycopg.Connection]:
    """Client sessions that connect and then sit idle, as an application's pool does."""
    conns = []
    for n in range(count):
        conn = psycopg.connect(
            host=cluster.host,
            port=cluster.port,
            dbname=TARGET_DB,
            user="postgres",
            autocommit=True,
            application_name=f"bench-app-pool-{n % 4}",
        )
        conn.execute("SELECT 1")
        conns.append(conn)
    return conns


# --- Quell side ------------------------------------------------------------------------------


def slowest_checks(limit: int = 5) -> str:
    """The latest run's slowest checks, "key ms, ..." (where a size's time goes)."""
    from diagnostics.models import DiagnosticRun

    run = DiagnosticRun.objects.order_by("-id").first()
    results = run.results.order_by("-duration_ms")[:limit]
    return ", ".join(f"{r.key} {r.duration_ms} ms" for r in results)


def quell_run(target_id: int) -> tuple[float, int, str]:
    """One full run, task to stored results; (seconds, results stored, worst status)."""
    from diagnostics import services
    from diagnostics.models import DiagnosticRun

    started = time.perf_counter()
    run = services.diagnostic_run_start(target_id=target_id, trigger="api")
    elapsed = time.perf_counter() - started
    run = DiagnosticRun.objects.get(pk=run.pk)
    if run.status != "succeeded":
        raise RuntimeError(f"run {run.pk} is {run.status}: {run.error}")
    return elapsed, run.results.count(), run.worst_status


# Where one run's time goes (cProfile, inclusive time of these functions; nested labels are
# parts of the one above).
PROFILE_LAYERS = [
    ("whole run: call to stored results", "diagnostics/services.py", "diagnostic_run_start"),
    ("  queue: create the run, send its task", "diagnostics/pipeline.py", "create"),
    ("  claim: queued -> running (1 transaction)", "diagnostics/pipeline.py", "claim"),
    ("  connect to the target", "diagnostics/target.py", "connect_target"),
    ("  session setup: BEGIN + SET LOCALs", "diagnostics/target.py", "_begin"),
    ("  checks, each in a savepoint", "diagnostics/runner.py", "_run_one"),
    ("    statements on the target (round trips)", "diagnostics/target.py", "execute"),
    ("    watchdog: arm", "diagnostics/target.py", "arm"),
    ("    watchdog: disarm", "diagnostics/target.py", "disarm"),
    ("  store results + finish (1 transaction)", "diagnostics/pipeline.py", "finish"),
    ("    bulk insert of the results", "django/db/models/query.py", "bulk_create"),
]


def profile_runs(target_id: int, runs: int) -> None:
    """cProfile `runs` full runs and print the time per run by layer."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(runs):
        quell_run(target_id)
    profiler.disable()
    stats = pstats.Stats(profiler).stats
    print(f"\nprofile of {runs} runs (cProfile, inclusive ms per run; cProfile inflates Python):")
    for label, suffix, name in PROFILE_LAYERS:
        inclusive = sum(
            ct
            for (file, _, func), (_, _, _, ct, _) in stats.items()
            if func == name and file.endswith(suffix)
        )
        print(f"  {label:<50} {inclusive / runs * 1000:8.2f} ms")


def record_sql(target_id: int) -> list[tuple[str, object]]:
    """The statements one run sends to the target, in order (recorded, then replayed by psql)."""
    from diagnostics import target as target_module

    recorded: list[tuple[str, object]] = []
    original = target_module.TargetSession.execute

    def recording(self, sql, params=None, **options):
        recorded.append((sql, params))
        return original(self, sql, params, **options)

    target_module.TargetSession.execute = recording
    try:
        quell_run(target_id)
    finally:
        target_module.TargetSession.execute = original
    return recorded


def psql_script(cluster, statements: list[tuple[str, object]]) -> str:
    """The recorded statements with their parameters inlined, one per line, for psql."""
    lines = []
    with cluster.connect(TARGET_DB) as conn:
        cur = psycopg.ClientCursor(conn)
        for sql, params in statements:
            text = cur.mogrify(sql, params) if params is not None else sql
            lines.append(text.strip().rstrip(";") + ";")
    return "\n".join(lines) + "\n"


def psql_run(cluster, script_path: str) -> float:
    from tests.diagnostics import clusters

    env = {
        **os.environ,
        "PGHOST": cluster.host,
        "PGPORT": str(cluster.port),
        "PGDATABASE": TARGET_DB,
        "PGUSER": "postgres",
        "PGAPPNAME": "quell-diagnostics",
    }
    started = time.perf_counter()
    subprocess.run(
        [str(clusters.PSQL), "-X", "-q", "-f", script_path],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
    )
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,1000,10000", help="table counts, ascending")
    parser.add_argument("--idle", type=int, default=200, help="idle client connections")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per side and size")
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="also profile N runs at the smallest size and print the breakdown by layer",
    )
    args = parser.parse_args()
    sizes = sorted(int(s.replace("_", "").replace(",", "")) for s in args.sizes.split(","))

    admin_url = os.environ.get("DATABASE_URL", DEFAULT_SERVER)
    recreate_database(admin_url, QUELL_DB)
    os.environ["DATABASE_URL"] = with_dbname(admin_url, QUELL_DB)
    use_throwaway_secrets()
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.dev"
    os.environ["DJANGO_DEBUG"] = "false"
    os.environ["DJANGO_LOG_LEVEL"] = "WARNING"
    os.environ.setdefault("DATABASE_CONN_MAX_AGE", "600")
    import django

    django.setup()
    from celery import current_app
    from django.core.management import call_command

    from diagnostics import services
    from diagnostics.checks import registry

    # The task runs in-process, right after the run's row commits (as a worker would take it).
    current_app.conf.task_always_eager = True
    current_app.conf.task_eager_propagates = True
    call_command("migrate", verbosity=0, interactive=False)

    cluster = None
    idle = []
    rows = []
    try:
        t0 = time.perf_counter()
        cluster = start_cluster(args.idle)
        print(
            f"target: PostgreSQL {cluster.version_num} on 127.0.0.1:{cluster.port}, "
            f"{len(registry.keys())} checks; cluster up in {time.perf_counter() - t0:.1f}s; "
            f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        )
        idle = open_idle(cluster, args.idle)
        target = services.target_create(
            name="bench-target",
            host=cluster.host,
            port=cluster.port,
            database=TARGET_DB,
            user="postgres",
            sslmode="disable",
        )
        have = 0
        for size in sizes:
            t0 = time.perf_counter()
            grow_tables(cluster, size, have)
            have = size
            print(f"{size} tables ready in {time.perf_counter() - t0:.1f}s")
            quell_run(target.pk)  # warm-up: caches on both sides, like a second run in practice
            statements = record_sql(target.pk)
            with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
                f.write(psql_script(cluster, statements))
                script = f.name
            psql_run(cluster, script)  # warm-up
            quell_times, psql_times = [], []
            for _ in range(args.repeat):  # interleaved, so drift hits both sides alike
                seconds, results, worst = quell_run(target.pk)
                quell_times.append(seconds)
                psql_times.append(psql_run(cluster, script))
            os.unlink(script)
            q, p = statistics.median(quell_times), statistics.median(psql_times)
            rows.append((size, len(statements), results, worst, q, p, q / p))
            print(
                f"  {size:>6} tables: Quell {q * 1000:.0f} ms, psql {p * 1000:.0f} ms, "
                f"ratio {q / p:.2f} ({len(statements)} statements, {results} results, "
                f"worst {worst})"
            )
            print(f"           slowest checks: {slowest_checks()}")
            if args.profile and size == sizes[0]:
                profile_runs(target.pk, args.profile)
    finally:
        for conn in idle:
            conn.close()
        if cluster is not None:
            cluster.stop()
        drop_database(admin_url, QUELL_DB)

    print()
    print(
        "| tables | idle connections | statements | Quell suite, task to stored results "
        "(median) | same SQL by psql (median) | ratio |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for size, statements, _results, _worst, q, p, ratio in rows:
        print(
            f"| {size:,} | {args.idle} | {statements} | {q * 1000:.0f} ms | {p * 1000:.0f} ms "
            f"| {ratio:.2f} |"
        )
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    ok_ratio = all(r[-1] <= TARGETS["ratio"] for r in rows)
    largest = [r for r in rows if r[0] >= 10_000]
    ok_time = all(r[4] < TARGETS["suite_s_at_10000"] for r in largest)
    print()
    print(f"ratio <= {TARGETS['ratio']} at every size: {'yes' if ok_ratio else 'NO'}")
    if largest:
        print(
            f"suite < {TARGETS['suite_s_at_10000']} s at 10,000 tables: "
            f"{'yes' if ok_time else 'NO'}"
        )
    return 0 if ok_ratio and ok_time else 1


if __name__ == "__main__":
    sys.exit(main())
