"""End-to-end tests through a real nginx, configured from ``docs/deploy/``.

Every test sends a real HTTP request with :mod:`http.client` (or a raw socket) to a
real nginx that passes it over SCGI to ``python -m tests.e2e_app`` (both processes are
run by :mod:`tests.frontends`), and checks what the client got and what the
application reports it saw.  The same tests run four times, by subclassing: with the
recommended site template (``nginx-scgi.conf.in``: nginx sends ``SCRIPT_NAME`` and
``PATH_INFO``) and with the stock one (``nginx-scgi-stock.conf.in``: the backend runs
with ``--mount /app``), each over a TCP and over a unix-socket backend.

nginx is required: without it every test fails, saying what to install.
"""

from __future__ import annotations

import hashlib
import random
import socket
import time
import uuid
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from twisted.trial.unittest import SynchronousTestCase

from .e2e_app import BIG_SIZE, bigFileContent
from .frontends import BackendSpec, FrontendTestMixin, Nginx, StackSpec, httpResponse

PREFIX = "/app"
MAX_BODY_SIZE = 9 * 1024 * 1024
"""The backend's ``--max-body-size``; nginx itself allows 64 MiB."""

UPLOAD_SIZE = 8 * 1024 * 1024


def _payload(size: int, seed: int) -> bytes:
    """Return ``size`` pseudo-random bytes (deterministic for a seed)."""
    return random.Random(seed).randbytes(size)


def _headerValues(echo: dict[str, Any], name: str) -> list[str]:
    """Return the values of request header ``name`` in an ``/echo`` answer."""
    return [value for key, value in echo["headers"] if key == name]


def _variables(echo: dict[str, Any]) -> list[tuple[str, str]]:
    """Return the raw SCGI variables of an ``/echo`` answer as pairs."""
    return [(name, value) for name, value in echo["scgi"]]


class _NginxTestsMixin(FrontendTestMixin):
    """The tests every nginx configuration must pass, all under :data:`PREFIX`."""

    def test_getWithQueryAndHeaders(self) -> None:
        """A GET's method, URI, query, headers and client reach the application."""
        target = PREFIX + "/echo?a=1&b=x%20y&a=2"
        response = self.request("GET", target, headers=[("X-Custom", "hello there")])
        self.assertEqual(response.status, 200)
        self.assertEqual(response.header("Content-Type"), "application/json")
        echo = response.json()
        self.assertEqual(echo["method"], "GET")
        self.assertEqual(echo["uri"], target)
        self.assertEqual(echo["path"], PREFIX + "/echo")
        self.assertEqual(echo["args"], {"a": ["1", "2"], "b": ["x y"]})
        self.assertEqual(echo["prepath"], ["app", "echo"])
        self.assertEqual(echo["postpath"], [])
        self.assertEqual(_headerValues(echo, "x-custom"), ["hello there"])
        self.assertEqual(echo["client"]["host"], "127.0.0.1")
        self.assertFalse(echo["isSecure"])
        self.assertEqual(echo["body_length"], 0)
        variables = _variables(echo)
        self.assertEqual(variables[0], ("CONTENT_LENGTH", "0"))
        self.assertIn(("SCGI", "1"), variables)
        self.assertIn(("REQUEST_URI", target), variables)
        self.assertIn(("QUERY_STRING", "a=1&b=x%20y&a=2"), variables)

    def test_pathAfterMountKeepsEncodedSlash(self) -> None:
        """The path below the mount is routed from the raw URI: ``%2F`` stays put.

        nginx decodes ``PATH_INFO`` (``/echo/x/y/z``) but sends ``REQUEST_URI`` as
        typed, and the application sees the segments of the latter.
        """
        response = self.request("GET", PREFIX + "/echo/x/y%2Fz")
        self.assertEqual(response.status, 200)
        echo = response.json()
        self.assertEqual(echo["prepath"], ["app", "echo"])
        self.assertEqual(echo["postpath"], ["x", "y/z"])

    def test_hostAndPort(self) -> None:
        """The application's host and port are the ones the client addressed."""
        echo = self.request("GET", PREFIX + "/echo").json()
        self.assertEqual(echo["requestHostname"], "127.0.0.1")
        self.assertEqual(echo["host"]["port"], self.stack.port)
        self.assertEqual(
            echo["prePathURL"], f"http://127.0.0.1:{self.stack.port}{PREFIX}/echo"
        )

    def test_repeatedHeaders(self) -> None:
        """Two ``X-Foo`` lines arrive merged; two ``Cookie`` lines give two cookies."""
        response = self.request(
            "GET",
            PREFIX + "/echo",
            headers=[
                ("X-Foo", "one"),
                ("Cookie", "a=1"),
                ("X-Foo", "two"),
                ("Cookie", "b=2"),
            ],
        )
        self.assertEqual(response.status, 200)
        echo = response.json()
        self.assertEqual(_headerValues(echo, "x-foo"), ["one, two"])
        self.assertEqual(echo["received_cookies"], {"a": "1", "b": "2"})

    def test_postBody(self) -> None:
        """A small POST's body, type and length reach the application intact."""
        body = b"name=value&x=%20y"
        response = self.request(
            "POST",
            PREFIX + "/echo",
            headers=[("Content-Type", "application/x-www-form-urlencoded")],
            body=body,
        )
        self.assertEqual(response.status, 200)
        echo = response.json()
        self.assertEqual(echo["method"], "POST")
        self.assertEqual(echo["body_length"], len(body))
        self.assertEqual(echo["body_sha256"], hashlib.sha256(body).hexdigest())
        self.assertEqual(echo["args"], {"name": ["value"], "x": [" y"]})
        self.assertEqual(
            _headerValues(echo, "content-type"), ["application/x-www-form-urlencoded"]
        )
        self.assertEqual(_headerValues(echo, "content-length"), [str(len(body))])

    def test_upload8MiB(self) -> None:
        """An 8 MiB POST arrives intact: same length, same SHA-256."""
        body = _payload(UPLOAD_SIZE, 8)
        response = self.request(
            "POST",
            PREFIX + "/upload",
            headers=[("Content-Type", "application/octet-stream")],
            body=body,
        )
        self.assertEqual(response.status, 200)
        self.assertEqual(
            response.json(),
            {"length": len(body), "sha256": hashlib.sha256(body).hexdigest()},
        )

    def test_bodyOverBackendLimit(self) -> None:
        """A body over the backend's limit gets the backend's 413, not nginx's 502.

        The backend answers before reading the body, then reads it all before it
        closes, so the close is no reset that nginx would report as a bad gateway.
        """
        body = _payload(MAX_BODY_SIZE + 1, 9)
        response = self.request("POST", PREFIX + "/upload", body=body)
        self.assertEqual(response.status, 413)
        self.assertIn(b"413", response.body)
        self.assertEqual(response.header("Content-Type"), "text/plain; charset=utf-8")

    def test_redirect(self) -> None:
        """A redirect's ``Location`` has the client's host and nginx's port."""
        response = self.request("GET", PREFIX + "/redirect")
        self.assertEqual(response.status, 302)
        location = f"http://127.0.0.1:{self.stack.port}{PREFIX}/redirect/done"
        self.assertEqual(response.header("Location"), location)
        followed = self.request("GET", urlsplit(location).path)
        self.assertEqual(followed.status, 200)
        self.assertEqual(followed.json()["prepath"], ["app", "redirect", "done"])

    def test_head(self) -> None:
        """HEAD gets the GET's status and length, and no body."""
        response = self.request("HEAD", PREFIX + "/big")
        self.assertEqual(response.status, 200)
        self.assertEqual(response.header("Content-Length"), str(BIG_SIZE))
        self.assertEqual(response.body, b"")
        echo = self.request("HEAD", PREFIX + "/echo")
        self.assertEqual(echo.status, 200)
        self.assertEqual(echo.body, b"")

    def test_bigFile(self) -> None:
        """A 1 MiB ``static.File`` arrives intact, with its length."""
        response = self.request("GET", PREFIX + "/big")
        self.assertEqual(response.status, 200)
        self.assertEqual(response.header("Content-Length"), str(BIG_SIZE))
        self.assertEqual(
            hashlib.sha256(response.body).hexdigest(),
            hashlib.sha256(bigFileContent()).hexdigest(),
        )

    def test_stream(self) -> None:
        """The first line arrives before the last is written: nginx streams.

        The resource sends ``X-Accel-Buffering: no``, so nginx passes each write on
        instead of buffering the response.  The lines carry ``time.monotonic()`` of
        the backend, comparable with the test's (one system-wide clock).
        """
        count, delay = 3, 0.3
        target = f"{PREFIX}/stream?n={count}&delay={delay}"
        with httpResponse(self.stack.port, "GET", target) as response:
            self.assertEqual(response.status, 200)
            first = response.readline()
            firstReceived = time.monotonic()
            lines = [first, *response.read().splitlines(keepends=True)]
        self.assertEqual(
            [int(line.split()[0]) for line in lines], list(range(count)), lines
        )
        lastWritten = float(lines[-1].split()[1])
        self.assertLess(firstReceived, lastWritten)

    def test_notFound(self) -> None:
        """A missing resource gets twisted.web's 404, passed on by nginx."""
        response = self.request("GET", PREFIX + "/missing")
        self.assertEqual(response.status, 404)
        self.assertIn(b"No Such Resource", response.body)

    def test_error(self) -> None:
        """A resource that raises gets twisted.web's 500, not a gateway error."""
        response = self.request("GET", PREFIX + "/error")
        self.assertEqual(response.status, 500)
        self.assertIn(b"Processing Failed", response.body)

    def test_wsgi(self) -> None:
        """A ``WSGIResource`` below the mount sees the right CGI-style environment."""
        response = self.request("GET", PREFIX + "/wsgi/x/y?q=1")
        self.assertEqual(response.status, 200)
        self.assertEqual(
            response.json(),
            {
                "SCRIPT_NAME": PREFIX + "/wsgi",
                "PATH_INFO": "/x/y",
                "QUERY_STRING": "q=1",
                "wsgi.url_scheme": "http",
                "REMOTE_ADDR": "127.0.0.1",
                "REQUEST_METHOD": "GET",
            },
        )

    def test_clientAbort(self) -> None:
        """A client that goes away mid-response makes ``notifyFinish()`` errback.

        nginx closes the backend connection when its client closes; the backend must
        notice although it only writes.
        """
        key = uuid.uuid4().hex
        target = f"{PREFIX}/abort?id={key}&delay=0.05"
        with socket.create_connection(("127.0.0.1", self.stack.port), 10) as client:
            client.sendall(
                f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode("ascii")
            )
            received = b""
            while b"tick 2\n" not in received:
                data = client.recv(4096)
                self.assertTrue(data, f"EOF before two ticks: {received!r}")
                received += data
        deadline = time.monotonic() + 10
        while True:
            status = self.request("GET", f"{PREFIX}/abort-status?id={key}")
            self.assertEqual(status.status, 200)
            record = status.json()
            if record["outcome"] is not None or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(record["outcome"], "errback", record)
        self.assertLess(record["writes"], 600)


class _ScriptNameTestsMixin(_NginxTestsMixin):
    """nginx with ``nginx-scgi.conf.in``: it sends ``SCRIPT_NAME`` and ``PATH_INFO``."""

    def test_mountVariables(self) -> None:
        """The prefix arrives as ``SCRIPT_NAME``, the rest as ``PATH_INFO``."""
        echo = self.request("GET", PREFIX + "/echo/a%20b").json()
        variables = _variables(echo)
        self.assertIn(("SCRIPT_NAME", PREFIX), variables)
        self.assertIn(("PATH_INFO", "/echo/a b"), variables)
        self.assertEqual(echo["prepath"], ["app", "echo"])
        self.assertEqual(echo["postpath"], ["a b"])

    def test_rootLocation(self) -> None:
        """Outside the prefix, the same application is mounted at the root."""
        response = self.request("GET", "/echo?z=1")
        self.assertEqual(response.status, 200)
        echo = response.json()
        variables = _variables(echo)
        self.assertIn(("SCRIPT_NAME", ""), variables)
        self.assertIn(("PATH_INFO", "/echo"), variables)
        self.assertEqual(echo["prepath"], ["echo"])
        self.assertEqual(echo["prePathURL"], f"http://127.0.0.1:{self.stack.port}/echo")


class _StockTestsMixin(_NginxTestsMixin):
    """nginx with ``nginx-scgi-stock.conf.in`` and a backend run with ``--mount``."""

    def test_mountVariables(self) -> None:
        """Stock nginx sends no ``SCRIPT_NAME``/``PATH_INFO``; ``--mount`` splits."""
        echo = self.request("GET", PREFIX + "/echo/a%20b").json()
        names = [name for name, _ in _variables(echo)]
        self.assertNotIn("SCRIPT_NAME", names)
        self.assertNotIn("PATH_INFO", names)
        self.assertEqual(echo["prepath"], ["app", "echo"])
        self.assertEqual(echo["postpath"], ["a b"])

    def test_outsidePrefix(self) -> None:
        """The stock template passes nothing outside the prefix to the backend."""
        response = self.request("GET", PREFIX + "le/echo")
        self.assertEqual(response.status, 404)
        self.assertNotIn(b"No Such Resource", response.body)


def _spec(
    site: str, transport: Literal["tcp", "unix"], mount: str | None = None
) -> StackSpec:
    """Describe an nginx stack with the given site template and backend."""
    return StackSpec(
        Nginx,
        site,
        BackendSpec(transport, mount=mount, maxBodySize=MAX_BODY_SIZE),
        PREFIX,
    )


class NginxTCPTests(_ScriptNameTestsMixin, SynchronousTestCase):
    """``nginx-scgi.conf.in`` with a TCP backend."""

    stackSpec: ClassVar[StackSpec] = _spec("nginx-scgi.conf.in", "tcp")


class NginxUnixTests(_ScriptNameTestsMixin, SynchronousTestCase):
    """``nginx-scgi.conf.in`` with a unix-socket backend."""

    stackSpec: ClassVar[StackSpec] = _spec("nginx-scgi.conf.in", "unix")


class NginxStockTCPTests(_StockTestsMixin, SynchronousTestCase):
    """``nginx-scgi-stock.conf.in`` with a TCP backend run with ``--mount /app``."""

    stackSpec: ClassVar[StackSpec] = _spec("nginx-scgi-stock.conf.in", "tcp", PREFIX)


class NginxStockUnixTests(_StockTestsMixin, SynchronousTestCase):
    """``nginx-scgi-stock.conf.in`` with a unix backend run with ``--mount /app``."""

    stackSpec: ClassVar[StackSpec] = _spec("nginx-scgi-stock.conf.in", "unix", PREFIX)
