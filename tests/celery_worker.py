"""A real Celery worker subprocess for end-to-end tests.

The worker uses the test settings, the pytest test database (use it with
django_db(transaction=True), so the rows are committed and visible to it) and the broker from
settings (REDIS_URL: db 0 in CI, another number per developer). By default it consumes a queue
of its own, and tasks sent by the test go there, so no other worker takes them.
"""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
import redis
from celery import current_app
from django.conf import settings
from django.db import connection

ROOT = pathlib.Path(__file__).resolve().parents[1]


@dataclass
class Worker:
    proc: subprocess.Popen
    log: pathlib.Path
    queue: str

    def __getitem__(self, key: str):
        # Tests written against the former dict fixtures read worker["log"].
        return getattr(self, key)


def database_url() -> str:
    """The URL of the database this test process uses (the pytest test database)."""
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@contextmanager
def celery_worker(
    log_dir: pathlib.Path,
    *,
    name: str = "quell-e2e",
    private_queue: bool = True,
    queue: str | None = None,
    consume_default: bool = False,
    purge_default: bool = False,
    env: dict[str, str] | None = None,
    ready_timeout: float = 60,
) -> Iterator[Worker]:
    """Run `celery worker --pool=solo` until the block ends, then end its process group.

    private_queue: consume a queue of its own and send this process's tasks there;
    queue: the name of that queue, to share it between workers (each keeps its own node name);
    consume_default: consume the default queue too (where a worker's follow-up tasks go);
    purge_default: drop what earlier runs left in the default queue of this broker database;
    env: extra environment variables for the worker.
    """
    conf = current_app.conf
    default = conf.task_default_queue or "celery"
    node = f"{name}-{uuid.uuid4().hex[:8]}"
    queue = (queue or node) if private_queue else default
    queues = [queue]
    if consume_default and default not in queues:
        queues.append(default)
    if purge_default:
        redis.Redis.from_url(settings.CELERY_BROKER_URL).delete(default)
    log = log_dir / "worker.log"
    worker_env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "REDIS_URL": settings.REDIS_URL,
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    celery = ROOT / ".venv" / "bin" / "celery"
    cmd = [str(celery)] if celery.exists() else [sys.executable, "-m", "celery"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*cmd, "-A", "config", "worker", "--pool=solo", "-l", "info", "-Q", ",".join(queues),
             "-n", f"{node}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=ROOT,
            env=worker_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: teardown ends everything it started
        )  # fmt: skip
    saved = conf.task_default_queue, conf.task_always_eager
    conf.task_default_queue, conf.task_always_eager = queue, False
    try:
        deadline = time.monotonic() + ready_timeout
        while b" ready." not in log.read_bytes():
            if proc.poll() is not None:
                pytest.fail(f"celery worker exited early:\n{log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(
                    f"celery worker not ready in {ready_timeout:g} s:\n{log.read_text()[-3000:]}"
                )
            time.sleep(0.2)
        yield Worker(proc=proc, log=log, queue=queue)
    finally:
        conf.task_default_queue, conf.task_always_eager = saved
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
