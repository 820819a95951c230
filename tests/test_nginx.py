"""End-to-end tests through a real nginx, configured from ``docs/deploy/``.

Every test sends a real HTTP request with :mod:`http.client` (or a raw socket) to a
real nginx that passes it over SCGI to ``python -m tests.e2e_app`` (both processes are
run by :mod:`tests.support.frontends`), and checks what the client got and what the
application reports it saw.  The shared cases are :class:`FrontendCases`; this module
pins what nginx does differently, and runs them:

* with the recommended site template (``nginx-scgi.conf.in``: nginx sends
  ``SCRIPT_NAME`` and ``PATH_INFO``), mounted at the root and at ``/app``, over a TCP
  and over a unix-socket backend;
* with the stock one (``nginx-scgi-stock.conf.in``: the backend runs with
  ``--mount /app``), at ``/app``, over both transports.

nginx is required: without it every test fails, saying what to install.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

from twisted.trial.unittest import SynchronousTestCase

from .support.frontend_cases import (
    MAX_BODY_SIZE,
    PREFIX,
    FrontendCases,
    GuideCases,
    TwinCases,
    variables,
)
from .support.frontends import BackendSpec, Nginx, StackSpec, httpResponse


class _NginxCases(FrontendCases):
    """What nginx 1.22 (Debian) does differently from the shared cases."""

    offloadFrontend = "nginx"
    foreignOffload = "apache"

    def test_repeatedHeadersSentTwice(self) -> None:
        """A repeated header arrives from nginx 1.22 as two ``HTTP_*`` pairs."""
        echo = self.echo(
            self.at("/echo"),
            headers=[("X-Foo", "one"), ("Cookie", "a=1"), ("X-Foo", "two")],
        )
        pairs = variables(echo)
        self.assertEqual(
            [value for name, value in pairs if name == "HTTP_X_FOO"], ["one", "two"]
        )

    def test_accelBufferingHidden(self) -> None:
        """The ``X-Accel-Buffering: no`` header is acted on by nginx, and hidden."""
        with httpResponse(self.stack.port, "GET", self.at("/stream?n=1")) as response:
            self.assertEqual(response.status, 200)
            self.assertIsNone(response.getheader("X-Accel-Buffering"))
            response.read()

    def test_offloadUsesNginxHeaders(self) -> None:
        """An X-Accel-Redirect file gets nginx's length, ``ETag`` and range support."""
        response = self.request(
            "GET",
            self.at("/offload/nginx/report.bin"),
            headers=[("Range", "bytes=0-9")],
        )
        self.assertEqual(response.status, 206)
        self.assertEqual(response.header("Content-Range"), "bytes 0-9/300000")
        self.assertEqual(len(response.body), 10)
        self.assertIsNotNone(response.header("ETag"))


class _ScriptNameCases(_NginxCases):
    """nginx with ``nginx-scgi.conf.in``: it sends ``SCRIPT_NAME`` and ``PATH_INFO``."""

    def test_hostHeaderWithOtherPort(self) -> None:
        """With ``scgi_param HTTP_HOST $http_host`` URLs keep the ``Host`` port.

        The site file sends the ``Host`` header as the client gave it, after the
        stock ``$host``; the backend takes the last ``HTTP_HOST``.
        """
        response = self.request(
            "GET", self.at("/redirect"), headers=[("Host", "example.test:8443")]
        )
        self.assertEqual(response.status, 302)
        self.assertEqual(
            response.header("Location"),
            f"http://example.test:8443{self.at('/redirect/done')}",
        )
        echo = self.echo(self.at("/echo"), headers=[("Host", "example.test:8443")])
        self.assertEqual(
            [value for name, value in variables(echo) if name == "HTTP_HOST"],
            ["example.test", "example.test:8443"],
        )

    def test_flaskURLs(self) -> None:
        """Flask's external URLs keep the host and port the client used."""
        self.assertEqual(
            flaskURLs(self, self.at("/flask/page"), "example.test:8443"),
            {
                "url": f"http://example.test:8443{self.at('/flask/next')}",
                "host_url": "http://example.test:8443/",
            },
        )

    def test_mountVariables(self) -> None:
        """The mount point arrives as ``SCRIPT_NAME``, the decoded rest as PATH_INFO."""
        echo = self.echo(self.at("/echo/a%20b"))
        pairs = variables(echo)
        self.assertIn(("SCRIPT_NAME", self.mount), pairs)
        self.assertIn(("PATH_INFO", "/echo/a b"), pairs)

    def test_mountPointPathInfo(self) -> None:
        """For the bare mount point nginx sends an empty ``PATH_INFO``."""
        echo = self.echo(self.mount or "/")
        pairs = variables(echo)
        self.assertIn(("SCRIPT_NAME", self.mount), pairs)
        self.assertIn(("PATH_INFO", "" if self.mount else "/"), pairs)


class _StockCases(_NginxCases):
    """nginx with ``nginx-scgi-stock.conf.in`` and a backend run with ``--mount``."""

    def test_hostHeaderWithOtherPort(self) -> None:
        """With stock ``scgi_params`` the ``Host`` port is dropped: nginx's is used.

        Debian's ``scgi_params`` send ``HTTP_HOST $host`` (no port), so the port
        comes from ``SERVER_PORT``, the port nginx listens on.
        """
        response = self.request(
            "GET", self.at("/redirect"), headers=[("Host", "example.test:8443")]
        )
        self.assertEqual(response.status, 302)
        self.assertEqual(
            response.header("Location"),
            f"http://example.test:{self.stack.port}{self.at('/redirect/done')}",
        )

    def test_flaskURLsWithoutPort(self) -> None:
        """With stock ``scgi_params`` Flask's external URLs lose the port.

        ``HTTP_HOST`` is ``$host``, without the port, and Flask builds URLs from it
        alone: they name port 80, the port the client did not use.
        """
        self.assertEqual(
            flaskURLs(self, self.at("/flask/page"), "example.test:8443"),
            {
                "url": f"http://example.test{self.at('/flask/next')}",
                "host_url": "http://example.test/",
            },
        )

    def test_mountVariables(self) -> None:
        """Stock nginx sends no ``SCRIPT_NAME``/``PATH_INFO``; ``--mount`` splits."""
        echo = self.echo(self.at("/echo/a%20b"))
        names = [name for name, _ in variables(echo)]
        self.assertNotIn("SCRIPT_NAME", names)
        self.assertNotIn("PATH_INFO", names)
        self.assertEqual(echo["prepath"], ["app", "echo"])
        self.assertEqual(echo["postpath"], ["a b"])

    def test_outsidePrefix(self) -> None:
        """The stock template passes nothing outside the prefix to the backend."""
        response = self.request("GET", PREFIX + "le/echo")
        self.assertEqual(response.status, 404)
        self.assertNotFromBackend(response)


def flaskURLs(case: FrontendCases, path: str, host: str) -> dict[str, str]:
    """GET the Flask application at ``path`` with ``Host: host``; return its URLs."""
    response = case.request("GET", path, headers=[("Host", host)])
    case.assertNotEqual(
        response.status,
        404,
        "no /flask route: Flask is not installed (pip install flask; it is in the "
        "test extra)",
    )
    case.assertEqual(response.status, 200, response)
    urls: dict[str, str] = response.json()
    return urls


def nginxSpec(
    site: str, transport: Literal["tcp", "unix"], mount: str | None = None
) -> StackSpec:
    """Describe an nginx stack with the given site template and backend."""
    return StackSpec(
        Nginx,
        site,
        BackendSpec(transport, mount=mount, maxBodySize=MAX_BODY_SIZE),
        PREFIX,
    )


class NginxTCPRootTests(_ScriptNameCases, SynchronousTestCase):
    """``nginx-scgi.conf.in``, TCP backend, the application at the root."""

    stackSpec: ClassVar[StackSpec] = nginxSpec("nginx-scgi.conf.in", "tcp")
    mount = ""


class NginxTCPPrefixTests(_ScriptNameCases, SynchronousTestCase):
    """``nginx-scgi.conf.in``, TCP backend, the application at ``/app``."""

    stackSpec: ClassVar[StackSpec] = nginxSpec("nginx-scgi.conf.in", "tcp")
    mount = PREFIX


class NginxUnixRootTests(_ScriptNameCases, SynchronousTestCase):
    """``nginx-scgi.conf.in``, unix-socket backend, the application at the root."""

    stackSpec: ClassVar[StackSpec] = nginxSpec("nginx-scgi.conf.in", "unix")
    mount = ""


class NginxUnixPrefixTests(_ScriptNameCases, SynchronousTestCase):
    """``nginx-scgi.conf.in``, unix-socket backend, the application at ``/app``."""

    stackSpec: ClassVar[StackSpec] = nginxSpec("nginx-scgi.conf.in", "unix")
    mount = PREFIX


class NginxStockTCPTests(_StockCases, SynchronousTestCase):
    """``nginx-scgi-stock.conf.in``, TCP backend run with ``--mount /app``."""

    stackSpec: ClassVar[StackSpec] = nginxSpec(
        "nginx-scgi-stock.conf.in", "tcp", PREFIX
    )
    mount = PREFIX


class NginxStockUnixTests(_StockCases, SynchronousTestCase):
    """``nginx-scgi-stock.conf.in``, unix-socket backend run with ``--mount /app``."""

    stackSpec: ClassVar[StackSpec] = nginxSpec(
        "nginx-scgi-stock.conf.in", "unix", PREFIX
    )
    mount = PREFIX


class NginxGuideTests(GuideCases, SynchronousTestCase):
    """``docs/deploy-nginx.md`` shows the files the nginx suite runs."""

    guide = "deploy-nginx.md"
    specs: ClassVar[Sequence[StackSpec]] = [
        NginxTCPRootTests.stackSpec,
        NginxStockTCPTests.stackSpec,
    ]


class NginxTwinTests(TwinCases, SynchronousTestCase):
    """The twin test through ``nginx-scgi.conf.in`` (TCP backend, at the root)."""

    stackSpec: ClassVar[StackSpec] = NginxTCPRootTests.stackSpec
    frontend = "nginx"
