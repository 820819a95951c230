"""Tests for ``SCGISite``: mounting, URLs, sessions, WSGI, logs, sharing, allow=.

As in ``test_channel``, each request goes through the real channel that
``site.buildProtocol`` makes, on a ``StringTransport``, with a ``Clock`` reactor and a
real resource tree.  The mount vectors are what the frontends were measured to send
(``docs/deployment.md`` and ``docs/mounting.md``: nginx, Apache with
``proxy-scgi-pathinfo``, lighttpd; root and ``/app`` mounts).
``WSGIResource`` runs on synchronous stand-ins for its thread pool and reactor threads,
written here after the pattern of Twisted's own WSGI tests.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterable
from typing import IO, Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import Logger
from twisted.trial.unittest import SynchronousTestCase
from twisted.web import util
from twisted.web.http import HTTPChannel
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request, Site
from twisted.web.wsgi import WSGIResource

from scgi_twisted import SCGIChannel, SCGIConfig, SCGISite
from scgi_twisted._bodies import BodyBuffer, BufferPool, PooledBody
from scgi_twisted._site import peer_allowed

from .support.apps import Recorder, Seen, WebRequest
from .support.memory import collectLogEvents, connect, warningsAndErrors
from .support.scgi import (
    CGIResponse,
    Pairs,
    buildRequest,
    nginxVariables,
    parseResponse,
)

StartResponse = Callable[[str, list[tuple[str, str]]], Callable[[bytes], object]]
Environ = dict[str, Any]


class SynchronousThreadPool:
    """The part of ``ThreadPool`` WSGIResource uses, running calls at once."""

    _log = Logger()

    def callInThread(self, f: Callable[..., object], *a: object, **kw: object) -> None:
        """Call ``f`` now, in this thread; log (never raise) what it raises."""
        try:
            f(*a, **kw)
        except BaseException:
            self._log.failure("Call in the synchronous thread pool failed")


class SynchronousReactorThreads:
    """The part of ``IReactorThreads`` WSGIResource uses, running calls at once."""

    def callFromThread(
        self, f: Callable[..., object], *a: object, **kw: object
    ) -> None:
        """Call ``f`` now: the "thread" is the reactor thread."""
        f(*a, **kw)


class Child(Resource):
    """A non-leaf resource with children, rendering its own name."""

    def __init__(self, name: bytes, children: dict[bytes, IResource] | None = None):
        super().__init__()
        self.name = name
        for path, child in (children or {}).items():
            self.putChild(path, child)

    def render(self, request: WebRequest) -> bytes:
        """Answer with the resource's name."""
        return self.name


class SiteTestCase(SynchronousTestCase):
    """Shared set-up: a clock, a recorder, and a way to send one request."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.recorder = Recorder()
        self.logged = collectLogEvents(self)

    def makeSite(self, root: IResource | None = None, **options: Any) -> SCGISite:
        """Build a site on the test's clock; the root defaults to the recorder."""
        resource = self.recorder if root is None else root
        return SCGISite(resource, reactor=self.clock, **options)

    def respond(
        self, variables: Pairs, site: SCGISite | None = None, body: bytes = b""
    ) -> CGIResponse:
        """Send one request on a new connection; return the complete response."""
        channel, transport = connect(site or self.makeSite())
        channel.dataReceived(buildRequest(variables, body))
        self.assertTrue(transport.disconnecting, "the response is not complete")
        return parseResponse(transport.value())

    def seen(self, variables: Pairs, site: SCGISite | None = None) -> Seen:
        """Send one request to the recorder; return how it looked."""
        response = self.respond(variables, site)
        self.assertEqual(response.status, 200, response)
        return self.recorder.seen.pop()


def mounted(
    uri: bytes, scriptName: bytes | None, pathInfo: bytes | None
) -> list[tuple[bytes, bytes]]:
    """Return nginx's variables for ``uri`` with this SCRIPT_NAME and PATH_INFO."""
    return nginxVariables(uri, SCRIPT_NAME=scriptName, PATH_INFO=pathInfo)


class MountTests(SiteTestCase):
    """SCRIPT_NAME/PATH_INFO (or the configured mount) set prepath and postpath."""

    def assertSplit(
        self,
        rows: Iterable[tuple[bytes, bytes | None, bytes | None, list[bytes]]],
        prepath: list[bytes],
        site: SCGISite | None = None,
    ) -> None:
        """For each row, the leaf root sees ``prepath`` and the row's postpath."""
        site = site or self.makeSite()
        for uri, scriptName, pathInfo, postpath in rows:
            seen = self.seen(mounted(uri, scriptName, pathInfo), site)
            self.assertEqual((seen.prepath, seen.postpath), (prepath, postpath), uri)

    def test_nginx(self) -> None:
        """The nginx rows for the /app mount: the mount goes to prepath."""
        self.assertSplit(
            [
                (b"/app", b"/app", b"", []),
                (b"/app/", b"/app", b"/", [b""]),
                (b"/app/a/b", b"/app", b"/a/b", [b"a", b"b"]),
                (b"/app/a%2Fb/%20c", b"/app", b"/a/b/ c", [b"a/b", b" c"]),
                (
                    b"/app/caf%C3%A9/%7Eu",
                    b"/app",
                    b"/caf\xc3\xa9/~u",
                    [b"caf\xc3\xa9", b"~u"],
                ),
                (
                    b"/app/a/../b//c/./d",
                    b"/app",
                    b"/b/c/d",
                    [b"a", b"..", b"b", b"", b"c", b".", b"d"],
                ),
            ],
            [b"app"],
        )

    def test_apache(self) -> None:
        """The Apache rows (proxy-scgi-pathinfo) for the /app mount."""
        self.assertSplit(
            [
                (b"/app", b"/app", b"/", []),
                (b"/app/", b"/app", b"/", [b""]),
                (b"/app/a/b", b"/app", b"/a/b", [b"a", b"b"]),
                (
                    b"/app/caf%C3%A9/%7Eu",
                    b"/app/caf\xc3\xa9",
                    b"/caf%C3%A9/~u",
                    [b"caf\xc3\xa9", b"~u"],
                ),
                (
                    b"/app/a/../b//c/./d",
                    b"/app",
                    b"/b/c/d",
                    [b"a", b"..", b"b", b"", b"c", b".", b"d"],
                ),
            ],
            [b"app"],
        )

    def test_lighttpd(self) -> None:
        """The lighttpd rows for the /app mount that carry a PATH_INFO."""
        self.assertSplit(
            [
                (b"/app/", b"/app", b"/", [b""]),
                (b"/app/a/b", b"/app", b"/a/b", [b"a", b"b"]),
                (b"/app/a%2Fb/%20c", b"/app", b"/a/b/ c", [b"a/b", b" c"]),
                (
                    b"/app/caf%C3%A9/%7Eu",
                    b"/app",
                    b"/caf\xc3\xa9/~u",
                    [b"caf\xc3\xa9", b"~u"],
                ),
                (
                    b"/app/a/../b//c/./d",
                    b"/app",
                    b"/b/c/d",
                    [b"a", b"..", b"b", b"", b"c", b".", b"d"],
                ),
            ],
            [b"app"],
        )

    def test_lighttpdBareMount(self) -> None:
        """A bare /app from lighttpd has no PATH_INFO: only ``mount`` settles it."""
        self.assertSplit([(b"/app", b"/app", None, [b"app"])], [])
        site = self.makeSite(mount="/app")
        self.assertSplit([(b"/app", b"/app", None, [])], [b"app"], site)

    def test_root(self) -> None:
        """The root-mount rows of all three frontends: nothing goes to prepath."""
        self.assertSplit(
            [
                (b"/apple", b"", b"/apple", [b"apple"]),
                (b"/x%20y/z", b"", b"/x y/z", [b"x y", b"z"]),
                (b"/x%20y/z", b"/x y", b"/x%20y/z", [b"x y", b"z"]),
                (b"/", b"", b"/", [b""]),
                (b"/", b"/", b"/", [b""]),
            ],
            [],
        )

    def test_apacheWithoutPathInfo(self) -> None:
        """Apache without proxy-scgi-pathinfo (whole path in SCRIPT_NAME) is root."""
        self.assertSplit([(b"/app/a/b", b"/app/a/b", None, [b"app", b"a", b"b"])], [])

    def test_configuredMount(self) -> None:
        """Without SCRIPT_NAME (stock nginx), ``mount="/app"`` applies to its paths."""
        site = self.makeSite(mount="/app")
        self.assertSplit(
            [
                (b"/app/x/y?q=1", None, None, [b"x", b"y"]),
                (b"/app/", None, None, [b""]),
                (b"/app", None, None, []),
            ],
            [b"app"],
            site,
        )
        self.assertSplit([(b"/apple", None, None, [b"apple"])], [], site)

    def test_mountSpellings(self) -> None:
        """Text or bytes, with or without a trailing slash; ``/`` means the root."""
        for mount, expected in [
            ("/app", b"/app"),
            (b"/app/", b"/app"),
            ("/a/b/", b"/a/b"),
            ("/", None),
            (None, None),
        ]:
            self.assertEqual(self.makeSite(mount=mount).config.mount, expected, mount)

    def test_mountMustBeAbsolute(self) -> None:
        """A mount prefix that does not start with ``/`` is refused."""
        self.assertRaises(ValueError, self.makeSite, mount="app")
        self.assertRaises(ValueError, self.makeSite, mount=b"app/")

    def test_traversal(self) -> None:
        """The tree below the mount point is traversed from the application root."""
        root = Child(b"root", {b"a": Child(b"a", {b"b": Child(b"b")})})
        site = self.makeSite(root)
        for uri, pathInfo, body in [
            (b"/app/a/b", b"/a/b", b"b"),
            (b"/app/a", b"/a", b"a"),
            (b"/app", b"", b"root"),
        ]:
            response = self.respond(mounted(uri, b"/app", pathInfo), site)
            self.assertEqual(response.body, body, uri)

    def test_notSCGIRequest(self) -> None:
        """A request from another channel (HTTP) is traversed with no mount applied."""
        mountedLeaf, rootLeaf = Child(b"mounted"), Child(b"root")
        root = Child(b"root", {b"app": Child(b"app", {b"x": mountedLeaf})})
        root.putChild(b"x", rootLeaf)
        site = self.makeSite(root, mount="/app")
        httpChannel = HTTPChannel()
        httpChannel.transport = StringTransport()
        request = Request(httpChannel, parsePOSTFormSubmission=False)
        request.prepath, request.postpath = [], [b"app", b"x"]
        self.assertIs(site.getResourceFor(request), mountedLeaf)
        self.assertEqual(request.prepath, [b"app", b"x"])

    def test_oneShot(self) -> None:
        """A resource calling getResourceFor again (vhost-style) is not remounted."""

        class Again(Resource):
            """Drop the path so far back to the mount, then traverse again."""

            def getChild(self, path: bytes, request: WebRequest) -> IResource:
                del request.prepath[1:]
                return site.getResourceFor(request)  # type: ignore[arg-type]

        root = Child(
            b"root",
            {
                b"vh": Again(),
                b"page": Child(b"outer page"),
                b"app": Child(b"inner app", {b"page": Child(b"inner page")}),
            },
        )
        site = self.makeSite(root)
        response = self.respond(
            mounted(b"/app/vh/example/app/page", b"/app", b"/vh/example/app/page"),
            site,
        )
        self.assertEqual(response.body, b"inner page")


class URLTests(SiteTestCase):
    """URLs built by twisted.web include the mount point and the public host."""

    def test_prePathURL(self) -> None:
        """PrePathURL() and URLPath() include the mount and the Host's name."""
        seen = self.seen(mounted(b"/app/a?q=1", b"/app", b"/a"))
        self.assertEqual(seen.prePathURL, b"http://example.test:8080/app")
        self.assertEqual(seen.urlPath, "http://example.test:8080/app")

    def test_prePathURLTraversed(self) -> None:
        """Below the mount, prePathURL() is the mount plus the traversed segments."""
        urls: list[bytes] = []

        class Here(Resource):
            isLeaf = True

            def render(self, request: WebRequest) -> bytes:
                urls.append(request.prePathURL())
                urls.append(str(request.URLPath().child(b"next")).encode())
                return b""

        site = self.makeSite(Child(b"root", {b"a b": Here()}))
        variables = nginxVariables(
            b"/app/a%20b/c",
            SCRIPT_NAME=b"/app",
            PATH_INFO=b"/a b/c",
            HTTPS=b"on",
            SERVER_PORT=b"443",
        )
        self.respond(variables, site)
        self.assertEqual(
            urls,
            [b"https://example.test/app/a%20b", b"https://example.test/app/a%20b/next"],
        )

    def test_publicPort(self) -> None:
        """An explicit port in HTTP_HOST is the public port in URLs."""
        variables = nginxVariables(b"/x", HTTP_HOST=b"example.test:4443")
        self.assertEqual(self.seen(variables).prePathURL, b"http://example.test:4443/")

    def test_redirectResource(self) -> None:
        """util.Redirect answers an explicit 302 with Location under a mount."""
        site = self.makeSite(util.Redirect(b"/app/elsewhere"))
        response = self.respond(mounted(b"/app/old", b"/app", b"/old"), site)
        self.assertEqual((response.status, response.reason), (302, b"Found"))
        self.assertEqual(response.header(b"Location"), b"/app/elsewhere")
        self.assertIn(b"/app/elsewhere", response.body)

    def test_redirectToPrePath(self) -> None:
        """A redirect built from prePathURL() points inside the mount."""

        def render(request: WebRequest) -> bytes:
            return util.redirectTo(request.prePathURL() + b"/", request)  # type: ignore[arg-type]

        class Directory(Resource):
            isLeaf = True

            def render(self, request: WebRequest) -> bytes:
                return render(request)

        site = self.makeSite(Child(b"root", {b"dir": Directory()}))
        response = self.respond(mounted(b"/app/dir", b"/app", b"/dir"), site)
        self.assertEqual(response.status, 302)
        self.assertEqual(
            response.header(b"Location"), b"http://example.test:8080/app/dir/"
        )

    def test_requestRedirect(self) -> None:
        """Request.redirect() gives ``Status: 302 Found`` and the Location."""

        def render(request: WebRequest) -> bytes:
            request.redirect(b"https://example.test/app/login")
            return b""

        class Redirecting(Resource):
            isLeaf = True

            def render(self, request: WebRequest) -> bytes:
                return render(request)

        response = self.respond(
            mounted(b"/app/x", b"/app", b"/x"), self.makeSite(Redirecting())
        )
        self.assertEqual((response.status, response.reason), (302, b"Found"))
        self.assertEqual(
            response.header(b"Location"), b"https://example.test/app/login"
        )


class SessionTests(SiteTestCase):
    """Sessions under a mount are named after it."""

    def test_mountedSession(self) -> None:
        """Under /app the cookie is TWISTED_SESSION_app and finds the session again."""
        uids: list[bytes] = []

        class Sessioned(Resource):
            isLeaf = True

            def render(self, request: WebRequest) -> bytes:
                uids.append(request.getSession().uid)
                return b""

        site = self.makeSite(Sessioned())
        first = self.respond(mounted(b"/app/x", b"/app", b"/x"), site)
        (cookie,) = first.values(b"Set-Cookie")
        name, _, rest = cookie.partition(b"=")
        self.assertEqual(name, b"TWISTED_SESSION_app")
        self.assertIn(b"Path=/", cookie)
        uid = rest.partition(b";")[0]
        self.assertIn(uid, site.sessions)
        variables = mounted(b"/app/y", b"/app", b"/y")
        variables.append((b"HTTP_COOKIE", b"TWISTED_SESSION_app=" + uid))
        second = self.respond(variables, site)
        self.assertEqual(second.values(b"Set-Cookie"), [])
        self.assertEqual(uids, [uid, uid])


class WSGITests(SiteTestCase):
    """A WSGI application under /app sees a correct environ and answers raw."""

    def setUp(self) -> None:
        super().setUp()
        self.environs: list[Environ] = []
        self.bodies: list[bytes] = []

    def application(
        self, environ: Environ, startResponse: StartResponse
    ) -> list[bytes]:
        """Record the environ and the body read from wsgi.input; answer 201."""
        self.environs.append(environ)
        self.bodies.append(environ["wsgi.input"].read())
        startResponse("201 Created", [("Content-Type", "text/plain")])
        return [b"made ", b"it"]

    def wsgiSite(self) -> SCGISite:
        """A site whose root is a WSGIResource on synchronous stand-ins."""
        resource = WSGIResource(
            SynchronousReactorThreads(),
            SynchronousThreadPool(),
            self.application,
        )
        return self.makeSite(resource)

    def test_environ(self) -> None:
        """SCRIPT_NAME, decoded PATH_INFO, QUERY_STRING, scheme, peer, body."""
        variables = nginxVariables(
            b"/app/a%20b/c?q=1&r=%20",
            REQUEST_METHOD=b"POST",
            CONTENT_TYPE=b"application/octet-stream",
            SCRIPT_NAME=b"/app",
            PATH_INFO=b"/a b/c",
            HTTPS=b"on",
            HTTP_CONTENT_LENGTH=b"999",
        )
        variables += [(b"HTTP_X_FOO", b"one"), (b"HTTP_X_FOO", b"two")]
        response = self.respond(variables, self.wsgiSite(), b"the body")
        self.assertEqual((response.status, response.reason), (201, b"Created"))
        self.assertEqual(response.body, b"made it")
        self.assertEqual(response.values(b"Transfer-Encoding"), [])
        (environ,) = self.environs
        expected = {
            "REQUEST_METHOD": "POST",
            "SCRIPT_NAME": "/app",
            "PATH_INFO": "/a b/c",
            "QUERY_STRING": "q=1&r=%20",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "SERVER_NAME": "example.test",
            "SERVER_PORT": "8080",
            "REMOTE_ADDR": "203.0.113.9",
            "REMOTE_PORT": "51234",
            "CONTENT_TYPE": "application/octet-stream",
            "CONTENT_LENGTH": "8",
            "HTTP_X_FOO": "one, two",
            "HTTP_HOST": "example.test",
            "wsgi.url_scheme": "https",
        }
        self.assertEqual({key: environ.get(key) for key in expected}, expected)
        # WSGIResource copies every header to HTTP_*; the frontend's own copy of
        # Content-Length (999 here) was dropped, so the copy holds the real length.
        self.assertEqual(environ["HTTP_CONTENT_LENGTH"], "8")
        self.assertEqual(self.bodies, [b"the body"])

    def test_mountRoot(self) -> None:
        """The bare mount point gives PATH_INFO ``""``; a slash gives ``/``."""
        site = self.wsgiSite()
        self.respond(mounted(b"/app", b"/app", b""), site)
        self.respond(mounted(b"/app/", b"/app", b"/"), site)
        self.assertEqual(
            [(e["SCRIPT_NAME"], e["PATH_INFO"]) for e in self.environs],
            [("/app", ""), ("/app", "/")],
        )

    def test_plainHTTP(self) -> None:
        """Without HTTPS the scheme is http, and no body gives no CONTENT_LENGTH."""
        self.respond(mounted(b"/app/x", b"/app", b"/x"), self.wsgiSite())
        (environ,) = self.environs
        self.assertEqual(environ["wsgi.url_scheme"], "http")
        self.assertEqual(environ["CONTENT_LENGTH"], "")
        self.assertEqual(self.bodies, [b""])


class AccessLogTests(SiteTestCase):
    """A finished request writes a combined-log line to the site's log file."""

    def test_line(self) -> None:
        """The line has REMOTE_ADDR's IP, the raw URI, the protocol, status, bytes."""
        path = os.path.join(self.mktemp(), "access.log")
        os.makedirs(os.path.dirname(path))
        site = self.makeSite(logPath=path)
        site.startFactory()
        self.addCleanup(site.stopFactory)
        variables = nginxVariables(
            b"/app/x%20y?q=1",
            HTTP_REFERER=b"http://example.test/",
            HTTP_USER_AGENT=b"curl/8",
        )
        self.respond(variables, site)
        site.stopFactory()
        with open(path, "rb") as f:
            lines = f.read().splitlines()
        self.assertEqual(
            lines,
            [
                b'"203.0.113.9" - - [01/Jan/1970:00:00:00 +0000] '
                b'"GET /app/x%20y?q=1 HTTP/1.1" 200 2 "http://example.test/" "curl/8"'
            ],
        )

    def test_ipv6(self) -> None:
        """An IPv6 REMOTE_ADDR is logged as it is."""
        path = os.path.join(self.mktemp(), "access.log")
        os.makedirs(os.path.dirname(path))
        site = self.makeSite(logPath=path)
        site.startFactory()
        self.addCleanup(site.stopFactory)
        self.respond(nginxVariables(REMOTE_ADDR=b"2001:db8::9"), site)
        site.stopFactory()
        with open(path, "rb") as f:
            self.assertTrue(f.read().startswith(b'"2001:db8::9" - - '))


class RecordingRequest(Request):
    """A request class of the HTTP site's own; instances note themselves."""

    made: list[RecordingRequest] = []  # noqa: RUF012

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        RecordingRequest.made.append(self)


class SharingTests(SiteTestCase):
    """SCGISite.sharing(site) serves an HTTP site's tree, sessions and log."""

    def setUp(self) -> None:
        super().setUp()
        self.path = os.path.join(self.mktemp(), "access.log")
        os.makedirs(os.path.dirname(self.path))
        self.http = Site(
            self.recorder,
            reactor=self.clock,
            logPath=self.path,
            requestFactory=RecordingRequest,
        )
        RecordingRequest.made = []

    def test_tree(self) -> None:
        """The SCGI site serves the HTTP site's resource tree."""
        scgi = SCGISite.sharing(self.http)
        self.assertIs(scgi.resource, self.recorder)
        self.seen(nginxVariables(b"/x"), scgi)

    def test_requestFactory(self) -> None:
        """Requests over SCGI are built by the HTTP site's request factory."""
        scgi = SCGISite.sharing(self.http)
        seen = self.seen(nginxVariables(), scgi)
        self.assertEqual(RecordingRequest.made, [seen.request])

    def test_sessions(self) -> None:
        """A session made over SCGI is in the HTTP site's sessions."""
        uids: list[bytes] = []

        class Sessioned(Resource):
            isLeaf = True

            def render(self, request: WebRequest) -> bytes:
                uids.append(request.getSession().uid)
                return b""

        self.http.resource = Sessioned()
        scgi = SCGISite.sharing(self.http)
        self.respond(nginxVariables(), scgi)
        (uid,) = uids
        self.assertIn(uid, self.http.sessions)
        self.assertIs(self.http.sessions[uid].site, self.http)
        self.assertIs(scgi.sessions, self.http.sessions)
        made = self.http.makeSession()
        self.assertIs(scgi.getSession(made.uid), made)

    def test_log(self) -> None:
        """The SCGI site starts the HTTP site and writes to its access log."""
        scgi = SCGISite.sharing(self.http)
        scgi.doStart()
        self.addCleanup(self.http.stopFactory)
        self.assertEqual(self.http.numPorts, 1)
        self.respond(nginxVariables(b"/shared"), scgi)
        scgi.doStop()
        self.assertEqual(self.http.numPorts, 0)
        with open(self.path, "rb") as f:
            lines = f.read().splitlines()
        self.assertEqual(len(lines), 1)
        self.assertIn(b'"GET /shared HTTP/1.1" 200 2', lines[0])

    def test_startStopShared(self) -> None:
        """Starting/stopping the SCGI site counts as one more user of the HTTP site."""
        self.http.doStart()
        self.addCleanup(self.http.stopFactory)
        scgi = SCGISite.sharing(self.http)
        scgi.doStart()
        self.assertEqual(self.http.numPorts, 2)
        scgi.doStop()
        self.assertEqual(self.http.numPorts, 1)
        self.respond(nginxVariables(b"/still"), scgi)
        self.http.doStop()
        with open(self.path, "rb") as f:
            self.assertIn(b"/still", f.read())

    def test_options(self) -> None:
        """SCGI options, the timeout and form parsing among them, can be given."""
        scgi = SCGISite.sharing(
            self.http, mount="/app", max_body_size=10, timeout=5, spool_threshold=1
        )
        self.assertEqual(scgi.config.mount, b"/app")
        self.assertEqual(scgi.config.max_body_size, 10)
        self.assertEqual(scgi.timeOut, 5)
        self.assertEqual(scgi.spool_threshold, 1)
        quiet = SCGISite.sharing(self.http, parsePOSTFormSubmission=False)
        self.assertFalse(quiet._parsePOSTFormSubmission)

    def test_inherited(self) -> None:
        """The reactor, timeout, form parsing and tracebacks come from the site."""
        self.http.displayTracebacks = True
        patient = Site(self.recorder, reactor=self.clock, timeout=17)
        self.assertEqual(SCGISite.sharing(patient).timeOut, 17)
        http = Site(Resource(), reactor=self.clock, parsePOSTFormSubmission=False)
        self.assertIs(SCGISite.sharing(http).reactor, self.clock)
        self.assertFalse(SCGISite.sharing(http)._parsePOSTFormSubmission)
        self.assertTrue(SCGISite.sharing(self.http).displayTracebacks)

    def test_contentFile(self) -> None:
        """A getContentFile of the HTTP site is used for SCGI request bodies."""
        files: list[IO[bytes]] = []

        class Spooling(Site):
            def getContentFile(self, length: int | None) -> IO[bytes]:
                files.append(io.BytesIO())
                return files[-1]

        http = Spooling(self.recorder, reactor=self.clock)
        scgi = SCGISite.sharing(http, spool_threshold=0)
        self.respond(nginxVariables(REQUEST_METHOD=b"PUT"), scgi, b"body")
        self.assertEqual(len(files), 1)
        self.assertIs(self.recorder.seen[0].contentFile, files[0])


class ContentFileTests(SiteTestCase):
    """SCGISite.getContentFile keeps small bodies in memory."""

    def test_threshold(self) -> None:
        """Lengths under spool_threshold stay in memory; others and None get a file."""
        site = self.makeSite(spool_threshold=10)
        for length, inMemory in [(0, True), (9, True), (10, False), (None, False)]:
            content = site.getContentFile(length)
            self.addCleanup(content.close)
            self.assertEqual(
                isinstance(content, BodyBuffer | PooledBody | io.BytesIO),
                inMemory,
                length,
            )


class ConfigTests(SiteTestCase):
    """The site's options reach every channel it builds."""

    def test_config(self) -> None:
        """Each SCGI option lands in the channel's SCGIConfig; timeout in timeOut."""
        site = self.makeSite(
            mount="/m",
            max_header_size=1000,
            max_variables=20,
            max_body_size=30,
            merge_duplicates=False,
            half_close=True,
            linger_timeout=2.5,
            timeout=7,
        )
        channel, _ = connect(site)
        self.assertIsInstance(channel, SCGIChannel)
        self.assertEqual(
            channel.config,
            SCGIConfig(
                max_header_size=1000,
                max_variables=20,
                max_body_size=30,
                merge_duplicates=False,
                mount=b"/m",
                half_close=True,
                linger_timeout=2.5,
            ),
        )
        self.assertEqual(channel.timeOut, 7)
        self.assertIs(channel.site, site)

    def test_defaults(self) -> None:
        """By default the channel gets the default SCGIConfig and a 60 s timeout."""
        channel, _ = connect(self.makeSite())
        self.assertEqual(channel.config, SCGIConfig())
        self.assertEqual(channel.timeOut, 60)


class AllowTests(SiteTestCase):
    """allow= refuses peers outside its networks; unix peers are always served."""

    def setUp(self) -> None:
        super().setUp()
        self.site = self.makeSite(allow=["127.0.0.1/32", "::1"])

    def test_refused(self) -> None:
        """A peer outside the networks gets no channel, and one warning is logged.

        It gets a protocol that closes the connection as soon as it is made, and
        reads nothing of what the peer sent.
        """
        for address in [
            IPv4Address("TCP", "10.0.0.1", 5),
            IPv6Address("TCP", "::2", 5),
            IPv6Address("TCP", "::ffff:10.0.0.1", 5),
        ]:
            protocol = self.site.buildProtocol(address)
            assert protocol is not None
            transport = StringTransport(peerAddress=address)
            protocol.makeConnection(transport)
            protocol.dataReceived(buildRequest(nginxVariables()))
            self.assertTrue(transport.disconnecting)
            self.assertEqual(transport.value(), b"")
        self.assertEqual(self.site.connections, 0)
        self.assertEqual(len(warningsAndErrors(self.logged)), 3)

    def test_allowed(self) -> None:
        """IPv4, IPv6, IPv4-mapped IPv6 and unix peers in the list get a channel."""
        for address in [
            IPv4Address("TCP", "127.0.0.1", 5),
            IPv6Address("TCP", "::1", 5),
            IPv6Address("TCP", "::ffff:127.0.0.1", 5),
            UNIXAddress(b"/run/app/scgi.sock"),
            UNIXAddress(None),
        ]:
            self.assertIsInstance(
                self.site.buildProtocol(address), SCGIChannel, address
            )
        self.assertEqual(warningsAndErrors(self.logged), [])

    def test_served(self) -> None:
        """An allowed channel serves requests like any other."""
        channel, transport = connect(self.site, IPv4Address("TCP", "127.0.0.1", 5))
        channel.dataReceived(buildRequest(nginxVariables()))
        self.assertEqual(parseResponse(transport.value()).status, 200)
        self.assertEqual(len(self.recorder.seen), 1)

    def test_noList(self) -> None:
        """Without allow= every peer is served."""
        site = self.makeSite()
        self.assertIsNotNone(site.buildProtocol(IPv4Address("TCP", "10.0.0.1", 5)))

    def test_badNetwork(self) -> None:
        """A network that does not parse is refused when the site is built."""
        self.assertRaises(ValueError, self.makeSite, allow=["127.0.0.1/33"])
        self.assertRaises(ValueError, self.makeSite, allow=["localhost"])

    def test_peerAllowed(self) -> None:
        """peer_allowed: scoped IPv6 hosts match; a host that is not an IP does not."""
        site = self.makeSite(allow=["fe80::/10", "10.0.0.0/8"])
        assert site.allow is not None
        self.assertTrue(peer_allowed(IPv6Address("TCP", "fe80::1%eth0", 5), site.allow))
        self.assertTrue(peer_allowed(IPv4Address("TCP", "10.1.2.3", 5), site.allow))
        self.assertFalse(peer_allowed(IPv4Address("TCP", "not-an-ip", 5), site.allow))
        self.assertTrue(peer_allowed(None, site.allow))


class PooledBodyTests(SynchronousTestCase):
    """Bodies written into pooled buffers give their buffer back exactly once."""

    def test_closeGivesBufferBack(self) -> None:
        """Closing gives the buffer back for the next body; the closed body refuses.

        What was read before stays intact when the buffer is reused.
        """
        pool = BufferPool(8, 2)
        first = PooledBody(pool)
        first.write(b"abc")
        first.seek(0)
        data = first.read()
        first.close()
        self.assertEqual(pool.idle, 1)
        first.close()
        self.assertEqual(pool.idle, 1)
        self.assertTrue(first.closed)
        self.assertRaises(ValueError, first.read)
        second = PooledBody(pool)
        self.assertEqual(pool.idle, 0)
        second.write(b"xyz")
        self.assertEqual(data, b"abc")
        second.close()

    def test_outgrownBufferGivenBack(self) -> None:
        """A body that outgrows its buffer moves to a file and gives the buffer back."""
        pool = BufferPool(4, 2)
        body = PooledBody(pool)
        body.write(b"abc")
        body.write(b"defg")
        self.assertEqual(pool.idle, 1)
        body.seek(0)
        self.assertEqual(body.read(), b"abcdefg")
        self.assertEqual(body.getvalue(), b"abcdefg")
        body.close()
        self.assertEqual(pool.idle, 1)

    def test_keepBound(self) -> None:
        """The pool keeps at most ``keep`` idle buffers, and only of its size."""
        pool = BufferPool(4, 2)
        bodies = [PooledBody(pool) for _ in range(3)]
        for body in bodies:
            body.close()
        self.assertEqual(pool.idle, 2)
        pool.give(bytearray(5))
        self.assertEqual(pool.idle, 2)


class BodyBufferTests(SynchronousTestCase):
    """The in-memory request body behaves as the file twisted.web expects."""

    def test_writeTellSeekRead(self) -> None:
        """Pieces written are read back joined, with tell() tracking the size."""
        body = BodyBuffer()
        self.assertEqual(body.write(b"abc"), 3)
        body.write(b"de")
        self.assertEqual(body.tell(), 5)
        self.assertEqual(body.seek(0, 0), 0)
        self.assertEqual(body.read(), b"abcde")
        self.assertEqual(body.tell(), 5)

    def test_writeAfterRead(self) -> None:
        """Writing after the body was read goes to the joined file."""
        body = BodyBuffer()
        body.write(b"abc")
        body.seek(0)
        self.assertEqual(body.read(2), b"ab")
        body.seek(0, 2)
        body.write(b"d")
        body.seek(0)
        self.assertEqual(body.read(), b"abcd")

    def test_fileMethods(self) -> None:
        """Other file methods (readline, getvalue) answer from the joined body."""
        body = BodyBuffer()
        body.write(b"one\n")
        body.write(b"two\n")
        body.seek(0)
        self.assertEqual(body.readline(), b"one\n")
        self.assertEqual(body.getvalue(), b"one\ntwo\n")

    @settings(max_examples=300, deadline=None)
    @given(
        pieces=st.lists(st.binary(max_size=12), max_size=6),
        operations=st.lists(
            st.one_of(
                st.tuples(st.just("read"), st.sampled_from([-1, None, 0, 1, 3, 7, 40])),
                st.tuples(
                    st.just("seek"),
                    st.tuples(st.integers(-5, 60), st.sampled_from([0, 1, 2])),
                ),
                st.tuples(st.just("write"), st.binary(max_size=5)),
                st.tuples(st.just("tell"), st.none()),
            ),
            max_size=12,
        ),
    )
    def test_behavesAsBytesIO(
        self, pieces: list[bytes], operations: list[tuple[str, Any]]
    ) -> None:
        """Any mix of writes, reads, seeks and tells answers exactly as BytesIO.

        The same holds for a pooled body whose buffer (20 bytes here) the body may
        outgrow.
        """
        bodies: list[BodyBuffer | PooledBody] = [
            BodyBuffer(),
            PooledBody(BufferPool(20, 1)),
        ]
        for body in bodies:
            self.assertSameAsBytesIO(body, pieces, operations)

    def assertSameAsBytesIO(
        self,
        body: BodyBuffer | PooledBody,
        pieces: list[bytes],
        operations: list[tuple[str, Any]],
    ) -> None:
        """Apply the writes and operations to ``body`` and to a BytesIO; compare."""
        reference = io.BytesIO()
        for piece in pieces:
            self.assertEqual(body.write(piece), reference.write(piece))
        for operation, argument in operations:
            if operation == "seek":
                offset, whence = argument
                try:
                    expected = reference.seek(offset, whence)
                except ValueError:
                    self.assertRaises(ValueError, body.seek, offset, whence)
                    continue
                self.assertEqual(body.seek(offset, whence), expected)
            elif operation == "read":
                self.assertEqual(body.read(argument), reference.read(argument))
            elif operation == "write":
                self.assertEqual(body.write(argument), reference.write(argument))
            self.assertEqual(body.tell(), reference.tell())
        body.seek(0)
        self.assertEqual(body.read(), reference.getvalue())

    def test_readsInPiecesWithoutJoining(self) -> None:
        """A body read in pieces is answered from its pieces, never joined whole."""
        body = BodyBuffer()
        first, second = b"a" * 10, b"b" * 10
        body.write(first)
        body.write(second)
        body.seek(0)
        self.assertIs(body.read(10), first)
        self.assertEqual(body.read(4), b"bbbb")
        self.assertEqual(body.read(100), b"bbbbbb")
        self.assertIsNone(body._file)

    def test_close(self) -> None:
        """Closing drops the body, joined or not."""
        body = BodyBuffer()
        body.write(b"abc")
        body.close()
        joined = BodyBuffer()
        joined.write(b"abc")
        joined.seek(0)
        joined.close()
        self.assertTrue(joined.closed)
        self.assertTrue(body.closed)
        self.assertRaises(ValueError, body.read)
        self.assertRaises(ValueError, body.seek, 0)
