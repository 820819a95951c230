"""``SCGIRequest`` against the stock ``server.Request``: a differential test.

Strategy: every case of :data:`CASES` (the twin test's corpus on the twin tree, and
cases of its own for producers, encoders, ``notifyFinish``, sessions, redirects,
errors, ``HEAD``, status codes and late writes) is run twice on the same in-memory
SCGI connection (:class:`scgi_twisted.testing.SCGITestClient`): once with the stock
``twisted.web.server.Request`` as the site's ``requestFactory``, once with
:class:`~scgi_twisted.SCGIRequest`.  The resources record every callback they get
(its order and its result) and what they see of the request (every attribute of
the request, described by value) at render time and once it is finished.  The
two runs must agree on every byte written and every record.

The one value that legitimately differs is ``Date``: the stock ``Request`` reads
the wall clock, ``SCGIRequest`` the site's clock (a ``Clock`` here).  Each is
checked on its own (the stock one lies between the wall times before and after the
run, the other is the ``Clock``'s time), then both are replaced by ``<date>``.
"""

from __future__ import annotations

import gc
import re
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, cast
from unittest import SkipTest

from twisted.internet.interfaces import IPullProducer, IPushProducer
from twisted.internet.task import Clock
from twisted.logger import ILogObserver, LogEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from twisted.web import server
from twisted.web.http import datetimeToString, stringToDatetime
from twisted.web.http_headers import Headers
from twisted.web.resource import EncodingResourceWrapper, IResource, Resource
from twisted.web.server import NOT_DONE_YET, GzipEncoderFactory, Request, Site
from zope.interface import implementer, provider

import twisted
from scgi_twisted import SCGIRequest, SCGISite, _internals, _request
from scgi_twisted.testing import PendingResponse, SCGITestClient

from ._twin import CORPUS, TwinRequest, resolve
from .twin_app import buildTwinTree, writeTwinFiles

T0 = 1_700_000_000.25
"""The time on the site's clock when a case starts."""

HOST = "twin.test:80"

CHECKED_TWISTED = ("25.5.0", "26.10.0")
"""The Twisted releases whose ``Request`` the lean paths were checked against."""

Events = list[tuple[str, Any]]


def describe(value: object) -> object:
    """Describe a value by what can be compared across two runs.

    Plain values as they are; containers element by element; ``Headers`` as their
    raw pairs; any other object by its type (two runs never share objects).
    """
    if value is None or isinstance(value, bytes | str | int | float | bool):
        return value
    if isinstance(value, list | tuple):
        return [describe(item) for item in value]
    if isinstance(value, dict):
        return sorted((repr(key), describe(item)) for key, item in value.items())
    if isinstance(value, Headers):
        return [
            (name, [b"<date>" if name == b"Date" else v for v in values])
            for name, values in value.getAllRawHeaders()
        ]
    if callable(value) and getattr(value, "__name__", "") == "<lambda>":
        return "<lambda>"
    return type(value).__name__


def snapshot(request: Request) -> dict[str, object]:
    """Describe every attribute of ``request`` (its ``__dict__``), by value.

    The order in which the attributes were set is kept too, under ``<order>``.
    """
    described = {name: describe(value) for name, value in vars(request).items()}
    described["<order>"] = list(vars(request))
    return described


class Recorder:
    """Collects the events of one run, in order."""

    def __init__(self) -> None:
        self.events: Events = []

    def note(self, name: str, value: object = None) -> None:
        """Record an event."""
        self.events.append((name, describe(value)))

    def watch(self, request: Request, label: str = "") -> None:
        """Record what ``request`` looks like now, and how it finishes."""
        self.events.append((f"render{label}", snapshot(request)))

        def done(result: object) -> None:
            self.events.append((f"finished{label}", describe(result)))
            self.events.append((f"after{label}", snapshot(request)))

        def failed(reason: Any) -> None:
            self.events.append((f"failed{label}", reason.type.__name__))
            self.events.append((f"after{label}", snapshot(request)))

        request.notifyFinish().addCallbacks(done, failed)

    def call(self, name: str, action: Callable[[], object]) -> None:
        """Run ``action``; record its result, or the exception it raises."""
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                result = action()
        except Exception as error:
            self.note(name + ":raised", f"{type(error).__name__}: {error}")
        else:
            self.note(name, result)
            for warning in caught:
                self.note(name + ":warned", str(warning.message))


class Watched(Resource):
    """Wraps a resource: records the request before rendering and how it ends."""

    def __init__(self, inner: IResource, recorder: Recorder) -> None:
        super().__init__()
        self.inner = inner
        self.recorder = recorder
        self.isLeaf = getattr(inner, "isLeaf", False)

    def getChildWithDefault(self, path: bytes, request: Request) -> IResource:
        """Traverse the wrapped tree, watching the leaf."""
        return Watched(self.inner.getChildWithDefault(path, request), self.recorder)

    def render(self, request: Request) -> object:
        """Record the request, then render the wrapped resource."""
        self.recorder.watch(request)
        body = self.inner.render(request)
        self.recorder.note("rendered", body if body is NOT_DONE_YET else len(body))
        return body


class Leaf(Resource):
    """A leaf made of a render function that also gets the case's recorder."""

    isLeaf = True

    def __init__(self, render: Callable[[Request, Recorder, Clock], object]) -> None:
        super().__init__()
        self.fn = render
        self.recorder = Recorder()
        self.clock = Clock()

    def render(self, request: Request) -> object:
        """Record the request and call the function."""
        self.recorder.watch(request)
        return self.fn(request, self.recorder, self.clock)


@implementer(IPushProducer)
class PushProducer:
    """Writes a piece on every clock tick until three are written, then finishes."""

    def __init__(self, request: Request, recorder: Recorder, clock: Clock) -> None:
        self.request, self.recorder, self.clock = request, recorder, clock
        self.sent = 0
        self.paused = False
        self.stopped = False
        clock.callLater(0.1, self.tick)

    def tick(self) -> None:
        """Write the next piece (unless paused), or finish."""
        if self.stopped:
            return
        if not self.paused:
            self.sent += 1
            self.recorder.call("push-write", lambda: self.request.write(b"p" * 4000))
        if self.sent < 3:
            self.clock.callLater(0.1, self.tick)
            return
        self.recorder.call("unregister", self.request.unregisterProducer)
        self.recorder.call("finish", self.request.finish)

    def pauseProducing(self) -> None:
        """Record the pause."""
        self.paused = True
        self.recorder.note("pauseProducing")

    def resumeProducing(self) -> None:
        """Record the resume."""
        self.paused = False
        self.recorder.note("resumeProducing")

    def stopProducing(self) -> None:
        """Record the stop."""
        self.stopped = True
        self.recorder.note("stopProducing")


@implementer(IPullProducer)
class PullProducer:
    """Writes one piece each time it is asked, three in all, then finishes."""

    def __init__(self, request: Request, recorder: Recorder) -> None:
        self.request, self.recorder = request, recorder
        self.sent = 0

    def resumeProducing(self) -> None:
        """Write the next piece, or end."""
        self.recorder.note("pull-resume", self.sent)
        if self.sent < 3:
            self.sent += 1
            self.recorder.call("pull-write", lambda: self.request.write(b"q" * 3000))
            return
        self.recorder.call("unregister", self.request.unregisterProducer)
        self.recorder.call("finish", self.request.finish)

    def stopProducing(self) -> None:
        """Record the stop."""
        self.recorder.note("pull-stop")


def pushProducer(request: Request, recorder: Recorder, clock: Clock) -> object:
    """Register a push producer."""
    request.setHeader(b"Content-Type", b"text/plain")
    recorder.call(
        "register",
        lambda: request.registerProducer(PushProducer(request, recorder, clock), True),
    )
    return NOT_DONE_YET


def pullProducer(request: Request, recorder: Recorder, clock: Clock) -> object:
    """Register a pull producer."""
    recorder.call(
        "register",
        lambda: request.registerProducer(PullProducer(request, recorder), False),
    )
    return NOT_DONE_YET


def lateWrites(request: Request, recorder: Recorder, clock: Clock) -> object:
    """NOT_DONE_YET: an empty write, two pieces later, finish, then misuse."""

    def later(step: int) -> None:
        if step == 0:
            recorder.call("write-empty", lambda: request.write(b""))
        elif step < 3:
            recorder.call("write", lambda: request.write(b"late %d\n" % step))
        elif step == 3:
            recorder.call("finish", request.finish)
        else:
            recorder.call("write-after-finish", lambda: request.write(b"x"))
            recorder.call("finish-again", request.finish)
            return
        clock.callLater(0.5, later, step + 1)

    clock.callLater(0.5, later, 0)
    return NOT_DONE_YET


def clientGone(request: Request, recorder: Recorder, clock: Clock) -> object:
    """NOT_DONE_YET: a piece now; after the client is gone, a write and a finish."""
    request.write(b"first\n")

    def later() -> None:
        recorder.call("write-after-loss", lambda: request.write(b"lost\n"))
        recorder.call("finish-after-loss", request.finish)

    clock.callLater(5, later)
    return NOT_DONE_YET


def codeWithMessage(request: Request, recorder: Recorder, clock: Clock) -> object:
    """A status code with a reason of the resource's own."""
    request.setResponseCode(299, b"Fine Indeed")
    return b"custom\n"


def codeWithoutMessage(request: Request, recorder: Recorder, clock: Clock) -> object:
    """Status codes set twice, the last one without a reason (an unknown code)."""
    request.setResponseCode(201)
    request.setResponseCode(299)
    return b"unknown\n"


def noContentType(request: Request, recorder: Recorder, clock: Clock) -> object:
    """No Content-Type: the default one is added."""
    return b"<p>default type</p>"


def zeroLength(request: Request, recorder: Recorder, clock: Clock) -> object:
    """Content-Length 0 set by the resource: no default Content-Type."""
    request.setHeader(b"Content-Length", b"0")
    request.write(b"")
    request.finish()
    return NOT_DONE_YET


def noDefaultType(request: Request, recorder: Recorder, clock: Clock) -> object:
    """``defaultContentType`` turned off for this request."""
    request.defaultContentType = None
    return b"typeless"


def cacheHeaders(request: Request, recorder: Recorder, clock: Clock) -> object:
    """``setLastModified`` and ``setETag``; answers 304 to a matching request."""
    recorder.note("setLastModified", request.setLastModified(1_600_000_000))
    recorder.note("setETag", request.setETag(b'"v1"'))
    return b"cacheable\n"


def doubleLastModified(request: Request, recorder: Recorder, clock: Clock) -> object:
    """Last-Modified both as a header and through ``setLastModified``."""
    request.setHeader(b"Last-Modified", b"Mon, 01 Jan 2024 00:00:00 GMT")
    request.setLastModified(1_600_000_000)
    return b"both\n"


def headNotDoneYet(request: Request, recorder: Recorder, clock: Clock) -> object:
    """Only ``render_GET``'s behaviour, NOT_DONE_YET (a faked HEAD gets away)."""
    if request.method not in (b"GET",):
        from twisted.web.error import UnsupportedMethod

        raise UnsupportedMethod([b"GET"])
    request.write(b"streamed")

    def later() -> None:
        recorder.call("write", lambda: request.write(b" more"))
        recorder.call("finish", request.finish)

    clock.callLater(1, later)
    return NOT_DONE_YET


def headWithBody(request: Request, recorder: Recorder, clock: Clock) -> object:
    """A body returned to HEAD: twisted.web eats it and sets its length."""
    return b"eaten body"


def explicitChunked(request: Request, recorder: Recorder, clock: Clock) -> object:
    """The resource asks for chunking itself: SCGI never frames in chunks."""
    request.setHeader(b"Transfer-Encoding", b"chunked")
    request.write(b"not chunked")
    request.finish()
    return NOT_DONE_YET


def cookiesAndSession(request: Request, recorder: Recorder, clock: Clock) -> object:
    """A cookie and a session, then a redirect."""
    request.addCookie(b"k", b"v", path=b"/")
    session = request.getSession()
    recorder.note("session-uid-length", len(session.uid))
    request.redirect(b"/elsewhere")
    return b""


def failing(request: Request, recorder: Recorder, clock: Clock) -> object:
    """Raise after setting a header: processingFailed answers."""
    request.setHeader(b"X-Before", b"1")
    raise ValueError("the differential test's failing resource")


def failingLater(request: Request, recorder: Recorder, clock: Clock) -> object:
    """NOT_DONE_YET, then ``processingFailed`` from a callback."""

    def later() -> None:
        from twisted.python.failure import Failure

        recorder.call(
            "processingFailed",
            lambda: request.processingFailed(Failure(KeyError("late"))),
        )

    clock.callLater(1, later)
    return NOT_DONE_YET


def notBytes(request: Request, recorder: Recorder, clock: Clock) -> object:
    """Render returns neither bytes nor NOT_DONE_YET: twisted.web's 500 page."""
    return 42


class _OwnHeaders(Headers):
    """A ``Headers`` subclass a resource may put in ``responseHeaders``."""


def headerForms(request: Request, recorder: Recorder, clock: Clock) -> object:
    """``setHeader`` with every form of name and value ``Headers`` treats apart.

    A lowercase name and names of special capitalization (canonicalized), str
    names and values (encoded), values with line breaks (sanitized), an empty
    value, a replaced header (it keeps its place), a name that is no token
    (refused), and ``getRawHeaders``/``setRawHeaders`` around them; with
    ``?nul=1``, a value holding NUL.
    """
    calls: list[tuple[object, object]] = [
        (b"x-lower", b"1"),
        (b"etag", b'"e"'),
        (b"WWW-authenticate", b"Basic"),
        ("X-Str", "caf\u00e9"),
        (b"X-Mixed", "str value"),
        ("X-Mixed-2", b"bytes value"),
        (b"X-Break", b"a\r\nb\nc\rd"),
        (b"X-Trailing", b"end\n"),
        (b"X-Empty", b""),
        (b"Server", b"Replaced/1.0"),
        (b"bad name", b"v"),
        (b"", b"v"),
        ("bad\u00e9name", "v"),
        (b"x-lower", b"2"),
    ]
    if request.args.get(b"nul"):
        # The head then cannot be sent: both answer 500 instead.
        calls.append((b"X-Nul", b"a\x00b\tc"))
    for name, value in calls:
        recorder.call(
            f"setHeader {name!r}",
            partial(request.setHeader, name, value),
        )
    recorder.note("headers", request.responseHeaders)
    recorder.note("raw", request.responseHeaders.getRawHeaders(b"X-LOWER"))
    request.responseHeaders.setRawHeaders(b"Content-Type", [])
    return b"forms"


def emptyLength(request: Request, recorder: Recorder, clock: Clock) -> object:
    """Content-Length and Content-Type set to no value: both count as absent."""
    request.responseHeaders.setRawHeaders(b"Content-Length", [])
    request.responseHeaders.setRawHeaders(b"Content-Type", [])
    request.write(b"no length")
    request.finish()
    return NOT_DONE_YET


def strDefaultType(request: Request, recorder: Recorder, clock: Clock) -> object:
    """A str ``defaultContentType`` (encoded) and one with a line break."""
    request.defaultContentType = "text/plain; charset=\u00e9"  # type: ignore[assignment]
    if request.args.get(b"break"):
        request.defaultContentType = b"text/plain;\r\n x=1"
    return b"typed"


def ownHeaders(request: Request, recorder: Recorder, clock: Clock) -> object:
    """``responseHeaders`` replaced by a ``Headers`` subclass, then set through."""
    own = _OwnHeaders()
    own.setRawHeaders(b"x-own", [b"1"])
    request.responseHeaders = own
    request.setHeader(b"x-after", b"2")
    recorder.note("headers", request.responseHeaders)
    return b"own"


def freshHeaders(request: Request, recorder: Recorder, clock: Clock) -> object:
    """``responseHeaders`` replaced by a new stock ``Headers``: it is the one sent."""
    request.responseHeaders = Headers({b"x-fresh": [b"1"]})
    request.setHeader(b"Content-Type", b"text/fresh")
    return b"fresh"


def gzipStream(request: Request, recorder: Recorder, clock: Clock) -> object:
    """Through a gzip encoder (see :data:`SPECIAL`): pieces written later."""
    request.setHeader(b"Content-Type", b"text/plain")
    request.setHeader(b"Content-Length", b"999")

    def later(step: int) -> None:
        if step < 3:
            recorder.call("write", lambda: request.write(b"gzip me %d " % step * 50))
            clock.callLater(0.5, later, step + 1)
        else:
            recorder.call("finish", request.finish)

    clock.callLater(0.5, later, 0)
    return NOT_DONE_YET


@dataclass(frozen=True)
class Case:
    """One request, and what the test does while its response is pending.

    :ivar label: its name.
    :ivar method: the method.
    :ivar path: the path and query.
    :ivar headers: the request headers (``Host`` added).
    :ivar body: the request body.
    :ivar leaf: the special leaf, or ``None`` for the twin tree.
    :ivar gzip: wrap the leaf in a gzip encoder.
    :ivar steps: seconds to advance the clocks, in turn; ``"gone"`` makes the
        frontend disconnect.
    :ivar variables: SCGI variables to set.
    :ivar reprInBody: the response shows the request's ``repr``, which names its
        class: the lengths differ by the name's.
    """

    label: str
    method: str
    path: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    leaf: Callable[[Request, Recorder, Clock], object] | None = None
    gzip: bool = False
    steps: tuple[float | str, ...] = field(default=(0.5,) * 8)
    variables: tuple[tuple[str, str], ...] = ()
    reprInBody: bool = False


def _twinCase(request: TwinRequest) -> Case:
    """The in-memory form of a twin request (``/wsgi`` runs without threads)."""
    request = resolve(request)
    return Case(
        "twin: " + request.label,
        request.method,
        request.target,
        request.headers,
        request.body or b"",
    )


_GZIP = (("Accept-Encoding", "gzip"),)

SPECIAL: tuple[Case, ...] = (
    Case("push producer", "GET", "/x", leaf=pushProducer),
    Case("pull producer", "GET", "/x", leaf=pullProducer),
    Case("late writes", "GET", "/x", leaf=lateWrites),
    Case("client gone", "GET", "/x", leaf=clientGone, steps=(1, "gone", 10)),
    Case("HEAD client gone", "HEAD", "/x", leaf=clientGone, steps=("gone", 10)),
    Case("code with message", "GET", "/x", leaf=codeWithMessage),
    Case("code without message", "GET", "/x", leaf=codeWithoutMessage),
    Case("default content type", "GET", "/x", leaf=noContentType),
    Case("Content-Length 0", "GET", "/x", leaf=zeroLength),
    Case("no default type", "GET", "/x", leaf=noDefaultType),
    Case("Last-Modified and ETag", "GET", "/x", leaf=cacheHeaders),
    Case(
        "conditional 304",
        "GET",
        "/x",
        (("If-None-Match", '"v1"'),),
        leaf=cacheHeaders,
    ),
    Case("Last-Modified twice", "GET", "/x", leaf=doubleLastModified),
    Case("HEAD faked, NOT_DONE_YET", "HEAD", "/x", leaf=headNotDoneYet),
    Case("GET NOT_DONE_YET", "GET", "/x", leaf=headNotDoneYet),
    Case("HEAD with a body", "HEAD", "/x", leaf=headWithBody),
    Case("HEAD 404", "HEAD", "/nothing/here"),
    Case("explicit chunked", "GET", "/x", leaf=explicitChunked),
    Case("cookie, session, redirect", "GET", "/x", leaf=cookiesAndSession),
    Case("processingFailed", "GET", "/x", leaf=failing),
    Case("processingFailed later", "GET", "/x", leaf=failingLater),
    Case("render returns no bytes", "GET", "/x", leaf=notBytes, reprInBody=True),
    Case("gzip stream", "GET", "/x", _GZIP, leaf=gzipStream, gzip=True),
    Case("gzip HEAD", "HEAD", "/x", _GZIP, leaf=headWithBody, gzip=True),
    Case("gzip not accepted", "GET", "/x", leaf=noContentType, gzip=True),
    Case("gzip push producer", "GET", "/x", _GZIP, leaf=pushProducer, gzip=True),
    Case("gzip client gone", "GET", "/x", _GZIP, leaf=clientGone, gzip=True),
    Case("405", "DELETE", "/methods"),
    Case("HEAD on GET", "HEAD", "/methods"),
    Case("404", "GET", "/missing/x"),
    Case("percent path", "GET", "/seen/a%2Fb/%7Ex?y=%20"),
    Case("empty query", "GET", "/seen/q?"),
    Case("two question marks", "GET", "/seen/q?a=1?b=2"),
    Case("question mark alone", "GET", "/?"),
    Case("OPTIONS *", "OPTIONS", "/", variables=(("REQUEST_URI", "*"),)),
    Case("GET *", "GET", "/", variables=(("REQUEST_URI", "*"),)),
    Case("setHeader forms", "GET", "/x", leaf=headerForms),
    Case(
        "setHeader forms, HTTP/1.0",
        "GET",
        "/x",
        leaf=headerForms,
        variables=(("SERVER_PROTOCOL", "HTTP/1.0"),),
    ),
    Case("setHeader NUL", "GET", "/x?nul=1", leaf=headerForms),
    Case("empty Content-Length", "GET", "/x", leaf=emptyLength),
    Case("str default type", "GET", "/x", leaf=strDefaultType),
    Case("default type with a break", "GET", "/x?break=1", leaf=strDefaultType),
    Case("Headers subclass", "GET", "/x", leaf=ownHeaders),
    Case("Headers replaced", "GET", "/x", leaf=freshHeaders),
)
"""The cases beyond the twin corpus."""

CASES: tuple[Case, ...] = tuple(_twinCase(r) for r in CORPUS) + SPECIAL
"""Every case of the differential test."""


class _SyncThreads:
    """A thread pool and reactor stand-in that run ``/wsgi`` synchronously."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def callInThread(self, f: Callable[..., object], *args: object) -> None:
        """Run ``f`` now."""
        f(*args)

    def callFromThread(self, f: Callable[..., object], *args: object) -> None:
        """Run ``f`` now."""
        f(*args)

    def __getattr__(self, name: str) -> Any:
        """Everything else is the clock's."""
        return getattr(self.clock, name)


@dataclass
class Run:
    """What one run of a case produced."""

    raw: bytes
    events: Events
    finished: bool
    date: bytes | None
    logged: list[str]
    log: list[tuple[str, str, str]]


_DATE = re.compile(rb"\r\nDate: ([^\r]*)\r\n")
_REPR = re.compile(rb"&lt;(?:SCGI)?Request at 0x[0-9a-f]+")
_OBJECT = re.compile(rb" object at 0x[0-9a-f]+")


class DifferentialTests(SynchronousTestCase):
    """``SCGIRequest`` gives every case exactly what the stock ``Request`` gives."""

    def setUp(self) -> None:
        self.files = writeTwinFiles(Path(tempfile.mkdtemp(prefix="scgi-request-")))
        self.addCleanup(shutil.rmtree, self.files.parent, True)

    def runCase(self, case: Case, factory: type[Request]) -> Run:
        """Run ``case`` with ``factory`` as the site's request factory."""
        clock = Clock()
        clock.advance(T0)
        recorder = Recorder()
        if case.leaf is None:
            threads = _SyncThreads(clock)
            tree: IResource = buildTwinTree(
                threads,  # type: ignore[arg-type]
                threads,  # type: ignore[arg-type]
                self.files,
            )
            root: IResource = Watched(tree, recorder)
        else:
            leaf = Leaf(case.leaf)
            leaf.recorder, leaf.clock = recorder, clock
            inner: IResource = leaf
            if case.gzip:
                inner = EncodingResourceWrapper(leaf, [GzipEncoderFactory()])
            holder = Resource()
            holder.putChild(b"x", inner)
            root = holder
        client = SCGITestClient(root, clock=clock, requestFactory=factory)
        log: list[tuple[str, str, str]] = []

        @provider(ILogObserver)
        def observe(event: LogEvent) -> None:
            level = event.get("log_level")
            log.append(
                (
                    str(event.get("log_namespace")),
                    getattr(level, "name", str(level)),
                    str(event.get("log_format")),
                )
            )

        # A Deferred that failed unhandled is logged when it is collected: collect
        # what earlier runs left before observing, and this run's own before the
        # observer goes, so that each run's log is its own.
        gc.collect()
        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pending: PendingResponse = client.start(
                case.method,
                case.path,
                headers=[("Host", HOST), *case.headers],
                body=case.body,
                variables=case.variables,
            )
            for step in case.steps:
                if step == "gone":
                    pending.disconnect()
                else:
                    assert isinstance(step, int | float)
                    clock.advance(step)
        for session in list(client.site.sessions.values()):
            session.expire()
        raw, finished = pending.raw, pending.finished
        del pending, client
        gc.collect()
        globalLogPublisher.removeObserver(observe)
        match = _DATE.search(raw)
        date = match.group(1) if match else None
        raw = _DATE.sub(b"\r\nDate: <date>\r\n", raw)
        # Random values: session ids and multipart boundaries.
        raw = re.sub(rb"(TWISTED_SESSION[^=]*=)[0-9a-f]+", rb"\1<id>", raw)
        boundary = re.search(rb'boundary="?([0-9a-f]+)', raw)
        token = boundary.group(1) if boundary else None
        if token:
            raw = raw.replace(token, b"<boundary>")
        raw = _REPR.sub(rb"&lt;<request> at 0x<id>", raw)
        raw = _OBJECT.sub(rb" object at 0x<id>", raw)
        events = [(name, _redact(value, token)) for name, value in recorder.events]
        if case.reprInBody:
            # The page shows the request's repr, which names its class: the
            # one thing a subclass cannot share; the lengths follow from it.
            raw = re.sub(rb"Content-Length: \d+", b"Content-Length: <n>", raw)
            events = [(name, _redact(value, None, True)) for name, value in events]
        logged = [type(e).__name__ for e in self.flushLoggedErrors()] + [
            str(w.message) for w in caught
        ]
        return Run(raw, events, finished, date, logged, log)

    def test_cases(self) -> None:
        """Every case: the same bytes, events, end, log events and errors both ways.

        Log events are compared by namespace, level and format.

        The ``Date`` of the stock run is the wall clock's at the time, and the
        ``SCGIRequest`` one is the site clock's.
        """
        problems = []
        for case in CASES:
            before = int(time.time())
            stock = self.runCase(case, Request)
            after = time.time()
            lean = self.runCase(case, SCGIRequest)
            if stock.date is not None:
                seconds = stringToDatetime(stock.date)
                if not before <= seconds <= after:
                    problems.append(f"{case.label}: stock Date {stock.date!r}")
                if lean.date != datetimeToString(int(T0)):
                    problems.append(f"{case.label}: SCGIRequest Date {lean.date!r}")
            elif lean.date is not None:
                problems.append(f"{case.label}: a Date only from SCGIRequest")
            for what in ("raw", "events", "finished", "logged", "log"):
                want, got = getattr(stock, what), getattr(lean, what)
                if want != got:
                    problems.append(
                        f"{case.label}: {what}\n  stock {want!r}\n  lean  {got!r}"
                    )
        self.assertEqual(problems, [], "\n".join(problems))

    def test_stockFallback(self) -> None:
        """Where Twisted's ``Request`` keeps other state, the stock paths serve.

        With the lean paths turned off (as ``_internals.REQUEST_STATE`` does when
        its probe fails), a few cases still give what the stock ``Request`` gives.
        """
        self.patch(_request, "_LEAN", False)
        labels = {"late writes", "HEAD with a body", "gzip stream", "OPTIONS *"}
        for case in CASES:
            if case.label in labels or case.label == "twin: urlencoded form":
                stock = self.runCase(case, Request)
                lean = self.runCase(case, SCGIRequest)
                self.assertEqual(stock.raw, lean.raw, case.label)
                self.assertEqual(stock.events, lean.events, case.label)

    def test_publicHeaders(self) -> None:
        """Without the header store, the public ``Headers`` methods give the same.

        With ``_internals.RESPONSE_RAW`` off (as when its probe fails), every case
        beyond the twin corpus (the header forms among them) still gives what
        the stock ``Request`` gives.
        """
        self.patch(_internals, "RESPONSE_RAW", False)
        for case in SPECIAL:
            stock = self.runCase(case, Request)
            lean = self.runCase(case, SCGIRequest)
            self.assertEqual(stock.raw, lean.raw, case.label)
            self.assertEqual(stock.events, lean.events, case.label)

    def test_leanPathsApply(self) -> None:
        """On the Twisted this was checked against, the lean paths are taken.

        The probe of ``_internals`` (``REQUEST_STATE``) finds the state the lean
        paths share with the stock methods; on another Twisted the differential
        test above is what proves the result (lean or stock) the same.
        """
        if twisted.__version__ not in CHECKED_TWISTED:
            raise SkipTest(f"the lean paths were checked on {CHECKED_TWISTED}")
        self.assertTrue(_request._LEAN)

    def test_casesExercised(self) -> None:
        """The cases reach what they are about: the comparison is not vacuous.

        The push producer is paused and resumed or writes, the pull producer is
        asked for more, the client-gone case sees its Deferred fail, the twin
        corpus renders through :class:`SCGIRequest` with the body bytes.
        """
        byLabel = {case.label: case for case in CASES}
        push = self.runCase(byLabel["push producer"], SCGIRequest)
        self.assertEqual([name for name, _ in push.events].count("push-write"), 3)
        self.assertTrue(push.finished)
        self.assertEqual(push.raw.count(b"p" * 4000), 3)
        pull = self.runCase(byLabel["pull producer"], SCGIRequest)
        self.assertIn(("pull-resume", 3), pull.events)
        self.assertEqual(pull.raw.count(b"q" * 3000), 3)
        gone = self.runCase(byLabel["client gone"], SCGIRequest)
        self.assertIn(("failed", "ConnectionDone"), gone.events)
        self.assertIn(
            ("finish-after-loss:raised", _finishAfterLoss()),
            gone.events,
        )
        late = self.runCase(byLabel["late writes"], SCGIRequest)
        self.assertIn(("finished", None), late.events)
        self.assertIn(b"late 1\nlate 2\n", late.raw)
        stream = self.runCase(byLabel["twin: NOT_DONE_YET stream"], SCGIRequest)
        self.assertTrue(stream.raw.endswith(b"piece 0\npiece 1\npiece 2\n"))
        gzipped = self.runCase(byLabel["gzip stream"], SCGIRequest)
        self.assertIn(b"Content-Encoding: gzip", gzipped.raw)
        render = dict(stream.events)["render"]
        assert isinstance(render, dict)
        self.assertEqual(render["method"], b"GET")

    def test_sameAttributes(self) -> None:
        """A request of either class has the same attributes once finished."""
        case = next(
            c for c in CASES if c.label == "twin: query repeated and empty keys"
        )
        stock = self.runCase(case, Request)
        lean = self.runCase(case, SCGIRequest)
        stockAfter = dict(stock.events)["after"]
        leanAfter = dict(lean.events)["after"]
        assert isinstance(stockAfter, dict) and isinstance(leanAfter, dict)
        self.assertEqual(sorted(stockAfter), sorted(leanAfter))
        self.assertIn("responseHeaders", leanAfter)


def _finishAfterLoss() -> str:
    """The message of ``Request.finish`` on a request whose connection is lost."""
    return (
        "RuntimeError: Request.finish called on a request after its connection "
        "was lost; use Request.notifyFinish to keep track of this."
    )


def _redact(value: object, boundary: bytes | None, lengths: bool = False) -> object:
    """Replace the random parts of a recorded value (session ids, boundaries).

    :param lengths: also replace lengths (``sentLength``, ``Content-Length``).
    """
    if isinstance(value, bytes):
        value = re.sub(rb"(TWISTED_SESSION[^=]*=)[0-9a-f]+", rb"\1<id>", value)
        if boundary:
            value = value.replace(boundary, b"<boundary>")
        return re.sub(rb"^[0-9a-f]{32}$", b"<id>", value)
    if isinstance(value, list | tuple):
        if lengths and len(value) == 2 and value[0] in (b"Content-Length",):
            return (value[0], ["<n>"])
        items = [_redact(item, boundary, lengths) for item in value]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, dict):
        return {
            key: "<n>"
            if lengths and key == "sentLength"
            else _redact(item, boundary, lengths)
            for key, item in value.items()
        }
    return value


class Hello(Resource):
    """``Hello, world!`` with its own Content-Type, as the benchmark's /hello."""

    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        """Answer the greeting."""
        request.setHeader(b"Content-Type", b"text/plain")
        return b"Hello, world!"


class StockSubclass(Request):
    """A site's own stock ``Request`` subclass: it counts its ``process`` calls."""

    processed = 0

    def process(self) -> None:
        """Count, then process as the stock ``Request`` does."""
        StockSubclass.processed += 1
        super().process()


class FactoryTests(SynchronousTestCase):
    """Which class serves a site's requests, and how ``SCGIRequest`` dates them."""

    def serve(self, site: SCGISite | Site, clock: Clock) -> tuple[Request, bytes]:
        """Send ``GET /hello``; return the request that served it and the bytes."""
        seen: list[Request] = []
        original = site.requestFactory

        def factory(channel: object) -> Request:
            request: Request = original(channel)
            seen.append(request)
            return request

        client = SCGITestClient(site, clock=clock)
        client.site.requestFactory = cast(Any, factory)
        response = client.get("/hello")
        (request,) = seen
        return request, response.raw

    def test_default(self) -> None:
        """``SCGISite`` builds an ``SCGIRequest``, a public ``server.Request``."""
        self.assertIs(SCGISite.requestFactory, SCGIRequest)
        self.assertTrue(issubclass(SCGIRequest, server.Request))
        root = Resource()
        root.putChild(b"hello", Hello())
        request, raw = self.serve(SCGISite(root), Clock())
        self.assertIs(type(request), SCGIRequest)
        self.assertTrue(raw.endswith(b"\r\n\r\nHello, world!"), raw)

    def test_stockSubclass(self) -> None:
        """A site's own stock subclass serves its requests through the stock path.

        Its ``process`` runs (the count moves), its ``write`` and ``finish`` are
        the stock ones, and the response is complete.
        """
        root = Resource()
        root.putChild(b"hello", Hello())
        before = StockSubclass.processed
        request, raw = self.serve(SCGISite(root, requestFactory=StockSubclass), Clock())
        self.assertIs(type(request), StockSubclass)
        self.assertNotIsInstance(request, SCGIRequest)
        self.assertEqual(StockSubclass.processed, before + 1)
        self.assertIs(type(request).write, server.Request.write)
        self.assertIs(type(request).finish, server.Request.finish)
        self.assertTrue(raw.startswith(b"Status: 200 OK\r\n"), raw)
        self.assertTrue(raw.endswith(b"\r\n\r\nHello, world!"), raw)

    def test_sharedSiteKeepsItsFactory(self) -> None:
        """``SCGISite.sharing`` a plain ``Site`` keeps that site's stock ``Request``."""
        root = Resource()
        root.putChild(b"hello", Hello())
        shared = SCGISite.sharing(Site(root))
        self.assertIs(shared.requestFactory, Request)
        request, raw = self.serve(shared, Clock())
        self.assertIs(type(request), Request)
        self.assertTrue(raw.endswith(b"Hello, world!"))

    def test_noChunking(self) -> None:
        """``SCGIRequest`` never turns chunking on: no header, ``chunked`` stays 0.

        A streamed ``HTTP/1.1`` response without a length: the stock ``Request``
        would set ``Transfer-Encoding: chunked`` for the channel to remove.
        """
        heads: list[list[tuple[bytes, list[bytes]]]] = []
        chunked: list[int] = []

        class Streamed(Resource):
            isLeaf = True

            def render_GET(self, request: Request) -> object:
                original = request.channel.writeHeaders

                def writeHeaders(*args: Any) -> None:
                    heads.append([(k, list(v)) for k, v in args[3].getAllRawHeaders()])
                    chunked.append(request.chunked)
                    original(*args)

                channel: Any = request.channel
                channel.writeHeaders = writeHeaders
                request.write(b"a")
                request.write(b"b")
                request.finish()
                return NOT_DONE_YET

        response = SCGITestClient(Streamed()).get("/")
        self.assertEqual(response.body, b"ab")
        self.assertEqual(chunked, [0])
        (head,) = heads
        self.assertNotIn(b"Transfer-Encoding", dict(head))

    def test_dateFromTheSiteClock(self) -> None:
        """``Date`` is the site clock's second, formatted once per second.

        Within a second the same value object is reused; the next second gives
        the next value.  A stock site on the same clock still reads the wall clock
        (twisted.web itself is not changed).
        """
        clock = Clock()
        clock.advance(1_000_000_000.1)
        root = Resource()
        root.putChild(b"hello", Hello())
        site = SCGISite(root, reactor=clock)
        dates: list[bytes] = []
        for step in (0, 0.5, 0.3, 0.2):
            clock.advance(step)
            request, raw = self.serve(site, clock)
            value = request.responseHeaders.getRawHeaders(b"Date")
            assert value is not None
            dates.append(value[0])
            self.assertIn(b"\r\nDate: " + value[0] + b"\r\n", raw)
        first = datetimeToString(1_000_000_000)
        second = datetimeToString(1_000_000_001)
        self.assertEqual(dates, [first, first, first, second])
        self.assertIs(dates[0], dates[2])
        stock, _ = self.serve(
            SCGISite(root, reactor=clock, requestFactory=Request), clock
        )
        stockDate = stock.responseHeaders.getRawHeaders(b"Date")
        assert stockDate is not None
        self.assertGreater(stringToDatetime(stockDate[0]), 1_700_000_000)
