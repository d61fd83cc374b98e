"""The baseline bench/load.py measures against: a constant JSON document from a bare WSGI
callable, served by the same gunicorn configuration (config.gunicorn) as Quell."""

import json
import os

BODY = json.dumps(
    {
        "id": 1,
        "title": "x" * max(0, int(os.environ.get("QUELL_BENCH_BASELINE_BODY_BYTES", "1500")) - 24),
    }
).encode()


def application(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length:
        environ["wsgi.input"].read(length)
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))]
    )
    return [BODY]
