"""Stock ``twisted.web`` semantics by default, streaming by choice, and the root.

Each request goes through the real channel of an ``SCGISite`` on a
``StringTransport`` with a ``Clock``.  What is pinned:

* with default settings the tree is traversed once the body is in and parsed, as
  ``twisted.web``'s HTTP server does, so ``getChild`` can route on a form field, and a
  large body is spooled to a file first;
* ``stream_uploads`` moves the lookup before the body only where it is asked for
  (``True``, or path prefixes matched whole segments at a time);
* ``SCGISite`` and ``SCGITestClient`` accept what ``--resource`` accepts (an object
  with a ``resource()`` method, such as a Klein app) and refuse anything else at
  construction with a message saying what to pass.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET
from zope.interface import implementer

from scgi_twisted import IStreamingUploadResource, SCGISite, deliverBody
from scgi_twisted._site import DEFAULT_SPOOL_THRESHOLD
from scgi_twisted.testing import SCGITestClient

from .support.apps import WebRequest
from .support.memory import connect
from .support.scgi import buildRequest, nginxVariables, parseResponse

FORM = b"application/x-www-form-urlencoded"


class Leaf(Resource):
    """A leaf that answers its name, the args it saw and the body's length."""

    isLeaf = True

    def __init__(self, name: bytes) -> None:
        super().__init__()
        self.name = name

    def render(self, request: WebRequest) -> bytes:
        """Answer ``name args length``."""
        content = request.content
        assert content is not None
        content.seek(0)
        length = len(content.read())
        return b"%s %r %d" % (self.name, sorted(request.args.items()), length)


class Router(Resource):
    """``/route/<anything>``: the child is named by the form field ``to``.

    :ivar seen: for each lookup, the args and the body length ``getChild`` saw, and
        whether the body was in a real file (spooled).
    """

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[dict[bytes, list[bytes]], int, bool]] = []

    def getChild(self, path: bytes, request: WebRequest) -> IResource:
        """Route on ``request.args[b"to"]``, ``none`` when it is missing."""
        content = request.content
        assert content is not None
        position = content.tell()
        content.seek(0, 2)
        length = content.tell()
        content.seek(position)
        spooled = _isRealFile(content)
        self.seen.append((dict(request.args), length, spooled))
        return Leaf(request.args.get(b"to", [b"none"])[0])


def _isRealFile(content: Any) -> bool:
    """Return whether ``content`` is backed by an operating system file."""
    try:
        content.fileno()
    except (OSError, ValueError, AttributeError):
        return False
    return True


@implementer(IStreamingUploadResource)
class Streaming(Resource):
    """A streaming leaf: answers ``streamed`` if the body could be delivered."""

    isLeaf = True

    def render_POST(self, request: WebRequest) -> bytes | int:
        """Take the body as it comes, or say it was spooled."""
        from scgi_twisted import NotStreamingError

        try:
            deliverBody(request, _Finish(request))
        except NotStreamingError:
            return b"spooled"
        return NOT_DONE_YET


class _Finish(Protocol):
    """A body receiver that answers ``streamed`` once the body is complete."""

    def __init__(self, request: WebRequest) -> None:
        self.request = request

    def dataReceived(self, data: bytes) -> None:
        """Drop the data."""

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """Answer."""
        self.request.write(b"streamed")
        self.request.finish()


def tree() -> tuple[Resource, Router]:
    """Return a root with ``/route`` (a :class:`Router`) and ``/upload`` (streams)."""
    root = Resource()
    router = Router()
    root.putChild(b"route", router)
    root.putChild(b"upload", Streaming())
    return root, router


class StockByDefaultTests(SynchronousTestCase):
    """Default settings give ``getChild`` what twisted.web's HTTP server gives it."""

    def post(
        self, site: SCGISite, uri: bytes, body: bytes, contentType: bytes = FORM
    ) -> bytes:
        """POST ``body`` in two pieces; return the response body (a 200)."""
        channel, transport = connect(site)
        head = buildRequest(
            nginxVariables(uri, REQUEST_METHOD=b"POST", CONTENT_TYPE=contentType),
            b"",
            contentLength=len(body),
        )
        channel.dataReceived(head + body[:3])
        channel.dataReceived(body[3:])
        response = parseResponse(transport.value())
        self.assertEqual(response.status, 200, response)
        return response.body

    def test_defaultIsOff(self) -> None:
        """A site built without ``stream_uploads`` streams nowhere."""
        site = SCGISite(Resource(), reactor=Clock())
        self.assertIs(site.config.stream_uploads, False)

    def test_getChildRoutesOnFormField(self) -> None:
        """``POST /route/leaf`` with ``to=beta`` reaches the child ``beta``.

        ``getChild`` runs once, after the body is in and parsed: it sees the form's
        and the query's args and the whole body, as under ``twistd web``.
        """
        root, router = tree()
        site = SCGISite(root, reactor=Clock())
        body = b"to=beta&x=1"
        answer = self.post(site, b"/route/leaf?q=2", body)
        self.assertTrue(answer.startswith(b"beta "), answer)
        self.assertEqual(
            router.seen,
            [({b"to": [b"beta"], b"x": [b"1"], b"q": [b"2"]}, len(body), False)],
        )

    def test_largeBodySpooledBeforeTraversal(self) -> None:
        """A body past the spool threshold is in a temporary file before traversal.

        Memory stays bounded: the body is spooled, then the tree is traversed.
        """
        root, router = tree()
        site = SCGISite(root, reactor=Clock())
        body = b"to=big&pad=" + b"x" * DEFAULT_SPOOL_THRESHOLD
        answer = self.post(site, b"/route/leaf", body)
        self.assertTrue(answer.startswith(b"big "), answer[:40])
        (args, length, spooled), *_ = router.seen
        self.assertEqual((args[b"to"], length, spooled), ([b"big"], len(body), True))

    def test_streamingResourceGetsSpooledBody(self) -> None:
        """By default a streaming resource is rendered with the spooled body."""
        root, _ = tree()
        site = SCGISite(root, reactor=Clock())
        self.assertEqual(
            self.post(site, b"/upload/x", b"abcdef", b"application/octet-stream"),
            b"spooled",
        )

    def test_streamEverywhere(self) -> None:
        """``stream_uploads=True`` streams, and traverses early, at every path.

        That is the documented change: ``getChild`` then runs before the body, and
        the form-routed child is ``none``.
        """
        root, router = tree()
        site = SCGISite(root, reactor=Clock(), stream_uploads=True)
        self.assertEqual(
            self.post(site, b"/upload/x", b"abcdef", b"application/octet-stream"),
            b"streamed",
        )
        answer = self.post(site, b"/route/leaf", b"to=beta")
        self.assertTrue(answer.startswith(b"none "), answer)
        self.assertEqual(router.seen, [({}, 0, False)])

    def test_streamBelowPrefixes(self) -> None:
        """With prefixes, only paths at or below one stream; the rest is stock.

        Prefixes match whole segments: ``/upload`` covers ``/upload`` and
        ``/upload/x`` but not ``/uploads``; a trailing ``/`` is ignored.
        """
        root, _ = tree()
        root.putChild(b"uploads", Streaming())
        site = SCGISite(root, reactor=Clock(), stream_uploads=["/upload/", b"/other"])
        self.assertEqual(site.config.stream_uploads, (b"/upload", b"/other"))
        octets = b"application/octet-stream"
        self.assertEqual(self.post(site, b"/upload", b"abcdef", octets), b"streamed")
        self.assertEqual(
            self.post(site, b"/upload/x?y", b"abcdef", octets), b"streamed"
        )
        self.assertEqual(self.post(site, b"/uploads/x", b"abcdef", octets), b"spooled")
        answer = self.post(site, b"/route/leaf", b"to=beta")
        self.assertTrue(answer.startswith(b"beta "), answer)

    def test_slashPrefixIsEverywhere(self) -> None:
        """The prefix ``/`` means every path, as ``True`` does; none means nowhere."""
        self.assertIs(
            SCGISite(Resource(), stream_uploads=["/"]).config.stream_uploads, True
        )
        self.assertIs(
            SCGISite(Resource(), stream_uploads=[]).config.stream_uploads, False
        )

    def test_badPrefixes(self) -> None:
        """A relative prefix, or one string instead of a list, is refused clearly."""
        error = self.assertRaises(
            ValueError, SCGISite, Resource(), stream_uploads=["upload"]
        )
        self.assertIn("must start with '/'", str(error))
        typeError = self.assertRaises(
            TypeError, SCGISite, Resource(), stream_uploads="/upload"
        )
        self.assertIn("['/upload']", str(typeError))


class KleinLike:
    """An object with a ``resource()`` method, as a Klein app is."""

    def __init__(self) -> None:
        self.calls = 0

    def resource(self) -> Resource:
        """Return a fresh leaf answering ``klein``."""
        self.calls += 1
        return Leaf(b"klein")


class RootResourceTests(SynchronousTestCase):
    """``SCGISite`` takes what ``--resource`` takes, or refuses it at once."""

    def test_kleinLikeSite(self) -> None:
        """``SCGISite(app)`` serves ``app.resource()``, called once."""
        app = KleinLike()
        site = SCGISite(app, reactor=Clock())
        self.assertEqual(app.calls, 1)
        self.assertIsInstance(site.resource, Leaf)

    def test_kleinLikeTestClient(self) -> None:
        """``SCGITestClient(app)`` serves ``app.resource()`` too."""
        response = SCGITestClient(KleinLike()).get("/anything")
        self.assertEqual(response.status, 200)
        self.assertTrue(response.body.startswith(b"klein "), response.body)

    def test_refusedAtConstruction(self) -> None:
        """Anything else is refused by the constructor, saying what to pass."""
        error = self.assertRaises(TypeError, SCGISite, object())
        self.assertIn("needs a twisted.web resource", str(error))
        self.assertIn("resource() method", str(error))
        classError = self.assertRaises(TypeError, SCGISite, Leaf)
        self.assertIn("pass an instance, such as Leaf()", str(classError))

        def wsgi(environ: object, startResponse: object) -> list[bytes]:
            return []

        wsgiError = self.assertRaises(TypeError, SCGITestClient, wsgi)
        self.assertIn("WSGIResource", str(wsgiError))

    def test_badResourceMethod(self) -> None:
        """An app whose ``resource()`` returns no resource is refused, as by tap."""

        class Bad:
            def resource(self) -> int:
                return 42

        error = self.assertRaises(TypeError, SCGISite, Bad())
        self.assertIn(
            ".resource() returned 42, which is not a twisted.web resource", str(error)
        )


class LocationOnly(Resource):
    """Answers ``?code=`` (200 by default) with ``Location: ?to=``."""

    isLeaf = True

    def render_GET(self, request: WebRequest) -> bytes:
        """Set the status and the ``Location`` header from the query."""
        request.setResponseCode(int(request.args.get(b"code", [b"200"])[0]))
        request.setHeader(b"Location", request.args[b"to"][0])
        return b"here"


class ApacheLocationTests(SynchronousTestCase):
    """Behind Apache a 200 with a ``Location`` path is not an internal redirect."""

    def location(self, query: str, software: str | None) -> tuple[int, bytes | None]:
        """GET ``/x?query`` with ``SERVER_SOFTWARE``; return status and Location."""
        variables = {} if software is None else {"SERVER_SOFTWARE": software}
        client = SCGITestClient(LocationOnly(), variables=variables)
        response = client.get("/x?" + query, headers={"Host": "example.test:8080"})
        values = response.headers.getRawHeaders(b"location")
        return response.status, values[0] if values else None

    def test_apacheAbsolute(self) -> None:
        """From Apache, the path of a 200's ``Location`` becomes an absolute URL.

        Scheme, host and port are those of ``prePathURL()``; a network-path
        reference (``//host/p``) gets the scheme only.
        """
        self.assertEqual(
            self.location("to=/a/b?c=1", "Apache/2.4.71 (Debian)"),
            (200, b"http://example.test:8080/a/b?c=1"),
        )
        self.assertEqual(
            self.location("to=//other.test/p", "Apache"),
            (200, b"http://other.test/p"),
        )

    def test_otherwiseUnchanged(self) -> None:
        """Other statuses, absolute URLs and other frontends keep ``Location``."""
        self.assertEqual(self.location("to=/a&code=302", "Apache/2.4.71"), (302, b"/a"))
        self.assertEqual(self.location("to=/a&code=201", "Apache/2.4.71"), (201, b"/a"))
        self.assertEqual(
            self.location("to=http://x.test/a", "Apache/2.4.71"),
            (200, b"http://x.test/a"),
        )
        self.assertEqual(self.location("to=/a", "lighttpd/1.4.69"), (200, b"/a"))
        self.assertEqual(self.location("to=/a", None), (200, b"/a"))
