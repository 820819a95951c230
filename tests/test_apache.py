"""End-to-end tests through a real Apache httpd (mod_proxy_scgi), from ``docs/deploy/``.

Every test sends a real HTTP request to a real ``apache2`` (mpm_event, run in the
foreground by :mod:`tests.support.frontends` with ``apache-test.conf.in`` around
``apache-scgi.conf.in``) that passes it over SCGI to ``python -m tests.e2e_app``.
The shared cases are :class:`FrontendCases`; this module pins what Apache does
differently, and runs them mounted at the root and at ``/app``, over a TCP and over a
unix-socket backend.  Started as root, Apache's workers run as ``www-data``.

Apache is required: without it every test fails, saying what to install.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import ClassVar, Literal
from urllib.parse import quote

from twisted.trial.unittest import SynchronousTestCase

from .support.frontend_cases import (
    MAX_BODY_SIZE,
    PREFIX,
    FrontendCases,
    GuideCases,
    KiB,
    MiB,
    TwinCases,
    payload,
    variables,
)
from .support.frontends import (
    Apache,
    BackendSpec,
    FrontendTestMixin,
    StackSpec,
    httpResponse,
)


class _ApacheCases(FrontendCases):
    """What Apache 2.4 (Debian, mod_proxy_scgi) does differently."""

    offloadFrontend = "apache"
    foreignOffload = "nginx"

    def test_encodedSlash(self) -> None:
        """Apache answers 404 itself to a ``%2F`` in the path (AllowEncodedSlashes).

        The backend never sees the request.
        """
        response = self.request("GET", self.at("/echo/x/y%2Fz"))
        self.assertEqual(response.status, 404)
        self.assertNotFromBackend(response)
        self.assertIn(b"Not Found", response.body)

    def test_chunkedUpload(self) -> None:
        """Apache answers 411 Length Required to a chunked upload (mod_proxy_scgi).

        The backend sees at most an empty connection, which it closes quietly: no
        error is logged.
        """
        backend = self.stack.backend
        assert backend is not None
        logged = backend.log.stat().st_size
        response = self.upload(payload(200 * KiB, 200), chunked=True)
        self.assertEqual(response.status, 411)
        self.assertNotFromBackend(response)
        self.assertEqual(self.echo(self.at("/echo"))["method"], "GET")
        with backend.log.open("rb") as log:
            log.seek(logged)
            added = log.read()
        self.assertNotIn(b"Traceback", added)
        self.assertNotIn(b"rror", added)

    def test_twoCookieHeaders(self) -> None:
        """Apache merges two ``Cookie`` lines with a comma: one cookie arrives.

        ``a=1, b=2`` cannot be split reliably, so twisted.web sees the cookie ``a``
        with the value ``1, b=2``.  Browsers send one ``Cookie`` line (and
        ``test_oneCookieHeaderTwoCookies`` shows that works).
        """
        echo = self.echo(
            self.at("/echo"), headers=[("Cookie", "a=1"), ("Cookie", "b=2")]
        )
        self.assertEqual(echo["received_cookies"], {"a": "1, b=2"})
        self.assertIn(("HTTP_COOKIE", "a=1, b=2"), variables(echo))

    def test_locationWithoutRedirectStatus(self) -> None:
        """A ``200`` with ``Location: /path`` reaches the client as a ``200``.

        Apache would take a local ``Location`` with a ``200`` for a CGI internal
        redirect (``ProxySCGIInternalRedirect On``) and loop; the backend sends it
        as an absolute URL, which Apache passes through, with the body.
        """
        target = self.at("/echo/x")
        response = self.request("GET", self.at(f"/location?to={target}"))
        self.assertEqual(response.status, 200)
        self.assertEqual(
            response.header("Location"), f"http://127.0.0.1:{self.stack.port}{target}"
        )
        self.assertEqual(response.body, b"the backend's own body\n")

    def test_tlsHostWithoutPort(self) -> None:
        """Over TLS, a ``Host`` without a port makes Apache send SERVER_PORT=443.

        URLs then have no port (the https default), whatever port the TLS listener
        has.  HTTP/1.1 clients send the port whenever it is not the default.
        """
        response = self.request(
            "GET", self.at("/redirect"), headers=[("Host", "localhost")], tls=True
        )
        self.assertEqual(response.status, 302)
        self.assertEqual(
            response.header("Location"),
            f"https://localhost{self.at('/redirect/done')}",
        )

    def test_offloadPercentName(self) -> None:
        """Apache refuses X-Sendfile paths with a bare ``%``; so does the helper.

        Sent anyway (``/offload/raw``), Apache logs ``AH10244: invalid URI path`` and
        answers 500; ``FileOffload("apache", ...)`` raises ``OffloadError`` instead,
        which the test application turns into a 404.
        """
        raw = self.request("GET", self.at("/offload/raw/100%25.txt"))
        self.assertEqual(raw.status, 500)
        self.assertNotFromBackend(raw)
        refused = self.offloaded("100%.txt")
        self.assertEqual(refused.status, 404)
        self.assertIn("AH10244", refused.json()["error"])

    def test_offloadAnyPath(self) -> None:
        """Apache sends any file an X-Sendfile path names, outside the directory too.

        ``/offload/raw`` sends the path unchecked; ``FileOffload`` only sends paths
        below its root, the one limit there is with Apache.
        """
        outside = self.stack.directory / "outside.txt"
        outside.write_bytes(b"not for clients\n")
        outside.chmod(0o644)
        response = self.request(
            "GET", self.at(f"/offload/raw/x?path={quote(str(outside))}")
        )
        self.assertEqual(response.status, 200)
        self.assertEqual(response.body, b"not for clients\n")

    def test_offloadMissingFile(self) -> None:
        """Apache answers 500, not 404, when an X-Sendfile file does not exist.

        Its error log says ``AH00864: Subrequest to file ... not possible``.
        """
        response = self.offloaded("missing.txt")
        self.assertEqual(response.status, 500)
        self.assertNotFromBackend(response)

    def test_head(self) -> None:
        """HEAD gets the GET's status and no body, and from Apache no length.

        Apache drops the backend's ``Content-Length`` (it re-frames every SCGI
        response), so a HEAD response has none.
        """
        response = self.request("HEAD", self.at("/big"))
        self.assertEqual(response.status, 200)
        self.assertIsNone(response.header("Content-Length"))
        self.assertEqual(response.body, b"")
        get = self.request("GET", self.at("/big"))
        self.assertIsNone(get.header("Content-Length"))
        self.assertEqual(get.header("Transfer-Encoding"), "chunked")
        echo = self.request("HEAD", self.at("/echo"))
        self.assertEqual(echo.status, 200)
        self.assertEqual(echo.body, b"")

    def test_offloadIgnoresRange(self) -> None:
        """Apache sends an X-Sendfile file whole (200), ignoring ``Range``."""
        response = self.request(
            "GET",
            self.at("/offload/apache/report.bin"),
            headers=[("Range", "bytes=0-9")],
        )
        self.assertServedByFrontend(response, "report.bin")

    def test_accelBufferingPassedOn(self) -> None:
        """Apache streams without being asked, and passes ``X-Accel-Buffering`` on."""
        with httpResponse(self.stack.port, "GET", self.at("/stream?n=1")) as response:
            self.assertEqual(response.status, 200)
            self.assertEqual(response.getheader("X-Accel-Buffering"), "no")
            response.read()

    def test_mountVariables(self) -> None:
        """With ``proxy-scgi-pathinfo`` Apache splits a plain path right.

        ``SCRIPT_NAME`` is the mount point and ``PATH_INFO`` the rest.
        """
        echo = self.echo(self.at("/echo/a/b"))
        pairs = variables(echo)
        self.assertIn(("SCRIPT_NAME", self.mount), pairs)
        self.assertIn(("PATH_INFO", "/echo/a/b"), pairs)

    def test_mountVariablesEncoded(self) -> None:
        """With an escape in the path, Apache's split is wrong; the mount is right.

        ``PATH_INFO`` is re-encoded (``/echo/a%20b``) while ``SCRIPT_NAME`` is
        cut from the decoded path, so it is not the mount point; scgi_twisted finds
        the mount from the decoded ``PATH_INFO`` instead.
        """
        echo = self.echo(self.at("/echo/a%20b"))
        pairs = variables(echo)
        self.assertIn(("PATH_INFO", "/echo/a%20b"), pairs)
        self.assertNotIn(("SCRIPT_NAME", self.mount), pairs)
        self.assertEqual(echo["prepath"], [*self.mountSegments, "echo"])
        self.assertEqual(echo["postpath"], ["a b"])

    def test_mountPointPathInfo(self) -> None:
        """For the bare mount point Apache sends ``PATH_INFO=/``."""
        echo = self.echo(self.mount or "/")
        pairs = variables(echo)
        self.assertIn(("PATH_INFO", "/"), pairs)


def apacheSpec(transport: Literal["tcp", "unix"]) -> StackSpec:
    """Describe an Apache stack with ``apache-scgi.conf.in`` and the backend."""
    return StackSpec(
        Apache,
        "apache-scgi.conf.in",
        BackendSpec(transport, maxBodySize=MAX_BODY_SIZE),
        PREFIX,
    )


class ApacheTCPRootTests(_ApacheCases, SynchronousTestCase):
    """``apache-scgi.conf.in``, TCP backend, the application at the root."""

    stackSpec: ClassVar[StackSpec] = apacheSpec("tcp")
    mount = ""


class ApacheTCPPrefixTests(_ApacheCases, SynchronousTestCase):
    """``apache-scgi.conf.in``, TCP backend, the application at ``/app``."""

    stackSpec: ClassVar[StackSpec] = apacheSpec("tcp")
    mount = PREFIX


class ApacheUnixRootTests(_ApacheCases, SynchronousTestCase):
    """``apache-scgi.conf.in``, unix-socket backend, the application at the root."""

    stackSpec: ClassVar[StackSpec] = apacheSpec("unix")
    mount = ""


class ApacheUnixPrefixTests(_ApacheCases, SynchronousTestCase):
    """``apache-scgi.conf.in``, unix-socket backend, the application at ``/app``."""

    stackSpec: ClassVar[StackSpec] = apacheSpec("unix")
    mount = PREFIX


class _ApacheStreamingCases(FrontendTestMixin):
    """Streamed uploads through Apache, which sends the body as it arrives.

    The backend runs without ``--max-body-size`` here, so a 64 MiB body is served.
    """

    mount = ""

    def test_streamedUpload64MiB(self) -> None:
        """A 64 MiB upload streams through Apache to a streaming resource.

        Apache sends the body as it arrives; the ``IStreamingUploadResource`` hashes
        it piece by piece, so the hash is right and the backend's resident memory
        grows by less than 8 MiB while it arrives.
        """
        body = payload(64 * MiB, 64)
        response = self.request(
            "POST",
            "/stream-upload?rss=1",
            headers=[("Content-Type", "application/octet-stream")],
            body=body,
        )
        self.assertEqual(response.status, 200, response)
        result = response.json()
        self.assertEqual(result["length"], len(body))
        self.assertEqual(result["sha256"], hashlib.sha256(body).hexdigest())
        self.assertGreater(result["chunks"], 1)
        self.assertLess(result["rss"]["growth"], 8 * MiB, result["rss"])


def apacheStreamingSpec(transport: Literal["tcp", "unix"]) -> StackSpec:
    """Describe an Apache stack whose backend has no body limit."""
    return StackSpec(Apache, "apache-scgi.conf.in", BackendSpec(transport), PREFIX)


class ApacheTCPStreamingTests(_ApacheStreamingCases, SynchronousTestCase):
    """Streamed uploads through Apache to a TCP backend."""

    stackSpec: ClassVar[StackSpec] = apacheStreamingSpec("tcp")


class ApacheUnixStreamingTests(_ApacheStreamingCases, SynchronousTestCase):
    """Streamed uploads through Apache to a unix-socket backend."""

    stackSpec: ClassVar[StackSpec] = apacheStreamingSpec("unix")


class ApacheGuideTests(GuideCases, SynchronousTestCase):
    """``docs/deploy-apache.md`` shows the files the Apache suite runs."""

    guide = "deploy-apache.md"
    specs: ClassVar[Sequence[StackSpec]] = [ApacheTCPRootTests.stackSpec]


class ApacheTwinTests(TwinCases, SynchronousTestCase):
    """The twin test through ``apache-scgi.conf.in`` (TCP backend, at the root)."""

    stackSpec: ClassVar[StackSpec] = ApacheTCPRootTests.stackSpec
    frontend = "apache"
