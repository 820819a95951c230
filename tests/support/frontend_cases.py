"""The end-to-end cases every frontend runs: one mixin, used by one class per stack.

:class:`FrontendCases` holds the tests that nginx, Apache and lighttpd share.  Each
frontend's module (``test_nginx``, ``test_apache``, ``test_lighttpd``) subclasses it
once to pin what that frontend does differently (overriding a test, with a docstring
saying what the frontend does), and then once per combination of backend transport
(TCP, unix socket) and mount (the root, or :data:`PREFIX`) with a
``SynchronousTestCase``, so that pytest and trial both run them::

    class ApacheUnixPrefixTests(_ApacheCases, SynchronousTestCase):
        stackSpec = apacheSpec("unix")
        mount = PREFIX

Every site template mounts the application twice: at :data:`PREFIX` and at the root,
so a root class and a prefix class of the same transport use the same stack.  The
defaults of the shared tests are what nginx and lighttpd do; Apache overrides the
most.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import shlex
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote, urlsplit

from tests._twin import CORPUS, Answer, TwinRequest, answer, compare, hostFor, resolve
from tests.e2e_app import BIG_SIZE, OFFLOAD_URI, bigFileContent, offloadFiles

from .frontends import (
    REPOSITORY,
    FrontendTestMixin,
    HTTPResult,
    StackSpec,
    httpRequest,
    httpResponse,
)

if TYPE_CHECKING:
    from twisted.trial.unittest import SynchronousTestCase

    _GuideBase = SynchronousTestCase
else:
    _GuideBase = object

__all__ = [
    "MAX_BODY_SIZE",
    "PREFIX",
    "FrontendCases",
    "GuideCases",
    "TwinCases",
    "headerValues",
    "payload",
    "variables",
]

PREFIX = "/app"
"""The prefix every site template is rendered with."""

MAX_BODY_SIZE = 17 * 1024 * 1024
"""The backend's ``--max-body-size``; the frontends themselves allow 64 MiB."""

KiB = 1024
MiB = 1024 * KiB


def payload(size: int, seed: int) -> bytes:
    """Return ``size`` pseudo-random bytes (deterministic for a seed)."""
    return random.Random(seed).randbytes(size)


def headerValues(echo: dict[str, Any], name: str) -> list[str]:
    """Return the values of request header ``name`` in an ``/echo`` answer."""
    return [value for key, value in echo["headers"] if key == name]


def variables(echo: dict[str, Any]) -> list[tuple[str, str]]:
    """Return the raw SCGI variables of an ``/echo`` answer as pairs."""
    return [(name, value) for name, value in echo["scgi"]]


def _utf8AsLatin1(text: str) -> str:
    """Return how ``/echo`` shows the UTF-8 bytes of ``text`` (as Latin-1)."""
    return text.encode("utf-8").decode("latin-1")


class FrontendCases(FrontendTestMixin):
    """The tests every frontend passes, for the mount point :attr:`mount`.

    :cvar mount: where the application is addressed: ``""`` (the root) or
        :data:`PREFIX`.
    :cvar offloadFrontend: the ``frontend`` argument of
        :class:`scgi_twisted.offload.FileOffload` that suits this frontend.
    :cvar foreignOffload: one that does not: its header reaches the client.
    """

    mount: ClassVar[str]
    offloadFrontend: ClassVar[str]
    foreignOffload: ClassVar[str]

    # Helpers.

    def at(self, path: str) -> str:
        """Return ``path`` (starting with ``/``) below the class's mount point."""
        return self.mount + path

    @property
    def mountSegments(self) -> list[str]:
        """The ``prepath`` segments of the mount point."""
        return [segment for segment in self.mount.split("/") if segment]

    def echo(self, path: str, **options: Any) -> dict[str, Any]:
        """GET ``path`` (a full path) from ``/echo``; check it is a 200; return it."""
        response = self.request("GET", path, **options)
        self.assertEqual(response.status, 200, response)
        self.assertEqual(response.header("Content-Type"), "application/json")
        echo: dict[str, Any] = response.json()
        return echo

    def upload(self, body: bytes, **options: Any) -> HTTPResult:
        """POST ``body`` to ``/upload``."""
        return self.request(
            "POST",
            self.at("/upload"),
            headers=[("Content-Type", "application/octet-stream")],
            body=body,
            **options,
        )

    def assertUploaded(self, response: HTTPResult, body: bytes) -> None:
        """Assert ``/upload`` answered with the length and SHA-256 of ``body``."""
        self.assertEqual(response.status, 200, response)
        self.assertEqual(
            response.json(),
            {"length": len(body), "sha256": hashlib.sha256(body).hexdigest()},
        )

    def assertNotFromBackend(self, response: HTTPResult) -> None:
        """Assert a response was made by the frontend, not by twisted.web."""
        self.assertNotIn(b"No Such Resource", response.body)
        self.assertNotIn(b"Processing Failed", response.body)
        self.assertNotEqual(response.header("Content-Type"), "application/json")

    # Requests: method, path, query, headers.

    def test_getWithQuery(self) -> None:
        """A GET's method, raw URI, query, path and client reach the application."""
        target = self.at("/echo?a=1&b=x%20y&a=2")
        echo = self.echo(target)
        self.assertEqual(echo["method"], "GET")
        self.assertEqual(echo["uri"], target)
        self.assertEqual(echo["path"], self.at("/echo"))
        self.assertEqual(echo["args"], {"a": ["1", "2"], "b": ["x y"]})
        self.assertEqual(echo["prepath"], [*self.mountSegments, "echo"])
        self.assertEqual(echo["postpath"], [])
        self.assertEqual(echo["client"]["host"], "127.0.0.1")
        self.assertFalse(echo["isSecure"])
        self.assertEqual(echo["body_length"], 0)
        pairs = variables(echo)
        self.assertEqual(pairs[0], ("CONTENT_LENGTH", "0"))
        self.assertIn(("SCGI", "1"), pairs)
        self.assertIn(("REQUEST_URI", target), pairs)
        self.assertIn(("QUERY_STRING", "a=1&b=x%20y&a=2"), pairs)

    def test_percentEncodedSpace(self) -> None:
        """``%20`` in the path is one segment with a space; the URI stays raw."""
        echo = self.echo(self.at("/echo/a%20b/c"))
        self.assertEqual(echo["uri"], self.at("/echo/a%20b/c"))
        self.assertEqual(echo["prepath"], [*self.mountSegments, "echo"])
        self.assertEqual(echo["postpath"], ["a b", "c"])

    def test_percentEncodedUTF8(self) -> None:
        """Percent-encoded UTF-8 arrives as the segment's UTF-8 bytes."""
        echo = self.echo(self.at("/echo/caf%C3%A9/%7Eu"))
        self.assertEqual(echo["prepath"], [*self.mountSegments, "echo"])
        self.assertEqual(echo["postpath"], [_utf8AsLatin1("caf\u00e9"), "~u"])

    def test_encodedSlash(self) -> None:
        """``%2F`` passes the frontend, and stays inside its segment.

        The frontend decodes it in ``PATH_INFO``, but the application routes on the
        raw ``REQUEST_URI``.
        """
        echo = self.echo(self.at("/echo/x/y%2Fz"))
        self.assertEqual(echo["prepath"], [*self.mountSegments, "echo"])
        self.assertEqual(echo["postpath"], ["x", "y/z"])

    def test_mountPoint(self) -> None:
        """A request for the mount point itself reaches the root resource.

        Without a slash (``/app``) the root renders with an empty ``postpath``; with
        one (``/app/``, or ``/`` at the root) its child ``""`` does.
        """
        if self.mount:
            echo = self.echo(self.mount)
            self.assertEqual(echo["prepath"], self.mountSegments)
            self.assertEqual(echo["postpath"], [])
        echo = self.echo(self.at("/"))
        self.assertEqual(echo["prepath"], [*self.mountSegments, ""])
        self.assertEqual(echo["postpath"], [])

    def test_customHeader(self) -> None:
        """A custom request header reaches the application unchanged."""
        echo = self.echo(
            self.at("/echo"), headers=[("X-Custom", "hello there; x=1, y")]
        )
        self.assertEqual(headerValues(echo, "x-custom"), ["hello there; x=1, y"])

    def test_underscoreHeader(self) -> None:
        """A header name with an underscore is dropped by the frontend."""
        echo = self.echo(self.at("/echo"), headers=[("X_Under", "u")])
        self.assertEqual(headerValues(echo, "x-under"), [])
        self.assertNotIn("HTTP_X_UNDER", [name for name, _ in variables(echo)])

    def test_repeatedHeaders(self) -> None:
        """A header sent twice reaches the application as one ``, ``-joined value."""
        echo = self.echo(
            self.at("/echo"),
            headers=[("X-Foo", "one"), ("X-Bar", "b"), ("X-Foo", "two")],
        )
        self.assertEqual(headerValues(echo, "x-foo"), ["one, two"])
        self.assertEqual(headerValues(echo, "x-bar"), ["b"])

    def test_twoCookieHeaders(self) -> None:
        """Two ``Cookie`` lines arrive as two cookies."""
        echo = self.echo(
            self.at("/echo"), headers=[("Cookie", "a=1"), ("Cookie", "b=2")]
        )
        self.assertEqual(echo["received_cookies"], {"a": "1", "b": "2"})

    def test_oneCookieHeaderTwoCookies(self) -> None:
        """One ``Cookie: a=1; b=2`` line (what browsers send) gives two cookies."""
        echo = self.echo(self.at("/echo"), headers=[("Cookie", "a=1; b=2")])
        self.assertEqual(echo["received_cookies"], {"a": "1", "b": "2"})

    def test_hostAndPort(self) -> None:
        """The application's host and port are the ones the client addressed."""
        echo = self.echo(self.at("/echo"))
        self.assertEqual(echo["requestHostname"], "127.0.0.1")
        self.assertEqual(echo["host"]["port"], self.stack.port)
        self.assertEqual(echo["prePathURL"], self.stack.url(self.at("/echo")))

    def test_hostHeaderWithOtherPort(self) -> None:
        """A ``Host`` header with another port (a port-forward) names the URLs.

        The frontend passes the port on (in ``HTTP_HOST`` or ``SERVER_PORT``).
        """
        response = self.request(
            "GET", self.at("/redirect"), headers=[("Host", "example.test:8443")]
        )
        self.assertEqual(response.status, 302)
        self.assertEqual(
            response.header("Location"),
            f"http://example.test:8443{self.at('/redirect/done')}",
        )

    def test_basicAuth(self) -> None:
        """The backend sees the ``Authorization`` header: ``getUser()`` works.

        ``getUser()`` and ``getPassword()`` are the credentials the client sent
        (Apache needs ``CGIPassAuth On``, which its site file sets).
        """
        echo = self.echo(
            self.at("/echo"), headers=[("Authorization", "Basic YWxpY2U6czNjcjN0")]
        )
        self.assertEqual((echo["user"], echo["password"]), ("alice", "s3cr3t"))
        self.assertIn(("HTTP_AUTHORIZATION", "Basic YWxpY2U6czNjcjN0"), variables(echo))

    # Request bodies.

    def test_postForm(self) -> None:
        """A small form POST's body, type and length reach the application intact."""
        body = b"name=value&x=%20y"
        response = self.request(
            "POST",
            self.at("/echo"),
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
            headerValues(echo, "content-type"), ["application/x-www-form-urlencoded"]
        )
        self.assertEqual(headerValues(echo, "content-length"), [str(len(body))])

    def test_upload0B(self) -> None:
        """An empty POST body arrives as empty (``Content-Length: 0``)."""
        self.assertUploaded(self.upload(b""), b"")

    def test_upload1KiB(self) -> None:
        """A 1 KiB POST body arrives intact: same length, same SHA-256."""
        body = payload(KiB, 1)
        self.assertUploaded(self.upload(body), body)

    def test_upload16MiB(self) -> None:
        """A 16 MiB POST body arrives intact: same length, same SHA-256."""
        body = payload(16 * MiB, 16)
        self.assertUploaded(self.upload(body), body)

    def test_chunkedUpload(self) -> None:
        """A chunked upload arrives de-chunked and intact.

        The frontend buffers it and sends its real ``CONTENT_LENGTH``.
        """
        body = payload(200 * KiB, 200)
        self.assertUploaded(self.upload(body, chunked=True), body)

    def test_bodyOverBackendLimit(self) -> None:
        """A body over ``--max-body-size`` reaches the client as 413, not 502/503.

        The backend answers before reading the body, then reads it all before it
        closes, so the close is no reset that the frontend would report as a
        gateway error.
        """
        response = self.upload(payload(MAX_BODY_SIZE + 1, 17))
        self.assertEqual(response.status, 413)
        self.assertIn(b"413", response.body)
        self.assertEqual(response.header("Content-Type"), "text/plain; charset=utf-8")

    # Responses.

    def test_head(self) -> None:
        """HEAD gets the GET's status and no body."""
        response = self.request("HEAD", self.at("/big"))
        self.assertEqual(response.status, 200)
        self.assertEqual(response.header("Content-Length"), str(BIG_SIZE))
        self.assertEqual(response.body, b"")
        echo = self.request("HEAD", self.at("/echo"))
        self.assertEqual(echo.status, 200)
        self.assertEqual(echo.body, b"")

    def test_notFound(self) -> None:
        """A missing resource gets twisted.web's 404, passed on by the frontend."""
        response = self.request("GET", self.at("/missing"))
        self.assertEqual(response.status, 404)
        self.assertIn(b"No Such Resource", response.body)

    def test_error(self) -> None:
        """A resource that raises gets twisted.web's 500, not a gateway error."""
        response = self.request("GET", self.at("/error"))
        self.assertEqual(response.status, 500)
        self.assertIn(b"Processing Failed", response.body)

    def test_redirect(self) -> None:
        """A redirect's ``Location`` has the client's scheme, host and port."""
        response = self.request("GET", self.at("/redirect"))
        self.assertEqual(response.status, 302)
        location = self.stack.url(self.at("/redirect/done"))
        self.assertEqual(response.header("Location"), location)
        followed = self.echo(urlsplit(location).path)
        self.assertEqual(followed["prepath"], [*self.mountSegments, "redirect", "done"])

    def test_locationWithoutRedirectStatus(self) -> None:
        """A ``200`` with a ``Location`` header is passed on as it is.

        Applications should send an explicit ``3xx`` with ``Location`` (twisted.web's
        ``redirect()`` does); this pins what happens when one does not.
        """
        target = self.at("/echo/x")
        response = self.request("GET", self.at(f"/location?to={target}"))
        self.assertEqual(response.status, 200)
        self.assertEqual(response.header("Location"), target)
        self.assertEqual(response.body, b"the backend's own body\n")

    def test_tls(self) -> None:
        """Through the TLS listener ``isSecure()`` is true and URLs are https."""
        echo = self.echo(self.at("/echo"), tls=True)
        self.assertTrue(echo["isSecure"])
        self.assertEqual(echo["prePathURL"], self.stack.url(self.at("/echo"), tls=True))
        self.assertEqual(echo["host"]["port"], self.stack.tlsPort)
        self.assertIn(("HTTPS", "on"), variables(echo))

    def test_redirectOverTLS(self) -> None:
        """A redirect through the TLS listener is to https, at the TLS port."""
        response = self.request("GET", self.at("/redirect"), tls=True)
        self.assertEqual(response.status, 302)
        location = self.stack.url(self.at("/redirect/done"), tls=True)
        self.assertEqual(response.header("Location"), location)
        followed = self.echo(urlsplit(location).path, tls=True)
        self.assertTrue(followed["isSecure"])

    def test_tlsHostWithoutPort(self) -> None:
        """Over TLS, a ``Host`` without a port gets the frontend's listening port."""
        response = self.request(
            "GET", self.at("/redirect"), headers=[("Host", "localhost")], tls=True
        )
        self.assertEqual(response.status, 302)
        self.assertEqual(
            response.header("Location"),
            f"https://localhost:{self.stack.tlsPort}{self.at('/redirect/done')}",
        )

    def test_bigFile(self) -> None:
        """A 1 MiB ``static.File`` arrives intact."""
        response = self.request("GET", self.at("/big"))
        self.assertEqual(response.status, 200)
        self.assertEqual(len(response.body), BIG_SIZE)
        self.assertEqual(
            hashlib.sha256(response.body).hexdigest(),
            hashlib.sha256(bigFileContent()).hexdigest(),
        )

    def test_stream(self) -> None:
        """The first line reaches the client before the last one is written.

        The lines carry ``time.monotonic()`` of the backend, comparable with the
        test's (one system-wide clock).
        """
        count, delay = 3, 0.3
        target = self.at(f"/stream?n={count}&delay={delay}")
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

    def test_clientAbort(self) -> None:
        """A client that goes away mid-response makes ``notifyFinish()`` errback.

        The frontend closes the backend connection when its client is gone; the
        backend notices although it only writes, within a few seconds.
        """
        key = uuid.uuid4().hex
        target = self.at(f"/abort?id={key}&delay=0.05")
        with socket.create_connection(("127.0.0.1", self.stack.port), 10) as client:
            client.sendall(
                f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode("ascii")
            )
            received = b""
            while b"tick 2\n" not in received:
                data = client.recv(4096)
                self.assertTrue(data, f"EOF before two ticks: {received!r}")
                received += data
        closed = time.monotonic()
        while True:
            status = self.request("GET", self.at(f"/abort-status?id={key}"))
            self.assertEqual(status.status, 200)
            record = status.json()
            if record["outcome"] is not None or time.monotonic() > closed + 5:
                break
            time.sleep(0.05)
        self.assertEqual(record["outcome"], "errback", record)
        self.assertLess(record["writes"], 100)

    def test_wsgi(self) -> None:
        """A ``WSGIResource`` sees ``SCRIPT_NAME`` and ``PATH_INFO`` of its mount."""
        response = self.request("GET", self.at("/wsgi/x/y%20z?q=1"))
        self.assertEqual(response.status, 200)
        self.assertEqual(
            response.json(),
            {
                "SCRIPT_NAME": self.at("/wsgi"),
                "PATH_INFO": "/x/y z",
                "QUERY_STRING": "q=1",
                "wsgi.url_scheme": "http",
                "REMOTE_ADDR": "127.0.0.1",
                "REQUEST_METHOD": "GET",
            },
        )

    def test_wsgiOverTLS(self) -> None:
        """Through the TLS listener, WSGI's ``wsgi.url_scheme`` is ``https``."""
        response = self.request("GET", self.at("/wsgi"), tls=True)
        self.assertEqual(response.status, 200)
        environ = response.json()
        self.assertEqual(environ["wsgi.url_scheme"], "https")
        self.assertEqual(environ["SCRIPT_NAME"], self.at("/wsgi"))
        self.assertEqual(environ["PATH_INFO"], "")

    # File offload.

    def offloaded(self, name: str, frontend: str | None = None) -> HTTPResult:
        """GET the offload directory's file ``name`` through ``/offload``."""
        return self.request(
            "GET",
            self.at(f"/offload/{frontend or self.offloadFrontend}/{quote(name)}"),
        )

    def assertServedByFrontend(self, response: HTTPResult, name: str) -> None:
        """Assert the frontend sent the file ``name``, not the backend's empty body."""
        content = offloadFiles()[name]
        self.assertEqual(response.status, 200, response)
        self.assertEqual(len(response.body), len(content))
        self.assertEqual(response.body, content)
        self.assertIsNone(response.header("X-Sendfile"))
        self.assertIsNone(response.header("X-Accel-Redirect"))

    def test_offload(self) -> None:
        """An offloaded file is sent by the frontend, its header hidden.

        The backend's response has an empty body, so the file's bytes at the client
        came from the frontend.
        """
        response = self.offloaded("report.bin")
        self.assertServedByFrontend(response, "report.bin")
        self.assertEqual(response.header("Content-Type"), "application/octet-stream")

    def test_offloadKeepsResourceHeaders(self) -> None:
        """Headers the resource sets beside the offload reach the client."""
        response = self.request(
            "GET", self.at(f"/offload/{self.offloadFrontend}/report.bin?download=1")
        )
        self.assertServedByFrontend(response, "report.bin")
        self.assertEqual(response.header("Content-Disposition"), "attachment")
        self.assertEqual(response.header("Cache-Control"), "private, max-age=60")

    def test_offloadEncodedName(self) -> None:
        """A file name with a space, ``&`` and UTF-8 is offloaded correctly."""
        name = "caf\u00e9 & more.txt"
        response = self.offloaded(name)
        self.assertServedByFrontend(response, name)
        self.assertEqual(response.header("Content-Type"), "text/plain")

    def test_offloadPercentName(self) -> None:
        """A file name with a ``%`` that is no escape is offloaded correctly."""
        self.assertServedByFrontend(self.offloaded("100%.txt"), "100%.txt")

    def test_offloadEscapeLikeName(self) -> None:
        """A file name holding ``%41`` is offloaded as itself, not as ``A``."""
        self.assertServedByFrontend(self.offloaded("a%41.txt"), "a%41.txt")

    def test_offloadMissingFile(self) -> None:
        """An offloaded file that does not exist is the frontend's 404."""
        response = self.offloaded("missing.txt")
        self.assertEqual(response.status, 404)
        self.assertNotFromBackend(response)

    def test_offloadForeignHeaderPassedOn(self) -> None:
        """Another frontend's offload header is not acted on: it reaches the client.

        The client then gets the backend's empty body, and the header itself, which
        may name a path: choose the frontend in ``FileOffload`` with care.
        """
        response = self.offloaded("report.bin", self.foreignOffload)
        self.assertEqual(response.status, 200)
        self.assertEqual(response.body, b"")
        header = "X-Accel-Redirect" if self.foreignOffload == "nginx" else "X-Sendfile"
        self.assertIsNotNone(response.header(header))

    def test_offloadDirectoryNotPublic(self) -> None:
        """A client asking for the offload URI directly does not get the file."""
        response = self.request("GET", OFFLOAD_URI + "report.bin")
        self.assertEqual(response.status, 404)
        self.assertNotEqual(response.body, offloadFiles()["report.bin"])


# The deployment guides.

DOCS = REPOSITORY / "docs"
_SHOWN = re.compile(
    r"^<!-- file: (?P<path>\S+) -->\n```\w*\n(?P<text>.*?)^```$",
    re.DOTALL | re.MULTILINE,
)
"""A file shown in a guide: its path in ``docs/``, then a code block with its text."""


def shownFiles(guide: str) -> list[tuple[Path, str]]:
    """Return ``(path, text shown)`` for every file the guide shows as a code block.

    Every configuration is shown as plain Markdown (readable on a code host), each
    block marked with the file it copies; :meth:`GuideCases.test_includedFilesExist`
    checks that the copy equals the file, which is what the tests run.
    """
    text = (DOCS / guide).read_text(encoding="utf-8")
    return [(DOCS / match["path"], match["text"]) for match in _SHOWN.finditer(text)]


_CHECK_EXEC_START = """
import os, shlex, sys
os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS="1", LISTEN_FDNAMES="scgi")
from twisted.scripts._twistd_unix import ServerOptions
config = ServerOptions()
config.parseOptions(shlex.split(sys.argv[1]))
print(config.subCommand, config.subOptions["listen"])
"""


class TwinCases(FrontendTestMixin):
    """The twin test end to end: the frontend answers as twisted.web's server does.

    The backend serves the twin tree (:mod:`tests.twin_app`) at ``/twin`` over SCGI,
    behind the frontend, and at the same path with twisted.web's own HTTP server
    (``--twin-http``).  Every request of :data:`tests._twin.CORPUS` goes to both,
    with the same ``Host``; the answers must agree but for the differences
    :data:`tests._twin.TOLERATED` lists for :attr:`frontend`.

    :cvar frontend: the frontend's name in :data:`tests._twin.TOLERATED`.
    """

    frontend: ClassVar[str]

    def twin(self, request: TwinRequest) -> tuple[Answer, Answer]:
        """Send ``request`` to twisted.web and through the frontend; return both."""
        backend = self.stack.backend
        assert backend is not None
        request = resolve(request)
        headers = [("Host", hostFor(backend.httpPort)), *request.headers]
        answers = []
        for port in (backend.httpPort, self.stack.port):
            response = httpRequest(
                port,
                request.method,
                "/twin" + request.target,
                headers=headers,
                body=request.body,
                chunked=request.chunked,
            )
            answers.append(answer(response.status, response.headers, response.body))
        return answers[0], answers[1]

    def test_twin(self) -> None:
        """Every request of the corpus gets twisted.web's answer through the frontend.

        Status, the compared response headers, the body, and everything the
        resource saw agree, but for the tolerated differences of this frontend.
        """
        problems = []
        for request in CORPUS:
            reference, candidate = self.twin(request)
            for problem in compare(
                ["scgi", self.frontend], request, reference, candidate
            ):
                problems.append(f"{request.label}: {problem}")
        self.assertEqual(problems, [], "\n".join(problems))

    def test_twinRoutesOnForm(self) -> None:
        """Through the frontend, ``getChild`` routes on the form field, as stock."""
        routed = next(r for r in CORPUS if r.label.startswith("getChild routes"))
        _, candidate = self.twin(routed)
        assert candidate.seen is not None
        self.assertEqual(candidate.seen["name"], "route:beta")


class GuideCases(_GuideBase):
    """A deployment guide shows exactly the configuration its suite runs.

    :cvar guide: the guide's file name in ``docs/``.
    :cvar specs: the stacks the frontend's suite runs.
    """

    guide: ClassVar[str]
    specs: ClassVar[Sequence[StackSpec]]

    def included(self) -> list[Path]:
        """Return the files the guide shows (as code blocks marked with the file)."""
        return [path for path, _ in shownFiles(self.guide)]

    def test_guideIncludesTemplates(self) -> None:
        """The guide includes every template the suite renders, main files too."""
        included = {path.resolve() for path in self.included()}
        templates = {spec.site for spec in self.specs}
        templates |= {spec.frontend.mainTemplate for spec in self.specs}
        self.assertTrue(templates)
        for template in sorted(templates):
            path = (DOCS / "deploy" / template).resolve()
            self.assertIn(path, included, f"{self.guide} does not include {template}")

    def test_includedFilesExist(self) -> None:
        """Every file the guide shows exists and is shown exactly, systemd's too.

        The guide's code block is a copy of the file the end-to-end tests run: any
        difference fails here, so the two cannot drift apart.
        """
        shown = shownFiles(self.guide) + shownFiles("systemd.md")
        self.assertTrue(shown)
        for path, text in shown:
            self.assertTrue(path.is_file(), f"{self.guide} shows missing {path}")
            self.assertEqual(
                text, path.read_text(encoding="utf-8"), f"{path.name} differs"
            )
        self.assertIn("systemd.md", (DOCS / self.guide).read_text(encoding="utf-8"))
        units = {path.name for path, _ in shownFiles("systemd.md")}
        self.assertLessEqual({"scgi-app.service", "scgi-app.socket"}, units)

    def test_systemdExecStartAccepted(self) -> None:
        """``twistd`` accepts the ``ExecStart`` line of the service unit as it is.

        It runs with a socket passed as systemd would (``LISTEN_FDS``) and a module
        ``myapp`` whose ``root`` is a resource.
        """
        unit = (DOCS / "deploy" / "scgi-app.service").read_text(encoding="utf-8")
        lines = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
        self.assertEqual(len(lines), 1, lines)
        argv = shlex.split(lines[0].split("=", 1)[1])
        self.assertEqual(Path(argv[0]).name, "twistd")
        self.assertIn("systemd:domain=UNIX:index=0", argv)
        with tempfile.TemporaryDirectory() as directory:
            Path(directory, "myapp.py").write_text(
                "from twisted.web.resource import Resource\nroot = Resource()\n"
            )
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join([directory, str(REPOSITORY)])
            result = subprocess.run(
                [sys.executable, "-c", _CHECK_EXEC_START, shlex.join(argv[1:])],
                capture_output=True,
                text=True,
                env=env,
                cwd=directory,
                timeout=60,
                check=False,
            )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(
            result.stdout.split(None, 1), ["scgi", "['systemd:domain=UNIX:index=0']\n"]
        )
