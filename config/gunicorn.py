"""gunicorn settings for Quell's web process (Procfile: `gunicorn --config python:config.gunicorn`).

A fixed number of worker processes, each with a fixed number of threads, and a database
connection pool per worker no larger than its thread count: the web process never holds more
than QUELL_WEB_WORKERS x QUELL_WEB_THREADS connections to Quell's database.
"""

import os

port = os.environ.get("QUELL_PORT", "8000")
bind = [f"127.0.0.1:{port}"]
workers = int(os.environ.get("QUELL_WEB_WORKERS", "2"))
threads = int(os.environ.get("QUELL_WEB_THREADS", "4"))
worker_class = "gthread"
# Each worker's pool (config.settings.base, DATABASE_POOL_MAX_SIZE) matches its threads: a
# request never waits for a connection, and no worker opens more.
raw_env = [f"DATABASE_POOL_MAX_SIZE={threads}"]
# Autoreload only in development mode (scripts/run --dev).
reload = os.environ.get("QUELL_DEV") == "1"
timeout = int(os.environ.get("QUELL_WEB_TIMEOUT", "60"))
graceful_timeout = 5  # honcho kills what is left 5 s after SIGTERM
accesslog = "-"
wsgi_app = "config.wsgi:application"
