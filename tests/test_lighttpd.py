"""End-to-end tests through a real lighttpd (mod_scgi), from ``docs/deploy/``.

Every test sends a real HTTP request to a real ``lighttpd`` (run in the foreground by
:mod:`tests.support.frontends` with ``lighttpd-test.conf.in`` around
``lighttpd-scgi.conf.in``)
that passes it over SCGI to ``python -m tests.e2e_app``.  The shared cases are
:class:`FrontendCases`; this module pins what lighttpd does differently, and runs them
mounted at the root and at ``/app``, over a TCP and over a unix-socket backend.  The
``/app`` classes run the backend with ``--mount /app``, as the lighttpd guide says;
the root classes run it without, which shows what ``--mount`` is for.  Started as
root, lighttpd runs as ``www-data``.

lighttpd (with lighttpd-mod-openssl) is required: without it every test fails, saying
what to install.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal
from urllib.parse import quote

from twisted.trial.unittest import SynchronousTestCase

from .support.frontend_cases import (
    MAX_BODY_SIZE,
    PREFIX,
    FrontendCases,
    GuideCases,
    TwinCases,
    headerValues,
    variables,
)
from .support.frontends import BackendSpec, Lighttpd, StackSpec, httpResponse


class _LighttpdCases(FrontendCases):
    """What lighttpd 1.4.69 (Debian) does differently."""

    offloadFrontend = "lighttpd"
    foreignOffload = "nginx"

    def test_underscoreHeader(self) -> None:
        """A header name with an underscore is passed on by lighttpd (``HTTP_X_UNDER``).

        scgi_twisted cannot tell ``X_Under`` from ``X-Under``: both arrive as the
        header ``x-under``.
        """
        echo = self.echo(self.at("/echo"), headers=[("X_Under", "u")])
        self.assertEqual(headerValues(echo, "x-under"), ["u"])
        self.assertIn(("HTTP_X_UNDER", "u"), variables(echo))

    def test_repeatedHeadersMergedByLighttpd(self) -> None:
        """A repeated header is merged by lighttpd: one ``HTTP_*`` pair arrives."""
        echo = self.echo(
            self.at("/echo"),
            headers=[("X-Foo", "one"), ("Cookie", "a=1"), ("X-Foo", "two")],
        )
        pairs = variables(echo)
        self.assertEqual(
            [value for name, value in pairs if name == "HTTP_X_FOO"], ["one, two"]
        )

    def test_offloadUsesLighttpdHeaders(self) -> None:
        """An X-Sendfile file gets lighttpd's length, ``ETag`` and range support."""
        response = self.request(
            "GET",
            self.at("/offload/lighttpd/report.bin"),
            headers=[("Range", "bytes=0-9")],
        )
        self.assertEqual(response.status, 206)
        self.assertEqual(response.header("Content-Range"), "bytes 0-9/300000")
        self.assertEqual(len(response.body), 10)
        self.assertIsNotNone(response.header("ETag"))

    def test_offloadOutsideDocroot(self) -> None:
        """An X-Sendfile path outside ``x-sendfile-docroot`` gets 403 from lighttpd.

        ``/offload/raw`` sends the path unchecked; the file is readable by lighttpd
        but not below the offload directory.
        """
        outside = self.stack.directory / "outside.txt"
        outside.write_bytes(b"not for clients\n")
        outside.chmod(0o644)
        response = self.request(
            "GET", self.at(f"/offload/raw/x?path={quote(str(outside))}")
        )
        self.assertEqual(response.status, 403)
        self.assertNotFromBackend(response)

    def test_accelBufferingIgnored(self) -> None:
        """The ``X-Accel-Buffering`` header is ignored by lighttpd and passed on.

        It streams because the site template sets ``server.stream-response-body``.
        """
        with httpResponse(self.stack.port, "GET", self.at("/stream?n=1")) as response:
            self.assertEqual(response.status, 200)
            self.assertEqual(response.getheader("X-Accel-Buffering"), "no")
            response.read()

    def test_mountVariables(self) -> None:
        """The mount point arrives as ``SCRIPT_NAME``, the decoded rest as PATH_INFO."""
        echo = self.echo(self.at("/echo/a%20b"))
        pairs = variables(echo)
        self.assertIn(("SCRIPT_NAME", self.mount), pairs)
        self.assertIn(("PATH_INFO", "/echo/a b"), pairs)


class _LighttpdPrefixCases(_LighttpdCases):
    """lighttpd at ``/app``, the backend run with ``--mount /app``."""

    def test_mountPointPathInfo(self) -> None:
        """For ``/app`` itself lighttpd sends no ``PATH_INFO``; ``--mount`` copes.

        Without ``PATH_INFO`` the frontend's split is not used, and the backend's
        ``--mount /app`` puts ``app`` into ``prepath``.
        """
        echo = self.echo(PREFIX)
        names = [name for name, _ in variables(echo)]
        self.assertIn(("SCRIPT_NAME", PREFIX), variables(echo))
        self.assertNotIn("PATH_INFO", names)
        self.assertEqual(echo["prepath"], ["app"])
        self.assertEqual(echo["postpath"], [])


class _LighttpdRootCases(_LighttpdCases):
    """lighttpd at the root, the backend run without ``--mount``."""

    def test_bareMountWithoutMountOption(self) -> None:
        """Without ``--mount``, ``/app`` (no slash) misses the mount: twisted.web 404.

        lighttpd sends ``SCRIPT_NAME=/app`` but no ``PATH_INFO``, so scgi_twisted
        does not trust the split and routes ``/app`` from the root, where there is
        no child ``app``.  ``/app/`` and below are split correctly.
        """
        response = self.request("GET", PREFIX)
        self.assertEqual(response.status, 404)
        self.assertIn(b"No Such Resource", response.body)
        echo = self.echo(PREFIX + "/echo")
        self.assertEqual(echo["prepath"], ["app", "echo"])


def lighttpdSpec(
    transport: Literal["tcp", "unix"], mount: str | None = None
) -> StackSpec:
    """Describe a lighttpd stack with ``lighttpd-scgi.conf.in`` and the backend."""
    return StackSpec(
        Lighttpd,
        "lighttpd-scgi.conf.in",
        BackendSpec(transport, mount=mount, maxBodySize=MAX_BODY_SIZE),
        PREFIX,
    )


class LighttpdTCPRootTests(_LighttpdRootCases, SynchronousTestCase):
    """``lighttpd-scgi.conf.in``, TCP backend, the application at the root."""

    stackSpec: ClassVar[StackSpec] = lighttpdSpec("tcp")
    mount = ""


class LighttpdTCPPrefixTests(_LighttpdPrefixCases, SynchronousTestCase):
    """``lighttpd-scgi.conf.in``, TCP backend with ``--mount /app``, at ``/app``."""

    stackSpec: ClassVar[StackSpec] = lighttpdSpec("tcp", PREFIX)
    mount = PREFIX


class LighttpdUnixRootTests(_LighttpdRootCases, SynchronousTestCase):
    """``lighttpd-scgi.conf.in``, unix-socket backend, the application at the root."""

    stackSpec: ClassVar[StackSpec] = lighttpdSpec("unix")
    mount = ""


class LighttpdUnixPrefixTests(_LighttpdPrefixCases, SynchronousTestCase):
    """``lighttpd-scgi.conf.in``, unix backend with ``--mount /app``, at ``/app``."""

    stackSpec: ClassVar[StackSpec] = lighttpdSpec("unix", PREFIX)
    mount = PREFIX


class LighttpdGuideTests(GuideCases, SynchronousTestCase):
    """``docs/deploy-lighttpd.md`` shows the files the lighttpd suite runs."""

    guide = "deploy-lighttpd.md"
    specs: ClassVar[Sequence[StackSpec]] = [LighttpdTCPRootTests.stackSpec]


class LighttpdTwinTests(TwinCases, SynchronousTestCase):
    """The twin test through ``lighttpd-scgi.conf.in`` (TCP backend, at the root)."""

    stackSpec: ClassVar[StackSpec] = LighttpdTCPRootTests.stackSpec
    frontend = "lighttpd"
