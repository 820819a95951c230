"""The twin tree: one ``twisted.web`` resource tree for the twin tests.

The twin tests (``tests/test_twin.py`` in-process, and ``tests/support/``
through nginx, Apache and lighttpd) serve this tree both with ``twisted.web``'s own
HTTP server and with scgi_twisted, send the same requests to both, and compare the
answers.  Every resource that matters reports what it saw in its JSON body, so the
comparison works across processes.

``/seen/...``
    Any method: what the resource saw (:func:`seenBy`).
``/route/<x>``
    ``getChild`` picks the child by the form field ``to`` (``none`` without it);
    the child answers as ``/seen``, with its name.
``/methods``
    ``render_GET`` and ``render_POST`` only: other methods get twisted.web's 405 or
    501.
``/files/``
    A ``static.File`` directory: ``a.txt``, ``data.bin``, ``sub/b.txt``; a listing
    for ``/files/``, a redirect for ``/files/sub``.
``/gzip``
    An ``EncodingResourceWrapper`` with ``GzipEncoderFactory`` around a text.
``/cookies``
    Sets cookies with attributes.
``/session``
    Counts requests in the session.
``/redirect``
    ``request.redirect()`` to ``/seen/after``.
``/status/<code>``
    Answers with that status code.
``/error``
    Raises: twisted.web's 500 page.
``/headers``
    A repeated response header and a Latin-1 value.
``/stream``
    ``NOT_DONE_YET``, three pieces written later.
``/wsgi/...``
    A ``WSGIResource`` answering its view of the request.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from twisted.internet.interfaces import IReactorTime
from twisted.web.resource import EncodingResourceWrapper, IResource, Resource
from twisted.web.server import NOT_DONE_YET, GzipEncoderFactory
from twisted.web.static import Data, File
from twisted.web.wsgi import WSGIResource

if TYPE_CHECKING:
    from twisted.python.threadpool import ThreadPool
    from twisted.web.server import Request

__all__ = ["GZIP_TEXT", "buildTwinTree", "seenBy", "writeTwinFiles"]

GZIP_TEXT = b"compress me " * 200
"""What ``/gzip`` answers, before compression."""


def _text(value: bytes) -> str:
    """Decode bytes as Latin-1, which keeps every byte."""
    return value.decode("latin-1")


def seenBy(request: Request, name: str = "") -> dict[str, Any]:
    """Return what a resource sees of ``request``, as JSON-able values."""
    content = request.content
    body = b""
    if content is not None:
        content.seek(0)
        body = content.read()
    try:
        urlPath: str | None = str(request.URLPath())
    except ValueError:
        urlPath = None
    args: dict[bytes, list[bytes]] = request.args or {}
    return {
        "name": name,
        "method": _text(request.method),
        "uri": _text(request.uri),
        "path": _text(request.path),
        "args": sorted(
            [_text(key), [_text(value) for value in values]]
            for key, values in args.items()
        ),
        "prepath": [_text(s) for s in request.prepath or []],
        "postpath": [_text(s) for s in request.postpath or []],
        "headers": sorted(
            [_text(key).lower(), [_text(value) for value in values]]
            for key, values in request.requestHeaders.getAllRawHeaders()
        ),
        "cookies": sorted(
            [_text(key), _text(value)]
            for key, value in request.received_cookies.items()
        ),
        "user": _text(request.getUser()),
        "password": _text(request.getPassword()),
        "content_length": len(body),
        "content_sha256": hashlib.sha256(body).hexdigest(),
        "prePathURL": _text(request.prePathURL()),
        "URLPath": urlPath,
        "isSecure": request.isSecure(),
        "requestHostname": _text(request.getRequestHostname()),
    }


def _json(request: Request, value: object) -> bytes:
    """Set the JSON content type and return ``value`` encoded."""
    request.setHeader(b"Content-Type", b"application/json")
    return json.dumps(value, sort_keys=True).encode("utf-8")


class Seen(Resource):
    """A leaf answering, for any method, what it saw."""

    isLeaf = True

    def __init__(self, name: str = "seen") -> None:
        super().__init__()
        self.name = name

    def render(self, request: Request) -> bytes:
        """Answer the JSON of :func:`seenBy`."""
        return _json(request, seenBy(request, self.name))


class Router(Resource):
    """``getChild`` routes on the form field ``to``."""

    def getChild(self, path: bytes, request: Request) -> IResource:
        """Return a :class:`Seen` named by ``request.args[b"to"]``."""
        args: dict[bytes, list[bytes]] = request.args or {}
        return Seen("route:" + _text(args.get(b"to", [b"none"])[0]))


class Methods(Resource):
    """Only GET (and so HEAD) and POST."""

    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        """Answer GET."""
        return b"get\n"

    def render_POST(self, request: Request) -> bytes:
        """Answer POST."""
        return b"post\n"


class Cookies(Resource):
    """Sets cookies with attributes."""

    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        """Set two cookies."""
        request.addCookie(
            b"plain", b"1", path=b"/", httpOnly=True, max_age=b"60", sameSite="lax"
        )
        request.addCookie(b"other", b"x y", secure=False, comment=b"kept")
        return b"cookies\n"


class Session(Resource):
    """Counts the requests of one session."""

    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        """Answer the count, one more every time."""
        session = request.getSession()
        count = getattr(session, "twinCount", 0) + 1
        session.twinCount = count
        return b"%d\n" % count


class Redirect(Resource):
    """``request.redirect()`` to ``/seen/after``, below the mount point."""

    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        """Redirect with twisted.web's own helper."""
        base = b"/".join([b"", *(request.prepath or [])[:-1], b"seen", b"after"])
        request.redirect(base)
        return b""


class Status(Resource):
    """``/status/<code>``: that status, with a small body when it may have one."""

    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        """Answer the status in the path."""
        code = int((request.postpath or [b"200"])[0] or b"200")
        request.setResponseCode(code)
        return b"" if code in (204, 304) else b"status %d\n" % code


class Error(Resource):
    """Raises while rendering."""

    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        """Fail."""
        raise RuntimeError("the twin /error resource always fails")


class Headers(Resource):
    """A repeated response header and a Latin-1 one."""

    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        """Set the headers."""
        request.responseHeaders.addRawHeader(b"X-Multi", b"one")
        request.responseHeaders.addRawHeader(b"X-Multi", b"two")
        request.setHeader(b"X-Latin", "caf\u00e9".encode("latin-1"))
        return b"headers\n"


class Stream(Resource):
    """``NOT_DONE_YET``: three pieces, written by the reactor."""

    isLeaf = True

    def __init__(self, clock: IReactorTime) -> None:
        super().__init__()
        self.clock = clock

    def render_GET(self, request: Request) -> int:
        """Write three pieces, 10 ms apart, then finish."""
        request.setHeader(b"Content-Type", b"text/plain")

        def write(index: int) -> None:
            if request.finished or getattr(request, "_disconnected", False):
                return
            request.write(b"piece %d\n" % index)
            if index < 2:
                self.clock.callLater(0.01, write, index + 1)
            else:
                request.finish()

        self.clock.callLater(0.01, write, 0)
        return NOT_DONE_YET


def wsgiApp(
    environ: dict[str, Any], startResponse: Callable[..., object]
) -> Iterable[bytes]:
    """Answer the WSGI view of the request as JSON."""
    keys = (
        "REQUEST_METHOD",
        "SCRIPT_NAME",
        "PATH_INFO",
        "QUERY_STRING",
        "CONTENT_TYPE",
        "CONTENT_LENGTH",
        "SERVER_NAME",
        "SERVER_PORT",
        "HTTP_HOST",
        "wsgi.url_scheme",
    )
    body = environ["wsgi.input"].read()
    view = {key: environ.get(key) for key in keys}
    view["body"] = body.decode("latin-1")
    payload = json.dumps(view, sort_keys=True).encode("utf-8")
    startResponse("200 OK", [("Content-Type", "application/json")])
    return [payload]


def writeTwinFiles(directory: Path) -> Path:
    """Create the directory ``/files`` serves, and return it."""
    files = directory / "twin-files"
    (files / "sub").mkdir(parents=True, exist_ok=True)
    (files / "a.txt").write_bytes(b"0123456789abcdefghij\n")
    (files / "data.bin").write_bytes(bytes(range(256)) * 40)
    (files / "sub" / "b.txt").write_bytes(b"in sub\n")
    for path in [files, files / "sub"]:
        path.chmod(0o755)
    for path in [files / "a.txt", files / "data.bin", files / "sub" / "b.txt"]:
        path.chmod(0o644)
        # A fixed time in the past: twisted.web rounds Last-Modified up to the next
        # second, and a frontend caps a Last-Modified later than the request's time.
        os.utime(path, (1_700_000_000, 1_700_000_000))
    return files


def buildTwinTree(clock: IReactorTime, threadpool: ThreadPool, files: Path) -> Resource:
    """Build the twin tree.

    :param clock: the reactor: schedules ``/stream`` and runs ``/wsgi``.
    :param threadpool: the thread pool of ``/wsgi``.
    :param files: the directory of ``/files``, from :func:`writeTwinFiles`.
    """
    root = Resource()
    root.putChild(b"seen", Seen())
    root.putChild(b"route", Router())
    root.putChild(b"methods", Methods())
    root.putChild(b"files", File(str(files)))
    root.putChild(
        b"gzip",
        EncodingResourceWrapper(Data(GZIP_TEXT, "text/plain"), [GzipEncoderFactory()]),
    )
    root.putChild(b"cookies", Cookies())
    root.putChild(b"session", Session())
    root.putChild(b"redirect", Redirect())
    root.putChild(b"status", Status())
    root.putChild(b"error", Error())
    root.putChild(b"headers", Headers())
    root.putChild(b"stream", Stream(clock))
    root.putChild(b"wsgi", WSGIResource(cast(Any, clock), threadpool, wsgiApp))
    return root
