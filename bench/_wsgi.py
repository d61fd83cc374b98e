"""Requests through Django's real WSGI handler, in process, as a WSGI server would send them
(the benchmarks that measure Quell's request stack without a network in between)."""

from __future__ import annotations

import io
import sys


def call(
    handler,
    method: str,
    path: str,
    *,
    authorization: str,
    query: str = "",
    body: bytes = b"",
    content_type: str = "",
) -> tuple[str, bytes]:
    """(status line, body) of one request; the response is closed (request_finished fires)."""
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1",
        "HTTP_ACCEPT": "application/json",
        "HTTP_AUTHORIZATION": authorization,
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.url_scheme": "http",
        "wsgi.version": (1, 0),
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if body:
        environ["CONTENT_TYPE"] = content_type
        environ["CONTENT_LENGTH"] = str(len(body))
    status: list[str] = []
    response = handler(environ, lambda s, h, exc_info=None: status.append(s))
    answer = b"".join(response)
    response.close()  # request_finished: what a WSGI server does after each request
    return status[0], answer
