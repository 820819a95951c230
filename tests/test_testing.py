"""Tests for the user-facing test helpers, ``scgi_twisted.testing``.

The helpers are used here exactly as a user's test would use them: real
``twisted.web`` resources, served through the real SCGI channel, in memory, with no
reactor running.  One test checks that the global reactor is left untouched.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IPullProducer, IPushProducer
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.http_headers import Headers
from twisted.web.pages import notFound
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site
from twisted.web.static import File
from zope.interface import implementer

from scgi_twisted import SCGISite, getSCGIVariables
from scgi_twisted._clientprotocol import SCGIClientProtocol
from scgi_twisted._errors import LocalProtocolError, MalformedResponseError
from scgi_twisted.testing import (
    PendingResponse,
    ResponseNotFinishedError,
    SCGITestClient,
    TestResponse,
)

_reactor: Any = reactor


class Inspect(Resource):
    """Answers with a JSON account of the request it received."""

    isLeaf = True

    def render(self, request: Request) -> bytes:
        """Describe the request."""
        assert request.content is not None
        assert request.prepath is not None and request.postpath is not None
        variables = getSCGIVariables(request)
        assert variables is not None
        account = {
            "method": request.method.decode(),
            "uri": request.uri.decode(),
            "prepath": [segment.decode() for segment in request.prepath],
            "postpath": [segment.decode() for segment in request.postpath],
            "args": {
                name.decode(): [v.decode() for v in values]
                for name, values in request.args.items()
            },
            "headers": {
                name.decode().lower(): [v.decode() for v in values]
                for name, values in request.requestHeaders.getAllRawHeaders()
            },
            "cookies": {
                name.decode(): value.decode()
                for name, value in request.received_cookies.items()
            },
            "secure": request.isSecure(),
            "url": request.prePathURL().decode(),
            "body": request.content.read().decode("latin-1"),
            "variables": {name: v.decode("latin-1") for name, v in variables.items()},
        }
        request.setHeader(b"content-type", b"application/json; charset=utf-8")
        return json.dumps(account).encode()


def account(response: TestResponse) -> dict[str, Any]:
    """Decode an :class:`Inspect` answer."""
    decoded: dict[str, Any] = json.loads(response.body)
    return decoded


class Cookies(Resource):
    """Sets two cookies and answers in Latin-1."""

    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        """Set cookies."""
        request.addCookie(b"session", b"abc", path=b"/", httpOnly=True)
        request.addCookie(b"theme", b"dark")
        request.setHeader(b"content-type", b"text/plain; charset=latin-1")
        return b"caf\xe9"


class Later(Resource):
    """Finishes ``delay`` seconds later on its clock, writing in two parts.

    :ivar outcomes: what each request's ``notifyFinish()`` Deferred gave.
    """

    isLeaf = True

    def __init__(self, clock: Clock, delay: float = 5.0) -> None:
        super().__init__()
        self.clock = clock
        self.delay = delay
        self.outcomes: list[object] = []
        self.requests: list[Request] = []

    def render_GET(self, request: Request) -> object:
        """Write the first part now, the rest later."""
        self.requests.append(request)
        request.setHeader(b"content-type", b"text/plain")
        request.write(b"first,")
        finished = request.notifyFinish()
        finished.addCallbacks(self.outcomes.append, self.outcomes.append)
        self.clock.callLater(self.delay, self.finish, request)
        return NOT_DONE_YET

    def finish(self, request: Request) -> None:
        """Write the rest and finish, unless the client went away."""
        request.write(b"second")
        if not request._disconnected:
            request.finish()


class WrongLength(Resource):
    """Declares a longer body than it writes: a malformed response."""

    isLeaf = True

    def render_GET(self, request: Request) -> object:
        """Write 5 bytes under a Content-Length of 100."""
        request.setHeader(b"content-length", b"100")
        request.write(b"short")
        request.finish()
        return NOT_DONE_YET


class Held(Resource):
    """Keeps each request unfinished until the test finishes it."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[Request] = []

    def render_GET(self, request: Request) -> object:
        """Hold the request."""
        self.requests.append(request)
        return NOT_DONE_YET


@implementer(IPushProducer)
class PushBody:
    """A push producer that writes the body when resumed by the test."""

    def __init__(self, request: Request) -> None:
        self.request = request
        request.registerProducer(self, True)

    def pauseProducing(self) -> None:
        """Nothing to pause."""

    def resumeProducing(self) -> None:
        """Write and finish."""
        self.request.write(b"pushed")
        self.request.unregisterProducer()
        self.request.finish()

    def stopProducing(self) -> None:
        """Nothing to stop."""


@implementer(IPullProducer)
class StalledPull:
    """A pull producer that writes nothing until the test says so."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.ready = False
        request.registerProducer(self, False)

    def resumeProducing(self) -> None:
        """Write and finish, once ready."""
        if self.ready:
            self.request.unregisterProducer()
            self.request.write(b"pulled")
            self.request.finish()

    def stopProducing(self) -> None:
        """Nothing to stop."""


class Sessions(Resource):
    """Starts a session and answers with its id."""

    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        """Start a session."""
        return request.getSession().uid  # type: ignore[no-any-return]


class SynchronousResponseTests(SynchronousTestCase):
    """Resources that render synchronously give their response at once."""

    def test_get(self) -> None:
        """``get`` returns the status, reason, headers, body and raw bytes."""
        response = SCGITestClient(Inspect()).get("/a/b?x=1&x=2")
        self.assertEqual((response.status, response.reason), (200, b"OK"))
        self.assertEqual(
            response.headers.getRawHeaders(b"content-type"),
            [b"application/json; charset=utf-8"],
        )
        self.assertEqual(
            response.headers.getRawHeaders(b"content-length"),
            [str(len(response.body)).encode()],
        )
        self.assertTrue(response.raw.startswith(b"Status: 200 OK\r\n"))
        self.assertTrue(response.raw.endswith(b"\r\n\r\n" + response.body))
        self.assertIn(
            (b"Content-Type", b"application/json; charset=utf-8"), response.header_pairs
        )
        seen = account(response)
        self.assertEqual(seen["method"], "GET")
        self.assertEqual(seen["uri"], "/a/b?x=1&x=2")
        self.assertEqual(seen["args"], {"x": ["1", "2"]})
        self.assertEqual(seen["postpath"], ["a", "b"])
        self.assertEqual(seen["url"], "http://localhost/")

    def test_frontendVariables(self) -> None:
        """The channel gets the variables a frontend sends, as the client sends them."""
        seen = account(SCGITestClient(Inspect()).get("/p%20q"))
        variables = seen["variables"]
        self.assertEqual(list(variables)[:2], ["CONTENT_LENGTH", "REQUEST_METHOD"])
        self.assertEqual(variables["SCGI"], "1")
        self.assertEqual(variables["PATH_INFO"], "/p q")
        self.assertEqual(variables["REQUEST_URI"], "/p%20q")

    def test_headers(self) -> None:
        """Headers as a mapping, as pairs (repeats merged) or as ``Headers`` arrive."""
        client = SCGITestClient(Inspect())
        seen = account(client.get("/", headers={"Accept": "text/html"}))
        self.assertEqual(seen["headers"]["accept"], ["text/html"])
        seen = account(client.get("/", headers=[("X-A", "1"), ("x-a", "2")]))
        self.assertEqual(seen["headers"]["x-a"], ["1, 2"])
        seen = account(client.get("/", headers=Headers({b"X-B": [b"3"]})))
        self.assertEqual(seen["headers"]["x-b"], ["3"])

    def test_postBody(self) -> None:
        """``post`` sends the body with its content type and length."""
        response = SCGITestClient(Inspect()).post(
            "/submit", b'{"a": 1}', content_type="application/json"
        )
        seen = account(response)
        self.assertEqual(seen["method"], "POST")
        self.assertEqual(seen["body"], '{"a": 1}')
        self.assertEqual(seen["headers"]["content-type"], ["application/json"])
        self.assertEqual(seen["headers"]["content-length"], ["8"])
        self.assertEqual(seen["variables"]["CONTENT_LENGTH"], "8")

    def test_postForm(self) -> None:
        """A form is URL-encoded and parsed into ``request.args`` by Twisted."""
        response = SCGITestClient(Inspect()).post(
            "/login", form={"user": "alice", "tag": ["a", "b"]}, headers={"X-A": "1"}
        )
        seen = account(response)
        self.assertEqual(seen["args"], {"user": ["alice"], "tag": ["a", "b"]})
        self.assertEqual(
            seen["headers"]["content-type"], ["application/x-www-form-urlencoded"]
        )
        self.assertEqual(seen["headers"]["x-a"], ["1"])

    def test_putAndDelete(self) -> None:
        """``put`` sends text as UTF-8; ``delete`` sends no body."""
        client = SCGITestClient(Inspect())
        seen = account(client.put("/item", "caf\u00e9", content_type="text/plain"))
        self.assertEqual((seen["method"], seen["body"]), ("PUT", "caf\xc3\xa9"))
        seen = account(client.delete("/item"))
        self.assertEqual((seen["method"], seen["body"]), ("DELETE", ""))

    def test_request(self) -> None:
        """``request`` takes any method."""
        seen = account(SCGITestClient(Inspect()).request("PATCH", "/x", body="y"))
        self.assertEqual((seen["method"], seen["body"]), ("PATCH", "y"))

    def test_head(self) -> None:
        """A HEAD response has the headers and no body."""
        response = SCGITestClient(Inspect()).head("/")
        self.assertEqual(response.status, 200)
        self.assertEqual(response.body, b"")
        self.assertTrue(response.headers.hasHeader(b"content-length"))

    def test_cookiesSent(self) -> None:
        """``cookies`` are sent in one Cookie header that Twisted parses."""
        seen = account(
            SCGITestClient(Inspect()).get("/", cookies={"a": "1", b"b": b"2"})
        )
        self.assertEqual(seen["cookies"], {"a": "1", "b": "2"})

    def test_cookiesReceived(self) -> None:
        """``cookies`` of a response maps each Set-Cookie name to its value."""
        response = SCGITestClient(Cookies()).get("/")
        self.assertEqual(response.cookies, {b"session": b"abc", b"theme": b"dark"})
        self.assertEqual(len(response.headers.getRawHeaders(b"set-cookie") or []), 2)

    def test_text(self) -> None:
        """``text`` decodes the body with its charset."""
        self.assertEqual(SCGITestClient(Cookies()).get("/").text, "caf\xe9")
        self.assertEqual(SCGITestClient(Inspect()).get("/").text[:1], "{")

    def test_mount(self) -> None:
        """With ``mount``, SCRIPT_NAME moves the mount point to ``prepath``."""
        root = Resource()
        root.putChild(b"page", Inspect())
        client = SCGITestClient(root, mount="/app")
        seen = account(client.get("/app/page/x"))
        self.assertEqual(seen["prepath"], ["app", "page"])
        self.assertEqual(seen["postpath"], ["x"])
        self.assertEqual(seen["variables"]["SCRIPT_NAME"], "/app")
        self.assertEqual(seen["variables"]["PATH_INFO"], "/page/x")
        self.assertEqual(seen["url"], "http://localhost/app/page")

    def test_mountWithoutScriptName(self) -> None:
        """Without SCRIPT_NAME (stock nginx), the site's mount option applies."""
        root = Resource()
        root.putChild(b"page", Inspect())
        client = SCGITestClient(root, mount="/app", send_script_name=False)
        seen = account(client.get("/app/page/x"))
        self.assertNotIn("SCRIPT_NAME", seen["variables"])
        self.assertEqual(seen["prepath"], ["app", "page"])

    def test_secure(self) -> None:
        """``secure`` sends the variables of a TLS client: ``isSecure()`` is true."""
        seen = account(SCGITestClient(Inspect(), secure=True).get("/"))
        self.assertTrue(seen["secure"])
        self.assertEqual(seen["variables"]["HTTPS"], "on")
        self.assertEqual(seen["url"], "https://localhost/")

    def test_variables(self) -> None:
        """Client-wide and per-request variables reach the channel, the latter last."""
        client = SCGITestClient(
            Inspect(), variables={"REMOTE_ADDR": "203.0.113.9", "X_A": "client"}
        )
        seen = account(client.get("/", variables=[("X_A", "request")]))
        self.assertEqual(seen["variables"]["REMOTE_ADDR"], "203.0.113.9")
        self.assertEqual(seen["variables"]["X_A"], "request")

    def test_siteOptions(self) -> None:
        """Site options apply: a body over ``max_body_size`` gets 413."""
        client = SCGITestClient(Inspect(), max_body_size=4)
        self.assertEqual(client.post("/", b"12345").status, 413)
        self.assertEqual(client.post("/", b"1234").status, 200)

    def test_givenSCGISite(self) -> None:
        """An ``SCGISite`` is used as it is; site options are then refused."""
        site = SCGISite(Inspect(), mount="/m")
        client = SCGITestClient(site)
        self.assertIs(client.site, site)
        self.assertEqual(account(client.get("/m/x"))["prepath"], ["m"])
        self.assertRaises(TypeError, SCGITestClient, site, max_body_size=1)

    def test_givenPlainSite(self) -> None:
        """A plain ``Site`` is served over SCGI, sharing its resource and sessions."""
        site = Site(Sessions())
        client = SCGITestClient(site)
        uid = client.get("/").body
        self.assertIn(uid, site.sessions)
        for session in list(site.sessions.values()):
            session.expire()

    def test_sessionsOnTheClock(self) -> None:
        """A new site's timers run on the client's clock: sessions expire with it."""
        client = SCGITestClient(Sessions())
        uid = client.get("/").body
        self.assertIn(uid, client.site.sessions)
        client.clock.advance(3600)
        self.assertNotIn(uid, client.site.sessions)

    def test_givenClock(self) -> None:
        """A clock can be given, shared with the resource."""
        clock = Clock()
        client = SCGITestClient(Later(clock, delay=1), clock=clock)
        self.assertIs(client.clock, clock)
        pending = client.start("GET", "/")
        clock.advance(1)
        self.assertTrue(pending.finished)

    def test_staticFile(self) -> None:
        """``static.File`` (a pull producer) is served whole."""
        directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, directory)
        (directory / "data.bin").write_bytes(bytes(range(256)) * 1000)
        response = SCGITestClient(File(str(directory))).get("/data.bin")
        self.assertEqual(response.status, 200)
        self.assertEqual(response.body, bytes(range(256)) * 1000)

    def test_notFound(self) -> None:
        """A 404 page is passed on with its status and reason."""
        root = Resource()
        root.putChild(b"nothing", notFound())
        response = SCGITestClient(root).get("/nothing")
        self.assertEqual((response.status, response.reason), (404, b"Not Found"))

    def test_badArguments(self) -> None:
        """Arguments no request can carry are refused before any channel is built."""
        client = SCGITestClient(Inspect())
        self.assertRaises(LocalProtocolError, client.get, "relative")
        self.assertRaises(LocalProtocolError, client.get, "/", headers={"A": "x\r\n"})

    def test_refusedPeer(self) -> None:
        """A site whose ``allow`` list excludes 127.0.0.1 refuses the test frontend."""
        client = SCGITestClient(Inspect(), allow=["10.0.0.0/8"])
        self.assertRaises(ConnectionRefusedError, client.get, "/")

    def test_noReactor(self) -> None:
        """Nothing is scheduled on the global reactor, even for a delayed answer."""
        before = list(_reactor.getDelayedCalls())
        clock = Clock()
        client = SCGITestClient(Later(clock, delay=2), clock=clock)
        pending = client.start("GET", "/x")
        clock.advance(2)
        self.assertTrue(pending.finished)
        self.assertEqual(list(_reactor.getDelayedCalls()), before)


class PendingResponseTests(SynchronousTestCase):
    """Responses that finish later: ``start``, the clock, and disconnects."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.resource = Later(self.clock)
        self.client = SCGITestClient(self.resource, clock=self.clock)

    def test_requestNotFinished(self) -> None:
        """``request`` on a resource that finishes later fails as an assertion."""
        error = self.assertRaises(ResponseNotFinishedError, self.client.get, "/")
        self.assertIsInstance(error, AssertionError)
        message = str(error)
        self.assertTrue(
            message.startswith("the server has not finished the response ("), message
        )
        self.assertTrue(
            message.endswith(
                " bytes written so far); a resource that returned NOT_DONE_YET "
                "finishes once the clock is advanced or what it waits on fires"
            ),
            message,
        )

    def test_finishesWithTheClock(self) -> None:
        """The response is finished once the clock passes the resource's delay."""
        pending = self.client.start("GET", "/")
        self.assertFalse(pending.finished)
        self.assertRaises(ResponseNotFinishedError, pending.result)
        self.clock.advance(4.9)
        self.assertFalse(pending.finished)
        self.clock.advance(0.1)
        self.assertTrue(pending.finished)
        response = pending.result()
        self.assertEqual(response.body, b"first,second")
        self.assertIs(pending.result(), response)

    def test_partialOutput(self) -> None:
        """``raw`` shows what has been written so far."""
        pending = self.client.start("GET", "/")
        self.assertTrue(pending.raw.startswith(b"Status: 200 OK\r\n"))
        self.assertTrue(pending.raw.endswith(b"\r\n\r\nfirst,"))

    def test_whenFinished(self) -> None:
        """``when_finished`` fires with the response, before or after it finishes."""
        pending = self.client.start("GET", "/")
        early = pending.when_finished()
        self.assertNoResult(early)
        self.clock.advance(5)
        self.assertEqual(self.successResultOf(early).body, b"first,second")
        late = pending.when_finished()
        self.assertEqual(self.successResultOf(late).body, b"first,second")

    def test_connectionLostAfterFinish(self) -> None:
        """After the response, the channel is told that its connection is gone."""
        pending = self.client.start("GET", "/")
        self.clock.advance(5)
        self.assertEqual(len(self.resource.outcomes), 1)
        self.assertTrue(pending.transport.disconnecting)
        self.clock.advance(0)
        self.assertFalse(pending.transport.connected)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_disconnect(self) -> None:
        """A frontend that goes away fails ``notifyFinish`` with ConnectionDone.

        The response is then never finished, later writes are dropped quietly, and
        ``when_finished`` never fires.
        """
        pending = self.client.start("GET", "/")
        waiting = pending.when_finished()
        pending.disconnect()
        self.assertEqual(len(self.resource.outcomes), 1)
        outcome = self.resource.outcomes[0]
        assert isinstance(outcome, Failure)
        self.assertIsInstance(outcome.value, ConnectionDone)
        written = pending.raw
        self.clock.advance(5)
        self.assertEqual(pending.raw, written)
        self.assertFalse(pending.finished)
        self.assertNoResult(waiting)
        error = self.assertRaises(ResponseNotFinishedError, pending.result)
        self.assertIn("the test disconnected first", str(error))
        pending.disconnect()
        self.assertEqual(len(self.resource.outcomes), 1)

    def test_disconnectAfterFinish(self) -> None:
        """Disconnecting after the response changes nothing."""
        pending = self.client.start("GET", "/")
        self.clock.advance(5)
        pending.disconnect()
        self.assertTrue(pending.finished)
        self.assertEqual(pending.result().body, b"first,second")
        self.assertIsNone(self.resource.outcomes[0])

    def test_finishedOutsideTheClock(self) -> None:
        """A response finished by the test itself is complete at once.

        The channel hears of the lost connection on the next clock tick, or at
        once when the test disconnects.
        """
        held = Held()
        client = SCGITestClient(held)
        pending = client.start("GET", "/")
        request = held.requests[0]
        request.write(b"body")
        request.finish()
        self.assertTrue(pending.finished)
        self.assertTrue(pending.transport.connected)
        pending.disconnect()
        self.assertFalse(pending.transport.connected)
        client.clock.advance(0)
        self.assertEqual(pending.result().body, b"body")

    def test_pushProducer(self) -> None:
        """A push producer writes when it decides to; the response then finishes."""
        held = Held()
        client = SCGITestClient(held)
        pending = client.start("GET", "/")
        producer = PushBody(held.requests[0])
        self.assertFalse(pending.finished)
        producer.resumeProducing()
        self.assertEqual(pending.result().body, b"pushed")

    def test_stalledPullProducer(self) -> None:
        """A pull producer that writes nothing is not asked again and again."""
        held = Held()
        client = SCGITestClient(held)
        pending = client.start("GET", "/")
        producer = StalledPull(held.requests[0])
        self.assertFalse(pending.finished)
        producer.ready = True
        producer.resumeProducing()
        self.assertEqual(pending.result().body, b"pulled")

    def test_serverHalfClose(self) -> None:
        """A server that half-closes its side has finished its response."""
        held = Held()
        pending = SCGITestClient(held).start("GET", "/")
        waiting = pending.when_finished()
        pending.transport.write(b"Status: 204 No Content\r\n\r\n")
        pending.transport.loseWriteConnection()
        pending.transport.loseWriteConnection()
        pending.transport.write(b"dropped")
        pending.transport.loseConnection()
        pending.transport.loseConnection()
        self.assertTrue(pending.finished)
        self.assertEqual(self.successResultOf(waiting).status, 204)
        self.assertEqual(pending.raw, b"Status: 204 No Content\r\n\r\n")

    def test_serverAbort(self) -> None:
        """A server that aborts has finished; the transport says it aborted."""
        held = Held()
        pending = SCGITestClient(held).start("GET", "/")
        self.assertFalse(pending.transport.aborted)
        pending.transport.write(b"Status: 204 No Content\r\n\r\n")
        pending.transport.abortConnection()
        self.assertTrue(pending.transport.aborted)
        self.assertTrue(pending.finished)
        self.assertEqual(pending.result().status, 204)

    def test_type(self) -> None:
        """``start`` returns a :class:`PendingResponse` for the request's method."""
        pending = self.client.start(b"GET", b"/")
        self.assertIsInstance(pending, PendingResponse)
        self.assertEqual(pending.method, b"GET")


class MalformedResponseTests(SynchronousTestCase):
    """A resource that writes a bad response is reported, not hidden."""

    def test_wrongLength(self) -> None:
        """A body shorter than its Content-Length is a MalformedResponseError."""
        client = SCGITestClient(WrongLength())
        error = self.assertRaises(MalformedResponseError, client.get, "/")
        self.assertEqual(
            str(error),
            "the connection closed with 95 of the 100 body bytes (Content-Length) "
            "missing",
        )

    def test_wrongLengthDeferred(self) -> None:
        """``when_finished`` fails with the same error."""
        pending = SCGITestClient(WrongLength()).start("GET", "/")
        self.failureResultOf(pending.when_finished(), MalformedResponseError)

    def test_wrongLengthLater(self) -> None:
        """A waiting ``when_finished`` fails once the bad response is finished."""
        held = Held()
        pending = SCGITestClient(held).start("GET", "/")
        waiting = pending.when_finished()
        request = held.requests[0]
        request.setHeader(b"content-length", b"10")
        request.write(b"short")
        request.finish()
        self.failureResultOf(waiting, MalformedResponseError)


class ParseTests(SynchronousTestCase):
    """``TestResponse.parse`` reads any CGI response."""

    def test_parse(self) -> None:
        """A head and body parse into a response; HEAD expects no body."""
        raw = b"Status: 201 Created\r\nLocation: /n\r\n\r\nbody"
        response = TestResponse.parse(raw)
        self.assertEqual((response.status, response.reason), (201, b"Created"))
        self.assertEqual(response.headers.getRawHeaders(b"location"), [b"/n"])
        self.assertEqual(response.body, b"body")
        self.assertEqual(response.raw, raw)
        self.assertRaises(MalformedResponseError, TestResponse.parse, raw, "HEAD")

    def test_textAndCookieEdges(self) -> None:
        """An unknown charset falls back to UTF-8; a cookie without ``=`` is skipped."""
        response = TestResponse.parse(
            b"Content-Type: text/plain; format=x; charset=nonesuch\r\n"
            b"Set-Cookie: novalue; Path=/\r\n"
            b"Set-Cookie: a=1\r\n\r\ncaf\xc3\xa9"
        )
        self.assertEqual(response.text, "caf\xe9")
        self.assertEqual(response.cookies, {b"a": b"1"})

    def test_notATestClass(self) -> None:
        """The pytest runner does not mistake ``TestResponse`` for a test class."""
        self.assertFalse(TestResponse.__test__)

    def test_docstringExample(self) -> None:
        """The module docstring's first example works as written."""

        class Hello(Resource):
            isLeaf = True

            def render_GET(self, request: Request) -> bytes:
                name: bytes = request.args.get(b"name", [b"world"])[0]
                return b"hello, " + name

        client = SCGITestClient(Hello())
        response = client.get("/?name=you", headers={"Accept": "text/plain"})
        self.assertEqual(response.status, 200)
        self.assertEqual(response.body, b"hello, you")
        self.assertEqual(client.get("/").body, b"hello, world")


class OneParserTests(SynchronousTestCase):
    """The test client reads responses with the SCGI client's own protocol."""

    def recordClientReads(self) -> list[bytes]:
        """Patch the client's protocol to record the bytes it is given."""
        read: list[bytes] = []
        original = SCGIClientProtocol.dataReceived

        def dataReceived(protocol: SCGIClientProtocol, data: bytes) -> None:
            read.append(data)
            original(protocol, data)

        self.patch(SCGIClientProtocol, "dataReceived", dataReceived)
        return read

    def test_request(self) -> None:
        """Every byte the channel writes is read by ``SCGIClientProtocol``."""
        read = self.recordClientReads()
        response = SCGITestClient(Inspect()).get("/a?b=c")
        self.assertEqual(response.status, 200)
        self.assertEqual(b"".join(read), response.raw)

    def test_parse(self) -> None:
        """``TestResponse.parse`` reads with ``SCGIClientProtocol`` too."""
        read = self.recordClientReads()
        raw = b"Status: 201 Created\r\n\r\nbody"
        self.assertEqual(TestResponse.parse(raw).body, b"body")
        self.assertEqual(read, [raw])

    def test_redirectWithoutStatus(self) -> None:
        """A ``Location`` without ``Status`` reads as the client reads it: a 302."""
        response = TestResponse.parse(b"Location: /elsewhere\r\n\r\n")
        self.assertEqual((response.status, response.reason), (302, b"Found"))
