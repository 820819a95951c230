"""The seam to Twisted's private names: each use gives what its public fallback gives.

Every function of :mod:`scgi_twisted._internals` is run here twice on the installed
Twisted: once on the private name, once with the module's switch for it turned off
(the fallback a Twisted without that name would take), and both results are compared.

Checked against Twisted 25.5.0 (the oldest ``pyproject.toml`` allows, on Python 3.10)
and Twisted 26.10.0 (the newest, on Python 3.11 and 3.13): the matrix corners of
``noxfile.py`` run this module on both.  :class:`PrivatePathsTests` fails on a Twisted
where a private name is gone, so that a new release is noticed (the package then
still works, on the fallback).

:class:`SeamTests` keeps every other module of the package off Twisted's private
names, with :mod:`ast` as ``tests/test_layers.py`` does.
"""

from __future__ import annotations

import ast
import inspect
import os
import socket
import tempfile
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from twisted.internet import tcp, unix
from twisted.internet.endpoints import (
    HostnameEndpoint,
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    UNIXClientEndpoint,
    UNIXServerEndpoint,
    serverFromString,
)
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Factory
from twisted.internet.testing import MemoryReactor
from twisted.logger import ILogObserver, LogLevel, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.http_headers import Headers
from twisted.web.resource import Resource
from twisted.web.server import Request, Site
from twisted.web.test.requesthelper import DummyChannel

import scgi_twisted
from scgi_twisted import _internals
from scgi_twisted._clientendpoint import describeEndpoint
from scgi_twisted._internals import (
    addRawHeaders,
    clientEndpointAddress,
    closeWithoutShutdown,
    headerKey,
    portFromListeningDescriptor,
    receiveRequest,
    responseHeaderStore,
    serverEndpointAddress,
    siteParsesForms,
    unixServerEndpointPath,
)

CHECKED_VERSIONS = ("25.5.0", "26.10.0")
"""The Twisted versions this module was run on, each path both ways."""


@contextmanager
def switchedOff(name: str) -> Iterator[None]:
    """Turn one of ``_internals``' switches off for the block: its fallback runs."""
    before = getattr(_internals, name)
    setattr(_internals, name, False)
    try:
        yield
    finally:
        setattr(_internals, name, before)


class PrivatePathsTests(SynchronousTestCase):
    """On the installed Twisted every private name is there, so no fallback runs."""

    def test_everyPrivatePathIsLive(self) -> None:
        """Each switch of ``_internals`` is on: checked on 25.5.0 and 26.10.0.

        A failure names the private name a new Twisted changed: the package works
        on its fallback, and ``docs/internals.md`` and this module need updating.
        """
        for name in (
            "RAW_HEADERS",
            "FORM_FLAG",
            "ADOPT_PRIVATE",
            "SHUTDOWN_FLAG",
            "PRIVATE_ENDPOINTS",
            "REQUEST_STATE",
            "RESPONSE_RAW",
        ):
            self.assertIs(getattr(_internals, name), True, name)
        self.assertEqual(len(CHECKED_VERSIONS), 2)


HEADER_CASES: list[tuple[list[tuple[bytes, bytes]], list[tuple[bytes, bytes]]]] = [
    ([], [(b"host", b"example.test")]),
    ([], [(b"x-a", b"1"), (b"x-a", b"2"), (b"Content-MD5", b"m"), (b"te", b"")]),
    ([(b"x-a", b"before")], [(b"X-A", b"after"), (b"etag", b'"e"')]),
    ([(b"dnt", b"1")], [(b"host", b"h"), (b"cookie", b"a=1"), (b"cookie", b"b=2")]),
]
"""Headers already in a ``Headers``, and the headers then added."""


class AddRawHeadersTests(SynchronousTestCase):
    """``addRawHeaders`` (``Headers._rawHeaders``), both ways, as ``addRawHeader``."""

    def filled(self, before: list[tuple[bytes, bytes]], added: Any) -> list[Any]:
        """Return the raw headers after ``addRawHeaders``, in order."""
        headers = Headers()
        for name, value in before:
            headers.addRawHeader(name, value)
        addRawHeaders(headers, added)
        return list(headers.getAllRawHeaders())

    def test_bothWaysAsAddRawHeader(self) -> None:
        """Private path and fallback equal ``addRawHeader`` (25.5.0, 26.10.0)."""
        for before, added in HEADER_CASES:
            expected = Headers()
            for name, value in before + added:
                expected.addRawHeader(name, value)
            wanted = list(expected.getAllRawHeaders())
            self.assertEqual(self.filled(before, added), wanted)
            with switchedOff("RAW_HEADERS"):
                self.assertEqual(self.filled(before, added), wanted)

    def test_keysAreHeadersOwn(self) -> None:
        """``headerKey`` gives the key ``Headers`` itself files a name under."""
        for name in (b"Host", b"content-md5", b"X-Forwarded-For", b"te"):
            probe = Headers()
            probe.addRawHeader(name, b"v")
            self.assertEqual(probe.getRawHeaders(headerKey(name)), [b"v"], name)

    def test_cacheIsBounded(self) -> None:
        """The key caches stay within their size, and a name past them still lands.

        Header names come from the peer: many distinct ones must not grow memory.
        The key cache is a ``functools.lru_cache``; ``addRawHeaders``' own dict of
        keys keeps no more than as many names.
        """
        info = headerKey.cache_info()
        self.assertEqual(info.maxsize, _internals.HEADER_KEYS_CACHED)
        filled = Headers()
        names = [b"x-%d" % n for n in range(_internals.HEADER_KEYS_CACHED + 50)]
        addRawHeaders(filled, [(name, b"v") for name in names])
        self.assertEqual(headerKey.cache_info().currsize, info.maxsize)
        self.assertLessEqual(len(_internals._headerKeys), _internals.HEADER_KEYS_CACHED)
        for name in names:
            self.assertEqual(filled.getRawHeaders(name), [b"v"], name)


class _Received(Request):
    """A stock request that records the form flag it was received with."""

    seen: bool | None = None

    def process(self) -> None:
        """Record instead of rendering (``requestReceived`` calls this last)."""
        self.seen = self._parsePOSTFormSubmission


def received(contentType: bytes, body: bytes, method: bytes = b"POST") -> _Received:
    """Return a request after ``receiveRequest`` with this Content-Type and body."""
    request = _Received(DummyChannel(), False)
    request.requestHeaders.setRawHeaders(b"content-type", [contentType])
    request.requestHeaders.setRawHeaders(b"content-length", [b"%d" % len(body)])
    request.gotLength(len(body))
    request.handleContentChunk(body)
    receiveRequest(request, method, b"/path?q=1", b"HTTP/1.1")
    return request


FORM_CASES = [
    (b"application/json", b'{"a": 1}', b"POST"),
    (b"application/x-www-form-urlencoded", b"a=1&b=2", b"POST"),
    (b"APPLICATION/X-WWW-FORM-URLENCODED; charset=utf-8", b"a=1", b"POST"),
    (b"multipart/form-data; boundary=X", b"--X\r\n", b"POST"),
    (b"text/plain", b"a=1", b"PUT"),
]
"""Content-Type, body and method of requests received both ways."""


class ReceiveRequestTests(SynchronousTestCase):
    """``receiveRequest`` (``Request._parsePOSTFormSubmission``), both ways."""

    def test_sameRequestBothWays(self) -> None:
        """Arguments, body and the flag left behind are the same both ways.

        Checked on 25.5.0 and 26.10.0: a JSON body is received with the flag off,
        a form with it on, and the flag is on again afterwards.
        """
        for contentType, body, method in FORM_CASES:
            private = received(contentType, body, method)
            with switchedOff("FORM_FLAG"):
                fallback = received(contentType, body, method)
            for request in (private, fallback):
                self.assertEqual(request.args, private.args, contentType)
                self.assertTrue(request._parsePOSTFormSubmission)
                assert request.content is not None
                request.content.seek(0)
                self.assertEqual(request.content.read(), body)
            self.assertIs(fallback.seen, True)
            skipped = method == b"POST" and b"form" not in contentType.lower()
            self.assertIs(private.seen, not skipped, contentType)
        self.assertEqual(
            received(b"application/x-www-form-urlencoded", b"a=1").args,
            {b"q": [b"1"], b"a": [b"1"]},
        )

    def test_siteSetting(self) -> None:
        """``siteParsesForms`` reads the site's setting; the fallback is the default."""
        root = Resource()
        self.assertIs(siteParsesForms(Site(root)), True)
        self.assertIs(siteParsesForms(Site(root, parsePOSTFormSubmission=False)), False)
        self.assertIs(siteParsesForms(object()), True)


SERVER_CASES = [
    ("tcp:4000", ("", 4000)),
    ("tcp:4000:interface=127.0.0.1", ("127.0.0.1", 4000)),
    ("tcp:port=4001:interface=\\:\\:1", ("::1", 4001)),
    ("tcp:4002:192.0.2.1", ("192.0.2.1", 4002)),
    ("tcp:99999", ("", 99999)),
    ("tcp6:4003", ("::", 4003)),
    ("tcp6:4004:interface=\\:\\:1", ("::1", 4004)),
    ("tcp6:4005:50:\\:\\:1", ("::1", 4005)),
    ("unix:/run/app.sock", None),
]
"""Server endpoint strings and the ``(interface, port)`` they listen on."""


class EndpointTests(SynchronousTestCase):
    """Where an endpoint listens or connects (endpoints' ``_port`` and friends)."""

    def test_serverBothWays(self) -> None:
        """Attributes and the parsed string agree, for each case (25.5.0, 26.10.0)."""
        for description, expected in SERVER_CASES:
            endpoint = serverFromString(MemoryReactor(), description)
            self.assertEqual(
                serverEndpointAddress(endpoint, description), expected, description
            )
            with switchedOff("PRIVATE_ENDPOINTS"):
                self.assertEqual(
                    serverEndpointAddress(endpoint, description), expected, description
                )

    def test_unixPathBothWays(self) -> None:
        """The unix path, from the attribute and from the string, is the same."""
        for description, expected in [
            ("unix:/run/app.sock", "/run/app.sock"),
            ("unix:address=/run/b.sock:mode=660", "/run/b.sock"),
            ("tcp:4000", None),
        ]:
            endpoint = serverFromString(MemoryReactor(), description)
            if not isinstance(endpoint, UNIXServerEndpoint):
                self.assertIsNone(expected)
                continue
            self.assertEqual(unixServerEndpointPath(endpoint, description), expected)
            with switchedOff("PRIVATE_ENDPOINTS"):
                self.assertEqual(
                    unixServerEndpointPath(endpoint, description), expected
                )

    def test_client(self) -> None:
        """Client endpoints give their address; the fallback names them by ``repr``.

        Only error messages use it (checked on 25.5.0 and 26.10.0).
        """
        reactor = MemoryReactor()
        cases: list[tuple[Any, Any, str]] = [
            (
                HostnameEndpoint(reactor, b"example.test", 4000),
                ("example.test", 4000),
                "example.test:4000",
            ),
            (
                TCP4ClientEndpoint(reactor, "127.0.0.1", 1),
                ("127.0.0.1", 1),
                "127.0.0.1:1",
            ),
            (TCP6ClientEndpoint(reactor, "::1", 2), ("::1", 2), "[::1]:2"),
            (
                UNIXClientEndpoint(reactor, "/run/a.sock"),
                "/run/a.sock",
                "unix:/run/a.sock",
            ),
        ]
        for endpoint, address, description in cases:
            self.assertEqual(clientEndpointAddress(endpoint), address)
            self.assertEqual(describeEndpoint(endpoint), description)
            with switchedOff("PRIVATE_ENDPOINTS"):
                self.assertIsNone(clientEndpointAddress(endpoint))
                self.assertEqual(describeEndpoint(endpoint), repr(endpoint))


class _KeptPort(unix.Port):
    """A unix port that leaves its file alone when it stops (as ``_systemd``'s)."""

    def connectionLost(self, reason: Failure) -> None:
        """Close, without removing the file."""
        tcp.Port.connectionLost(self, reason)


class _AdoptingReactor:
    """A reactor that records ``adoptStreamPort`` (``MemoryReactor``'s refuses unix)."""

    def __init__(self) -> None:
        """Record nothing yet."""
        self.adoptedPorts: list[tuple[int, int, object]] = []

    def adoptStreamPort(self, fileno: int, family: int, factory: object) -> object:
        """Record the call; return a stand-in port."""
        self.adoptedPorts.append((fileno, family, factory))
        return object()


class ListeningSocketTests(SynchronousTestCase):
    """Adopting a shared unix socket, and closing only our descriptor of it."""

    def setUp(self) -> None:
        """Listen on a unix socket in a new directory."""
        directory = tempfile.mkdtemp()
        self.path = os.path.join(directory, "s")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(8)
        self.listener.setblocking(False)
        self.addCleanup(self.listener.close)
        self.addCleanup(os.rmdir, directory)
        self.addCleanup(os.unlink, self.path)

    def stillListens(self) -> bool:
        """Return whether a connection to the socket's file is accepted."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            try:
                client.connect(self.path)
            except OSError:
                return False
        with self.listener.accept()[0]:
            return True

    def startAndStop(self, shared: bool) -> None:
        """Adopt the socket in a port, listen, then stop as Twisted does."""
        port = portFromListeningDescriptor(
            _KeptPort, MemoryReactor(), self.listener.fileno(), Factory()
        )
        self.assertIsInstance(port, _KeptPort)
        port.startListening()
        self.assertEqual(os.fsdecode(port.getHost().name), self.path)
        if shared:
            closeWithoutShutdown(port)
        port.stopReading()
        port.connectionLost(Failure(ConnectionDone()))

    def test_closeLeavesTheSocketListening(self) -> None:
        """Both ways, stopping the port leaves the shared socket listening.

        Checked on 25.5.0 and 26.10.0, on the private ``_shouldShutdown`` and on
        the fallback that wraps the port's socket.
        """
        self.startAndStop(shared=True)
        self.assertTrue(self.stillListens())
        with switchedOff("SHUTDOWN_FLAG"):
            self.startAndStop(shared=True)
        self.assertTrue(self.stillListens())

    def test_shutdownWouldStopIt(self) -> None:
        """Without ``closeWithoutShutdown`` the socket stops listening everywhere.

        This is what the function prevents, so the test above can fail.
        """
        self.startAndStop(shared=False)
        self.assertFalse(self.stillListens())

    def test_adoptFallback(self) -> None:
        """Without ``_fromListeningDescriptor``, ``adoptStreamPort`` with a warning."""
        reactor = _AdoptingReactor()
        factory = Factory()
        events: list[dict[str, Any]] = []
        observer = cast(ILogObserver, events.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        with switchedOff("ADOPT_PRIVATE"):
            port = portFromListeningDescriptor(
                _KeptPort, reactor, self.listener.fileno(), factory
            )
        self.assertNotIsInstance(port, _KeptPort)
        self.assertEqual(
            reactor.adoptedPorts,
            [(self.listener.fileno(), socket.AF_UNIX, factory)],
        )
        self.assertEqual([e["log_level"] for e in events], [LogLevel.warn])


class ResponseHeaderStoreTests(SynchronousTestCase):
    """``responseHeaderStore`` (``Headers._rawHeaders``), both ways."""

    def test_storeIsWhereSetRawHeadersFiles(self) -> None:
        """Filing in the store is ``setRawHeaders`` (25.5.0 and 26.10.0).

        A list filed under ``headerKey`` gives the same raw headers, in the same
        order (a replaced value keeps its place), as ``setRawHeaders`` would.
        """
        pairs = [
            (b"server", b"S"),
            (b"Content-MD5", b"m"),
            (b"x-a", b"a\x00b\t"),
            (b"Server", b"T"),
            (b"etag", b""),
        ]
        expected, filed = Headers(), Headers()
        for name, value in pairs:
            expected.setRawHeaders(name, [value])
            store = responseHeaderStore(filed)
            assert store is not None
            store[headerKey(name)] = [value]
        self.assertEqual(
            list(filed.getAllRawHeaders()), list(expected.getAllRawHeaders())
        )
        self.assertEqual(filed.getRawHeaders(b"SERVER"), [b"T"])

    def test_fallback(self) -> None:
        """Switched off, for a ``Headers`` subclass, or for another object: ``None``.

        The caller then uses the public methods.
        """

        class Own(Headers):
            """A subclass, which may keep its values elsewhere."""

        with switchedOff("RESPONSE_RAW"):
            self.assertIsNone(responseHeaderStore(Headers()))
        self.assertIsNone(responseHeaderStore(Own()))
        self.assertIsNone(responseHeaderStore({}))
        with switchedOff("RAW_HEADERS"):
            self.assertIs(_internals._setStoresValues(), False)
        self.assertIs(_internals._setStoresValues(), True)


# --- the seam holds -----------------------------------------------------------------

PACKAGE = Path(scgi_twisted.__file__).parent
SEAM = "_internals"

OUR_PRIVATE_NAMES = frozenset(
    {
        # the site's own parts
        "_ports",
        "_notePort",
        "_accepting",
        "_resumeAccepting",
        "_origin",
        # the supervisor and its workers
        "_workerReady",
        "_workerEnded",
        # the client: response and protocol
        "_consumer",
        "_finished",
        "_dataReceived",
        "_abort",
        "_connected",
        "_timedOut",
        "_fromClient",
        "_connection",
        "_pauseReading",
        "_resumeReading",
        "_failure",
        "_bodyWanted",
    }
)
"""Private names of the package's own classes that another object's code uses.

Each must be defined by a class of the package (checked): Twisted's private names
cannot hide here."""


def privateName(name: str) -> bool:
    """Return whether ``name`` is private (``_x``), not a dunder."""
    return name.startswith("_") and not name.startswith("__")


def receiver(node: ast.Attribute) -> str | None:
    """Return the name an attribute is read from (``self`` of ``self._x``)."""
    return node.value.id if isinstance(node.value, ast.Name) else None


def privateTouches(source: str, ownNames: frozenset[str]) -> list[tuple[int, str]]:
    """Return the private attributes ``source`` touches on objects not its own.

    ``self._x`` and ``cls._x`` are the object's own; ``obj._x``, ``getattr(obj,
    "_x")`` (and ``setattr``, ``hasattr``, ``delattr``) count unless ``_x`` is one of
    ``ownNames``.

    :returns: ``(line, name)`` for each touch.
    """
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and privateName(node.attr):
            if receiver(node) in {"self", "cls"} or node.attr in ownNames:
                continue
            found.append((node.lineno, node.attr))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in {"getattr", "setattr", "hasattr", "delattr"}
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
            and privateName(node.args[1].value)
            and node.args[1].value not in ownNames
        ):
            found.append((node.lineno, node.args[1].value))
    return found


def definedNames(source: str) -> set[str]:
    """Return the private names ``source``'s classes define (methods, attributes)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef):
            for item in ast.walk(node):
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    names.add(item.name)
                elif isinstance(item, ast.AnnAssign) and isinstance(
                    item.target, ast.Name
                ):
                    names.add(item.target.id)
                elif (
                    isinstance(item, ast.Attribute)
                    and isinstance(item.ctx, ast.Store)
                    and receiver(item) == "self"
                ):
                    names.add(item.attr)
    return {name for name in names if privateName(name)}


def twistedPrivateNames(cls: type) -> set[str]:
    """Return the private names the Twisted classes among ``cls``'s bases define."""
    names: set[str] = set()
    for base in cls.__mro__:
        if not base.__module__.startswith("twisted."):
            continue
        names.update(name for name in vars(base) if privateName(name))
        try:
            source = textwrap.dedent(inspect.getsource(base))
        except (OSError, TypeError):
            continue
        names.update(definedNames(source))
    return names


def subclassTouches(cls: type, source: str) -> set[str]:
    """Return the private names of ``cls``'s Twisted bases its ``source`` uses."""
    used = definedNames(source) | {
        node.attr
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Attribute) and privateName(node.attr)
    }
    return used & twistedPrivateNames(cls)


class _OverridesLogHook(Site):
    """A site as ``_service`` had it: it overrides Twisted's private hook."""

    def _openLogFile(self, path: str | bytes) -> Any:
        """Open standard output for ``-``."""
        return super()._openLogFile(path)


def ownClasses() -> Iterator[tuple[str, type, str]]:
    """Yield each class of the package (not the seam) with its module and source."""
    for path in sorted(PACKAGE.glob("*.py")):
        if path.stem in {SEAM, "__main__"}:
            continue
        name = (
            "scgi_twisted" if path.stem == "__init__" else f"scgi_twisted.{path.stem}"
        )
        module = __import__(name, fromlist=["_"])
        for value in vars(module).values():
            if inspect.isclass(value) and value.__module__ == name:
                yield path.stem, value, textwrap.dedent(inspect.getsource(value))


class SeamTests(SynchronousTestCase):
    """Only ``_internals`` touches Twisted's private names."""

    def test_checkerFindsTouches(self) -> None:
        """The checker sees the forms a touch takes, and passes the object's own."""
        source = (
            "def f(headers, request, site):\n"
            "    headers._rawHeaders\n"
            "    request._parsePOSTFormSubmission = False\n"
            "    getattr(site, '_port', None)\n"
            "    self._own\n"
            "    cls._own\n"
            "    site._tracker\n"
        )
        self.assertEqual(
            privateTouches(source, frozenset({"_tracker"})),
            [(2, "_rawHeaders"), (3, "_parsePOSTFormSubmission"), (4, "_port")],
        )

    def test_checkerFindsOverrides(self) -> None:
        """An override of a Twisted base's private method is found."""
        source = textwrap.dedent(inspect.getsource(_OverridesLogHook))
        self.assertEqual(subclassTouches(_OverridesLogHook, source), {"_openLogFile"})

    def test_noOtherModuleTouchesAPrivateAttribute(self) -> None:
        """Outside the seam, a private attribute is read on ``self``/``cls`` only.

        The exceptions are the package's own private names in
        :data:`OUR_PRIVATE_NAMES`.
        """
        checked = 0
        for path in sorted(PACKAGE.glob("*.py")):
            if path.stem == SEAM:
                continue
            checked += 1
            for line, name in privateTouches(
                path.read_text(encoding="utf-8"), OUR_PRIVATE_NAMES
            ):
                self.fail(
                    f"scgi_twisted/{path.name}:{line} touches {name} of another "
                    "object: move a Twisted private name into _internals.py; for "
                    "one of ours, use a public name or list it in OUR_PRIVATE_NAMES"
                )
        self.assertGreater(checked, 20)

    def test_ownPrivateNamesAreOurs(self) -> None:
        """Every name of :data:`OUR_PRIVATE_NAMES` is defined by a class of ours."""
        ours: set[str] = set()
        for path in PACKAGE.glob("*.py"):
            ours |= definedNames(path.read_text(encoding="utf-8"))
        self.assertEqual(OUR_PRIVATE_NAMES - ours, set())

    def test_subclassesLeaveTwistedPrivatesAlone(self) -> None:
        """No class of ours (but the seam's) uses a Twisted base's private name.

        Neither on ``self`` nor as an override, such as ``_openLogFile`` was.
        """
        classes = 0
        for module, cls, source in ownClasses():
            twisted = twistedPrivateNames(cls)
            if not twisted:
                continue
            classes += 1
            self.assertEqual(
                subclassTouches(cls, source),
                set(),
                f"scgi_twisted/{module}.py: {cls.__name__}",
            )
        # The package subclasses Twisted's Site, Protocol, Port and more.
        self.assertGreater(classes, 5)

    def test_seamImportsOnlyTwisted(self) -> None:
        """``_internals`` imports Twisted and the standard library only.

        No module of the package: it sits below the channel in the layers.
        """
        tree = ast.parse((PACKAGE / f"{SEAM}.py").read_text(encoding="utf-8"))
        imported = []
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                self.assertEqual(node.level, 0, node.module)
                imported.append(node.module or "")
            elif isinstance(node, ast.Import):
                imported.extend(alias.name for alias in node.names)
        self.assertIn("twisted.web.http_headers", imported)
        for name in imported:
            self.assertNotEqual(name.split(".")[0], "scgi_twisted", name)
