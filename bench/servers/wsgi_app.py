"""The three routes as a WSGI application (for flup and uWSGI).

nginx sends no ``PATH_INFO``: the path is taken from ``PATH_INFO`` when a server
provides one (flup derives it from ``REQUEST_URI``), else ``DOCUMENT_URI``, else
``REQUEST_URI`` without its query.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

HELLO = b"Hello, world!"
BIG = b"x" * (1024 * 1024)
CHUNK = 64 * 1024

_TEXT = [("Content-Type", "text/plain")]


def application(
    environ: dict[str, Any], start_response: Callable[..., Any]
) -> Iterable[bytes]:
    """Serve ``/hello``, ``/big`` and ``/post``."""
    path = (
        environ.get("PATH_INFO")
        or environ.get("DOCUMENT_URI")
        or environ.get("REQUEST_URI", "").split("?", 1)[0]
    )
    if path == "/hello":
        start_response("200 OK", [*_TEXT, ("Content-Length", "13")])
        return [HELLO]
    if path == "/big":
        start_response(
            "200 OK",
            [
                ("Content-Type", "application/octet-stream"),
                ("Content-Length", "1048576"),
            ],
        )
        return [BIG]
    if path == "/post" and environ.get("REQUEST_METHOD") == "POST":
        remaining = int(environ.get("CONTENT_LENGTH") or 0)
        stream = environ["wsgi.input"]
        total = 0
        while remaining > 0:
            chunk = stream.read(min(CHUNK, remaining))
            if not chunk:
                break
            total += len(chunk)
            remaining -= len(chunk)
        body = b"%d" % total
        start_response("200 OK", [*_TEXT, ("Content-Length", str(len(body)))])
        return [body]
    start_response("404 Not Found", [*_TEXT, ("Content-Length", "0")])
    return [b""]
