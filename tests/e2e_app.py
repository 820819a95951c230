r"""The application the end-to-end tests serve: a ``twisted.web`` tree behind SCGI.

The tree (:func:`buildRoot`) reports what the application saw, so that a test can
compare it with what the client sent.  Every route answers JSON unless said otherwise:

``/echo``
    Any method: the request as ``twisted.web`` saw it (method, URI, path, args,
    ``prepath``/``postpath``, ``prePathURL()``, TLS, client address, host and port,
    ``getUser()``/``getPassword()``, every header value, cookies, the body's length
    and SHA-256) and the raw SCGI variables in arrival order.
``/upload``
    POST: the body's length and SHA-256.
``/redirect``
    A ``302`` (set explicitly) to its child ``/redirect/done`` (an ``/echo``), built
    from ``prePathURL()``.
``/location?to=X``
    A ``200`` (the default status) with ``Location: X``, as text.
``/stream?n=4&delay=0.25``
    ``n`` lines ``<index> <time.monotonic() when written>``, ``delay`` seconds apart,
    with ``X-Accel-Buffering: no`` so that nginx passes each on at once.
``/big``
    A ``static.File`` of :data:`BIG_SIZE` bytes (:func:`bigFileContent`).
``/error``
    Raises, so ``twisted.web`` answers 500.
``/wsgi``
    A ``WSGIResource`` on the reactor's thread pool answering ``SCRIPT_NAME``,
    ``PATH_INFO``, ``QUERY_STRING``, ``wsgi.url_scheme`` and ``REMOTE_ADDR``.
``/flask/<name>``
    A Flask application (``WSGIResource``) answering the URLs it builds from
    ``HTTP_HOST`` (:func:`flaskApp`); absent without Flask.
``/abort?id=X&n=600&delay=0.1``
    Writes a line every ``delay`` seconds and records how ``notifyFinish()`` ended;
    ``/abort-status?id=X`` reports the record (404 for an unknown id).
``/offload/<frontend>/<name>``
    Hands the file ``<name>`` of the offload directory to the frontend with
    :class:`scgi_twisted.offload.FileOffload` (``<frontend>`` is ``nginx``,
    ``apache`` or ``lighttpd``; nginx's internal location is :data:`OFFLOAD_URI`):
    the backend's body is empty, so file bytes at the client came from the frontend.
    The files are :func:`offloadFiles`.  ``/offload/raw/<name>`` sends
    ``X-Sendfile`` with the raw path, unchecked (``?path=`` overrides the path).
    ``?download=1`` adds ``Content-Disposition`` and ``Cache-Control`` headers.

``/twin/...``
    The twin tree (:mod:`tests.twin_app`); with ``--twin-http`` it is also served,
    at the same path, by twisted.web's own HTTP server, for the twin tests.

The root itself (a request for the mount point, such as ``/app``) answers as
``/echo`` does.  Anything else is twisted.web's 404.

Run it as a server with :func:`main`::

    python -m tests.e2e_app --listen tcp:0:interface=127.0.0.1 \
        --listen unix:/tmp/x.sock --mount /app --ready-file /tmp/ready.json \
        --data-dir /tmp/data

Once every endpoint listens, the ready file (written atomically) holds JSON: ``pid``,
``tcp`` (a list of ``{"host", "port"}`` with the ports actually bound) and ``unix`` (a
list of socket paths), and with ``--twin-http`` ``http``, the port of the twin
tree's HTTP server.  ``--data-dir`` receives the file ``/big`` serves and the
offload directory, ``files/``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.interfaces import IDelayedCall, IListeningPort, IReactorTime
from twisted.logger import Logger, globalLogBeginner, textFileLogObserver
from twisted.python.failure import Failure
from twisted.python.urlpath import URLPath
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site
from twisted.web.static import File
from twisted.web.wsgi import WSGIResource

from scgi_twisted import SCGISite, getSCGIVariables
from scgi_twisted.offload import FileOffload, OffloadError
from tests._streaming_app import StreamingHash
from tests.twin_app import buildTwinTree, writeTwinFiles

if TYPE_CHECKING:
    from twisted.python.threadpool import ThreadPool
    from twisted.web.server import Request

__all__ = [
    "BIG_SIZE",
    "OFFLOAD_URI",
    "AbortRecord",
    "AppState",
    "bigFileContent",
    "buildRoot",
    "main",
    "offloadFiles",
    "writeOffloadFiles",
]

BIG_SIZE = 1024 * 1024
"""The size of ``/big``, in bytes."""

OFFLOAD_URI = "/_offload/"
"""The URI of nginx's ``internal`` location for offloaded files."""

STREAM_UPLOAD_PATHS = ("/stream-upload", "/app/stream-upload")
"""Where the backend streams uploads (``SCGISite(stream_uploads=...)``)."""

_log = Logger()

_StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def bigFileContent() -> bytes:
    """Return the deterministic content of ``/big``: chained SHA-256 digests."""
    digest = b"scgi_twisted"
    pieces = []
    for _ in range(BIG_SIZE // 32):
        digest = hashlib.sha256(digest).digest()
        pieces.append(digest)
    return b"".join(pieces)


def offloadFiles() -> dict[str, bytes]:
    """Return the files of the offload directory, name to content.

    The names need encoding in URIs and headers (a space, ``%``, ``&``, UTF-8), and
    the larger file spans many of a frontend's buffers.
    """
    digest = b"offload"
    pieces = []
    for _ in range(300_000 // 32):
        digest = hashlib.sha256(digest).digest()
        pieces.append(digest)
    return {
        "report.bin": b"".join(pieces),
        "caf\u00e9 & more.txt": "offloaded: caf\u00e9 & more\n".encode(),
        "100%.txt": b"offloaded: 100%\n",
        "a%41.txt": b"offloaded: a%41, not aA\n",
    }


def writeOffloadFiles(directory: Path) -> None:
    """Create ``directory`` (mode 755) holding :func:`offloadFiles` (mode 644)."""
    directory.mkdir(exist_ok=True)
    directory.chmod(0o755)
    for name, content in offloadFiles().items():
        path = directory / name
        path.write_bytes(content)
        path.chmod(0o644)


@dataclass
class AbortRecord:
    """What happened to one ``/abort`` request.

    :ivar writes: how many lines were written.
    :ivar outcome: ``None`` while running, then ``"finished"`` or ``"errback"``
        (the ``notifyFinish()`` Deferred failed: the connection went away).
    :ivar reason: the failure's exception type and message, for ``"errback"``.
    """

    writes: int = 0
    outcome: str | None = None
    reason: str = ""
    _waiters: list[Deferred[AbortRecord]] = field(default_factory=list, repr=False)

    def whenDone(self) -> Deferred[AbortRecord]:
        """Return a Deferred that fires with this record once the request ended."""
        waiter: Deferred[AbortRecord] = Deferred()
        if self.outcome is None:
            self._waiters.append(waiter)
        else:
            waiter.callback(self)
        return waiter

    def _end(self, outcome: str, reason: str = "") -> None:
        """Record the outcome and tell the waiters."""
        self.outcome = outcome
        self.reason = reason
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(self)

    def asJSON(self) -> dict[str, object]:
        """Return the record as a JSON-able dict."""
        return {"writes": self.writes, "outcome": self.outcome, "reason": self.reason}


@dataclass
class AppState:
    """The application's shared state, visible to in-process tests.

    :ivar aborts: the ``/abort`` records, by ``id``.
    """

    aborts: dict[str, AbortRecord] = field(default_factory=dict)

    def abortRecord(self, key: str) -> AbortRecord:
        """Return the record for ``key``, creating it if needed."""
        return self.aborts.setdefault(key, AbortRecord())


def _text(value: bytes) -> str:
    """Decode bytes as Latin-1, which never fails and keeps every byte."""
    return value.decode("latin-1")


def _arg(request: Request, name: bytes, default: str) -> str:
    """Return the first value of query argument ``name``, or ``default``."""
    args: dict[bytes, list[bytes]] = request.args or {}
    values = args.get(name)
    return _text(values[0]) if values else default


def _json(request: Request, value: object) -> bytes:
    """Set the JSON content type and return ``value`` encoded."""
    request.setHeader(b"Content-Type", b"application/json")
    return json.dumps(value, sort_keys=True).encode("utf-8")


def _bodyDigest(request: Request) -> tuple[int, str]:
    """Return the length and SHA-256 (hex) of the request body."""
    content = cast("IO[bytes] | None", request.content)
    digest = hashlib.sha256()
    length = 0
    if content is not None:
        content.seek(0)
        while chunk := content.read(65536):
            digest.update(chunk)
            length += len(chunk)
    return length, digest.hexdigest()


def _address(address: object) -> dict[str, object]:
    """Describe an ``IAddress`` as JSON."""
    if isinstance(address, IPv4Address | IPv6Address):
        return {"type": address.type, "host": address.host, "port": address.port}
    if isinstance(address, UNIXAddress):
        name = address.name
        return {"type": "UNIX", "name": _text(name) if name else None}
    return {"type": repr(address)}


class _Leaf(Resource):
    """A resource with no children: ``postpath`` is left for it to see."""

    isLeaf = True

    def __init__(self) -> None:
        """Create the resource."""
        Resource.__init__(self)


class Echo(_Leaf):
    """``/echo``: describe the request as the application saw it."""

    def render(self, request: Request) -> bytes:
        """Answer any method with the request's description."""
        length, sha256 = _bodyDigest(request)
        variables = getSCGIVariables(request)
        headers = [
            [_text(name).lower(), _text(value)]
            for name, values in request.requestHeaders.getAllRawHeaders()
            for value in values
        ]
        args: dict[bytes, list[bytes]] = request.args or {}
        host = request.getHost()
        return _json(
            request,
            {
                "method": _text(request.method),
                "uri": _text(request.uri),
                "path": _text(request.path),
                "args": {
                    _text(name): [_text(value) for value in values]
                    for name, values in args.items()
                },
                "prepath": [_text(segment) for segment in request.prepath or []],
                "postpath": [_text(segment) for segment in request.postpath or []],
                "prePathURL": _text(request.prePathURL()),
                "isSecure": request.isSecure(),
                "client": _address(request.getClientAddress()),
                "host": _address(host),
                "requestHostname": _text(request.getRequestHostname()),
                "user": _text(request.getUser()),
                "password": _text(request.getPassword()),
                "headers": headers,
                "received_cookies": {
                    _text(name): _text(value)
                    for name, value in request.received_cookies.items()
                },
                "body_length": length,
                "body_sha256": sha256,
                "scgi": None
                if variables is None
                else [[_text(name), _text(value)] for name, value in variables.raw],
            },
        )


class Upload(_Leaf):
    """``/upload``: report the length and SHA-256 of a POST body."""

    def render_POST(self, request: Request) -> bytes:
        """Answer with the body's length and hash."""
        length, sha256 = _bodyDigest(request)
        return _json(request, {"length": length, "sha256": sha256})


class Redirect(Resource):
    """``/redirect``: a 302 to ``/redirect/done``, which echoes."""

    def __init__(self) -> None:
        """Create the resource and its ``done`` child."""
        Resource.__init__(self)
        self.putChild(b"done", Echo())

    def render_GET(self, request: Request) -> bytes:
        """Redirect to the child URL built from ``prePathURL()``."""
        here = URLPath.fromBytes(request.prePathURL())
        target = here.child(b"done")
        location: bytes = str(target).encode("ascii")
        request.redirect(location)
        request.setResponseCode(302)
        request.setHeader(b"Content-Type", b"text/plain")
        return b"see " + location + b"\n"


class LocationOnly(_Leaf):
    """``/location?to=X``: a ``200`` with ``Location: X``, and no redirect status."""

    def render_GET(self, request: Request) -> bytes:
        """Answer 200 with the header, as a careless application might."""
        request.setHeader(b"Location", _arg(request, b"to", "/").encode("latin-1"))
        request.setHeader(b"Content-Type", b"text/plain")
        return b"the backend's own body\n"


class Stream(_Leaf):
    """``/stream``: timestamped lines, written ``delay`` seconds apart."""

    def __init__(self, clock: IReactorTime) -> None:
        """Create the resource; ``clock`` schedules the writes."""
        super().__init__()
        self._clock = clock

    def render_GET(self, request: Request) -> object:
        """Write the first line now and the others later."""
        count = int(_arg(request, b"n", "4"))
        delay = float(_arg(request, b"delay", "0.25"))
        request.setHeader(b"Content-Type", b"text/plain")
        request.setHeader(b"X-Accel-Buffering", b"no")
        pending: list[IDelayedCall] = []

        def writeLine(index: int) -> None:
            pending.clear()
            request.write(b"%d %.6f\n" % (index, time.monotonic()))
            if index + 1 < count:
                pending.append(self._clock.callLater(delay, writeLine, index + 1))
            else:
                request.finish()

        def stop(reason: Failure) -> None:
            for call in pending:
                call.cancel()

        request.notifyFinish().addErrback(stop)
        writeLine(0)
        return NOT_DONE_YET


class Abort(_Leaf):
    """``/abort``: write slowly and record how ``notifyFinish()`` ended."""

    def __init__(self, clock: IReactorTime, state: AppState) -> None:
        """Create the resource recording into ``state``."""
        super().__init__()
        self._clock = clock
        self._state = state

    def render_GET(self, request: Request) -> object:
        """Start the slow writes."""
        record = self._state.abortRecord(_arg(request, b"id", ""))
        count = int(_arg(request, b"n", "600"))
        delay = float(_arg(request, b"delay", "0.1"))
        request.setHeader(b"Content-Type", b"text/plain")
        request.setHeader(b"X-Accel-Buffering", b"no")
        pending: list[IDelayedCall] = []

        def tick() -> None:
            pending.clear()
            record.writes += 1
            request.write(b"tick %d\n" % record.writes)
            if record.writes < count:
                pending.append(self._clock.callLater(delay, tick))
            else:
                request.finish()

        def finished(result: None) -> None:
            record._end("finished")

        def failed(reason: Failure) -> None:
            for call in pending:
                call.cancel()
            error = reason.value
            record._end("errback", f"{type(error).__name__}: {error}")

        request.notifyFinish().addCallbacks(finished, failed)
        tick()
        return NOT_DONE_YET


class AbortStatus(_Leaf):
    """``/abort-status?id=X``: the :class:`AbortRecord` of an ``/abort`` request."""

    def __init__(self, state: AppState) -> None:
        """Create the resource reading ``state``."""
        super().__init__()
        self._state = state

    def render_GET(self, request: Request) -> bytes:
        """Answer the record, or 404 for an id never seen."""
        record = self._state.aborts.get(_arg(request, b"id", ""))
        if record is None:
            request.setResponseCode(404)
            return _json(request, None)
        return _json(request, record.asJSON())


class Root(Resource):
    """The root of the tree: its children, and itself an :class:`Echo`.

    A request for the mount point (``/app``, no slash) renders the root with an
    empty ``postpath``; one with a slash (``/app/``) looks up the child ``b""``,
    which is the root again.
    """

    def __init__(self) -> None:
        """Create the root."""
        Resource.__init__(self)
        self._echo = Echo()

    def getChild(self, path: bytes, request: Request) -> Resource:
        """Return the root itself for ``b""`` (a trailing slash), else a 404."""
        if path == b"":
            return self
        return super().getChild(path, request)  # type: ignore[no-any-return]

    def render(self, request: Request) -> bytes:
        """Answer a request for the root (the mount point) as ``/echo`` does."""
        return self._echo.render(request)


class Offload(_Leaf):
    """``/offload/<frontend>/<name>``: hand a file to the frontend."""

    def __init__(self, directory: Path) -> None:
        """Create the resource offloading files of ``directory``."""
        super().__init__()
        self._directory = directory

    def render_GET(self, request: Request) -> bytes:
        """Answer with the offload header, or 404 for a bad frontend or path."""
        postpath = request.postpath or []
        if len(postpath) < 2:
            request.setResponseCode(404)
            return _json(request, {"error": "want /offload/<frontend>/<name>"})
        try:
            names = [segment.decode("utf-8") for segment in postpath]
            path = "/".join([str(self._directory), *names[1:]])
            if names[0] == "raw":
                # Unchecked, as a careless application would send it.
                path = _arg(request, b"path", path)
                request.setHeader(b"X-Sendfile", path.encode("utf-8"))
                return b""
            offload = FileOffload(
                names[0],  # type: ignore[arg-type]
                str(self._directory),
                internal_prefix=OFFLOAD_URI,
            )
            body = offload.send(request, path)
            if _arg(request, b"download", ""):
                request.setHeader(b"Content-Disposition", b"attachment")
                request.setHeader(b"Cache-Control", b"private, max-age=60")
            return body
        except (OffloadError, UnicodeDecodeError) as error:
            request.setResponseCode(404)
            return _json(request, {"error": str(error)})


class Error(_Leaf):
    """``/error``: fail while rendering."""

    def render_GET(self, request: Request) -> bytes:
        """Raise, so that twisted.web answers 500."""
        raise RuntimeError("the /error resource always fails")


def wsgiApp(environ: dict[str, Any], start_response: _StartResponse) -> Iterable[bytes]:
    """Answer the WSGI view of the request as JSON."""
    keys = ("SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "wsgi.url_scheme")
    body = json.dumps(
        {key: environ.get(key) for key in (*keys, "REMOTE_ADDR", "REQUEST_METHOD")},
        sort_keys=True,
    ).encode("utf-8")
    start_response(
        "200 OK",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]


def flaskApp() -> Any:
    """Return a Flask application answering the URLs it builds, or ``None``.

    ``/flask/<name>`` answers ``{"url": url_for("page", name="next",
    _external=True), "host_url": request.host_url}``: Flask builds both from
    ``HTTP_HOST``.  ``None`` when Flask is not installed (it is in the ``test``
    extra); the tests that need it then say so.
    """
    try:
        from flask import Flask, jsonify, request, url_for
    except ImportError:
        return None
    app = Flask("scgi_twisted_e2e")

    @app.route("/<name>")
    def page(name: str) -> Any:
        return jsonify(
            url=url_for("page", name="next", _external=True), host_url=request.host_url
        )

    return app


def buildRoot(
    state: AppState,
    clock: IReactorTime,
    *,
    threadpool: ThreadPool | None = None,
    bigFile: Path | None = None,
    offloadDirectory: Path | None = None,
) -> Resource:
    """Build the resource tree.

    :param state: where ``/abort`` records go.
    :param clock: schedules ``/stream`` and ``/abort`` writes; for ``/wsgi`` it must
        also be the reactor (it calls back from the thread pool).
    :param threadpool: the pool ``/wsgi`` runs on; without it there is no ``/wsgi``.
    :param bigFile: the file ``/big`` serves; without it there is no ``/big``.
    :param offloadDirectory: the directory ``/offload`` hands files from; without
        it there is no ``/offload``.
    :returns: the root resource.
    """
    root = Root()
    root.putChild(b"echo", Echo())
    root.putChild(b"upload", Upload())
    root.putChild(b"redirect", Redirect())
    root.putChild(b"stream", Stream(clock))
    root.putChild(b"location", LocationOnly())
    root.putChild(b"error", Error())
    root.putChild(b"abort", Abort(clock, state))
    root.putChild(b"abort-status", AbortStatus(state))
    root.putChild(b"stream-upload", StreamingHash(clock))
    if bigFile is not None:
        root.putChild(b"big", File(str(bigFile)))
    if offloadDirectory is not None:
        root.putChild(b"offload", Offload(offloadDirectory))
    if threadpool is not None:
        wsgi = WSGIResource(clock, threadpool, wsgiApp)
        root.putChild(b"wsgi", wsgi)
        flask = flaskApp()
        if flask is not None:
            root.putChild(b"flask", WSGIResource(clock, threadpool, flask))
    return root


def _writeReady(
    path: Path, ports: list[IListeningPort], http: IListeningPort | None = None
) -> None:
    """Write the ready file atomically: the pid and every bound address.

    ``http`` is the port of the twin tree's HTTP server (``--twin-http``).
    """
    tcp: list[dict[str, object]] = []
    unix: list[str] = []
    for port in ports:
        address = port.getHost()
        if isinstance(address, IPv4Address | IPv6Address):
            tcp.append({"host": address.host, "port": address.port})
        elif isinstance(address, UNIXAddress) and address.name is not None:
            unix.append(_text(address.name))
    temporary = path.with_name(path.name + ".tmp")
    info: dict[str, object] = {"pid": os.getpid(), "tcp": tcp, "unix": unix}
    if http is not None:
        info["http"] = cast(IPv4Address, http.getHost()).port
    temporary.write_text(json.dumps(info))
    os.replace(temporary, path)


def _parseArguments(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.e2e_app", description=__doc__.split("\n", 1)[0]
    )
    parser.add_argument(
        "--listen",
        action="append",
        required=True,
        metavar="ENDPOINT",
        help="a server endpoint string, e.g. tcp:0:interface=127.0.0.1; repeatable",
    )
    parser.add_argument("--mount", default=None, help="SCGISite(mount=...)")
    parser.add_argument(
        "--max-body-size", type=int, default=None, help="SCGISite(max_body_size=...)"
    )
    parser.add_argument(
        "--twin-http",
        default=None,
        metavar="ENDPOINT",
        help="also serve the twin tree (/twin) with twisted.web's own HTTP server here",
    )
    parser.add_argument(
        "--ready-file", type=Path, default=None, help="where to write the bound ports"
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where to write the file /big serves and the offload directory files/ "
        "(default: a temporary directory)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Serve the tree over SCGI on every ``--listen`` endpoint until SIGTERM.

    :param argv: the arguments (default: ``sys.argv[1:]``).
    :returns: the exit status.
    """
    from twisted.internet import reactor as _reactor
    from twisted.internet.endpoints import serverFromString

    reactor: Any = _reactor
    options = _parseArguments(argv)
    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stderr)])
    status = [0]
    with contextlib.ExitStack() as cleanup:
        data = options.data_dir
        if data is None:
            data = Path(
                cleanup.enter_context(
                    tempfile.TemporaryDirectory(prefix="scgi-e2e-app-")
                )
            )
        bigFile = data / "big.bin"
        bigFile.write_bytes(bigFileContent())
        offloadDirectory = data / "files"
        writeOffloadFiles(offloadDirectory)
        root = buildRoot(
            AppState(),
            reactor,
            threadpool=reactor.getThreadPool(),
            bigFile=bigFile,
            offloadDirectory=offloadDirectory,
        )
        twin = buildTwinTree(reactor, reactor.getThreadPool(), writeTwinFiles(data))
        root.putChild(b"twin", twin)
        reference = Resource()
        reference.putChild(b"twin", twin)
        site = SCGISite(
            root,
            mount=options.mount,
            max_body_size=options.max_body_size,
            # Streaming is off by default: only /stream-upload (at the root and
            # below the mount point) opts in.
            stream_uploads=STREAM_UPLOAD_PATHS,
            reactor=reactor,
        )
        listening = gatherResults(
            [
                serverFromString(reactor, description).listen(site)
                for description in options.listen
            ],
            consumeErrors=True,
        )

        if options.twin_http is not None:
            listening.addCallback(
                lambda ports: (
                    serverFromString(reactor, options.twin_http)
                    .listen(Site(reference, reactor=reactor))
                    .addCallback(lambda http: (ports, http))
                )
            )
        else:
            listening.addCallback(lambda ports: (ports, None))

        def ready(result: tuple[list[IListeningPort], IListeningPort | None]) -> None:
            ports, http = result
            if options.ready_file is not None:
                _writeReady(options.ready_file, ports, http)
            _log.info(
                "Listening on {addresses}", addresses=[p.getHost() for p in ports]
            )

        def failed(reason: Failure) -> None:
            _log.failure("Could not listen", reason)
            status[0] = 1
            reactor.callWhenRunning(reactor.stop)

        listening.addCallbacks(ready, failed)
        reactor.run()
    return status[0]


if __name__ == "__main__":
    sys.exit(main())
