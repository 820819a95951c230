"""``SCGIRequest``: twisted.web's ``server.Request``, with the paths SCGI allows.

An SCGI response is written by :class:`~scgi_twisted.SCGIChannel` as a CGI response:
a ``Status:`` line, the headers, the body, then the close.  It is never chunked,
never kept alive, and its HTTP version is the frontend's.  Whatever the stock
``Request`` computes for those (the ``Transfer-Encoding: chunked`` decision, which
the channel undoes) is skipped here, and what cannot change between requests is
computed once:

* ``Date`` is formatted once per second of the site's clock (``site.reactor``,
  whose ``seconds()`` is ``time.time()`` on every real reactor), not per request;
* the ``Server`` value is built once;
* ``Server``, ``Date``, the default ``Content-Type`` and a ``setHeader`` of a
  bytes name and value without line breaks are filed in the response headers'
  own dict, and ``Content-Type`` and ``Content-Length`` are looked up there once
  (``_internals.responseHeaderStore``): what ``setRawHeaders`` and
  ``getRawHeaders`` do with such values, without encoding and scanning them;
* ``postpath`` is split without unquoting when the path holds no ``%``: unquoting
  such a segment returns it unchanged;
* the first ``write`` builds the head without the chunked decision, and later
  writes go straight to the channel.

Everything a resource can observe (the request's attributes, the response
headers and their order, every byte written, every callback) is what the stock
``Request`` gives on the same channel: ``tests/test_request.py`` drives both
classes through the same requests and compares them.  Any state the lean paths do
not cover (an encoder, a faked ``HEAD``, a finished or lost request) is handed to
the stock methods.
"""

from __future__ import annotations

import time
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote_to_bytes

from twisted.python.failure import Failure
from twisted.web.http import (
    NO_BODY_CODES,
    NO_CONTENT,
    NOT_MODIFIED,
    datetimeToString,
    parse_qs,
)
from twisted.web.http_headers import Headers
from twisted.web.server import Request, version

from ._internals import (
    REQUEST_STATE,
    RESPONSE_RAW,
    answerStar,
    applyEncoder,
    cleanUpRequest,
    headerKey,
    initRequest,
    leanRequest,
    logRequestInfo,
    responseHeaderStore,
    shareRequestLogger,
)

__all__ = ["SCGIRequest"]


def _stored(name: bytes, value: bytes) -> tuple[bytes, bytes]:
    """Return the key and the value ``Headers.setRawHeaders`` files them under.

    :param name: a header name, a token.
    :param value: a value that ``setRawHeaders`` may sanitize.
    """
    probe = Headers()
    probe.setRawHeaders(name, [value])
    ((key, values),) = probe.getAllRawHeaders()
    return (headerKey(name) if RESPONSE_RAW else key), values[0]


_SERVER_KEY, _SERVER = _stored(b"Server", version)
"""The ``Server`` header's key in ``Headers``, and its value."""

_DATE_KEY = _stored(b"Date", b"")[0]

# Bytes looked for with ``in`` as ints: a bytes needle is first tried as an int
# (an exception raised and cleared inside) before the buffer search.
_CR = ord("\r")
_LF = ord("\n")
_PERCENT = ord("%")
_QUESTION = ord("?")

_CODES = {status.value: b"%d" % (status.value,) for status in HTTPStatus}
"""The standard status codes as digits, as ``b"%d" % (code,)`` writes them."""
_CONTENT_TYPE = _stored(b"Content-Type", b"")[0]
_CONTENT_LENGTH = _stored(b"Content-Length", b"")[0]

_NO_CONTENT_TYPE = (NOT_MODIFIED, NO_CONTENT)
"""The codes whose response ``Request.write`` gives no default Content-Type."""

_LEAN = REQUEST_STATE
"""Whether the lean paths are taken: they share ``server.Request``'s private state,
through ``_internals``, and are left for the stock ones when it is not there."""


class _HTTPDate:
    """The ``Date`` value for a site's time, formatted once per second.

    ``datetimeToString`` formats whole seconds, so the value for any time within
    one second is the same: the last one is kept and reused.
    """

    __slots__ = ("_second", "_value")

    def __init__(self) -> None:
        """Start with no second formatted."""
        self._second = -1
        self._value = b""

    def of(self, site: Any) -> bytes:
        """Return the ``Date`` value for the time on ``site``'s clock (its reactor)."""
        reactor = getattr(site, "reactor", None)
        # Every twisted.web Site has a reactor; time.time() is what it would give.
        now = time.time() if reactor is None else reactor.seconds()
        second = int(now)
        if second != self._second or second < 0:
            self._value = datetimeToString(now)  # type: ignore[no-untyped-call]
            self._second = second
        return self._value


_dateOf = _HTTPDate().of


class SCGIRequest(Request):
    """A ``twisted.web.server.Request`` made for an SCGI connection.

    :class:`~scgi_twisted.SCGISite` builds one for every request unless it is
    given another ``requestFactory``.  A resource sees exactly what the stock
    ``Request`` shows it (its attributes, headers, callbacks and every byte of
    the response); the work that cannot change the result on an SCGI connection
    is skipped:

    * ``Date`` comes from the site's clock (``site.reactor.seconds()``, which is
      ``time.time()`` on every real reactor), formatted once per second;
    * no chunked decision: an SCGI response is delimited by the close;
    * no unquoting of a path that holds no ``%``.

    It serves SCGI connections only: over HTTP/1.1 its responses would lack the
    chunk framing that keeps a connection alive.  Subclass it as you would
    ``server.Request``; a site whose ``requestFactory`` is a stock ``Request``
    (or a subclass of it) is served by that class, unchanged.
    """

    def __init__(
        self,
        channel: Any,
        *args: Any,
        parsePOSTFormSubmission: bool | None = None,
        **kwargs: Any,
    ) -> None:
        """Set up the request for ``channel``, as ``server.Request`` does."""
        if args or kwargs or not _LEAN:
            super().__init__(  # type: ignore[no-untyped-call]
                channel,
                *args,
                parsePOSTFormSubmission=parsePOSTFormSubmission,
                **kwargs,
            )
            return
        initRequest(self, channel, parsePOSTFormSubmission)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        """The request is complete: process it, as ``http.Request`` does.

        A ``POST`` (whose body may be a form to parse) takes the stock path.
        """
        if not _LEAN or command == b"POST":
            super().requestReceived(command, path, version)  # type: ignore[no-untyped-call]
            return
        content: Any = self.content
        content.seek(0, 0)
        self.args = {}
        self.method, self.uri = command, path
        self.clientproto = version
        if _QUESTION not in path:
            self.path = path
        else:
            self.path, query = path.split(b"?", 1)
            self.args = parse_qs(query, 1)  # type: ignore[no-untyped-call]
        self.process()

    def process(self) -> None:
        """Find the resource and render it, as ``server.Request.process`` does."""
        if not _LEAN:  # pragma: no cover - every supported Twisted keeps the state
            super().process()  # type: ignore[no-untyped-call]
            return
        channel: Any = self.channel
        self.site = site = channel.site
        headers = self.responseHeaders
        date = _dateOf(site)
        store = responseHeaderStore(headers)
        if store is None:
            headers.setRawHeaders(b"Server", [_SERVER])
            headers.setRawHeaders(b"Date", [date])
        else:
            store[_SERVER_KEY] = [_SERVER]
            store[_DATE_KEY] = [date]
        path: bytes = self.path
        self.prepath = []
        rest = path[1:].split(b"/")
        self.postpath = list(map(unquote_to_bytes, rest)) if _PERCENT in path else rest
        if path == b"*":
            answerStar(self)
            return
        try:
            found = site.getResourceFor(self)
            applyEncoder(self, found)
            self.render(found)  # type: ignore[no-untyped-call]
        except BaseException:
            self.processingFailed(Failure())  # type: ignore[no-untyped-call]

    def setHeader(self, name: bytes | str, value: bytes | str) -> None:
        """Set a response header, as ``http.Request.setHeader`` does.

        A bytes name and a bytes value without line breaks are filed directly;
        anything else goes through ``setRawHeaders``, which encodes and sanitizes.

        :raises twisted.web.http_headers.InvalidHeaderName: for a name that is
            not a token, as the stock method does.
        """
        store = responseHeaderStore(self.responseHeaders)
        if (
            store is None
            or type(name) is not bytes
            or type(value) is not bytes
            or _LF in value
            or _CR in value
        ):
            super().setHeader(name, value)  # type: ignore[no-untyped-call]
            return
        store[headerKey(name)] = [value]

    def write(self, data: bytes) -> None:
        """Write ``data`` to the response, as ``server.Request.write`` does."""
        if not _LEAN or self.finished or not leanRequest(self):
            super().write(data)  # type: ignore[no-untyped-call]
            return
        if not self.startedWriting:
            self._writeHead()
            if self.method == b"HEAD" or self.code in NO_BODY_CODES:
                # As the stock Request: every later write is dropped.
                self.write = lambda data: None  # type: ignore[method-assign]
                return
        self.sentLength += len(data)
        if data:
            channel: Any = self.channel
            channel.write(data)

    def _writeHead(self) -> None:
        """Complete the response headers and hand them to the channel.

        The stock ``Request`` does the same, in the same order, and besides turns
        on chunk framing (a ``Transfer-Encoding`` header and ``chunked``), which
        an SCGI channel turns off before it writes the head.
        """
        headers = self.responseHeaders
        store = responseHeaderStore(headers)
        if store is None:
            contentType = headers.getRawHeaders(b"Content-Type")
            length = headers.getRawHeaders(b"Content-Length")
        else:
            # An empty list is no header, as getRawHeaders has it.
            contentType = store.get(_CONTENT_TYPE)
            length = store.get(_CONTENT_LENGTH)
        code = self.code
        if (
            code not in _NO_CONTENT_TYPE
            and not contentType
            and self.defaultContentType is not None
            and not (length and length[0] == b"0")
        ):
            default = self.defaultContentType
            if (
                store is None
                or type(default) is not bytes
                or _LF in default
                or _CR in default
            ):
                headers.setRawHeaders(b"Content-Type", [default])
            else:
                store[_CONTENT_TYPE] = [default]
        self.startedWriting = 1
        if (
            not length
            and code not in NO_BODY_CODES
            and self.method != b"HEAD"
            and self.clientproto == b"HTTP/1.1"
        ):
            # Where the stock Request turns chunking on, the SCGI channel turns it
            # off again: the request is left as the channel would leave it.
            self.chunked = 0
        if self.lastModified is not None:
            if headers.hasHeader(b"Last-Modified"):
                logRequestInfo(
                    self,
                    "Warning: last-modified specified both in"
                    " header list and lastModified attribute.",
                )
            else:
                headers.setRawHeaders(
                    b"Last-Modified",
                    [datetimeToString(self.lastModified)],  # type: ignore[no-untyped-call]
                )
        if self.etag is not None:
            headers.setRawHeaders(b"ETag", [self.etag])
        if self.cookies:
            headers.setRawHeaders(b"Set-Cookie", self.cookies)
        digits = _CODES.get(code)
        if digits is None:
            digits = b"%d" % (code,)
        channel: Any = self.channel
        channel.writeHeaders(self.clientproto, digits, self.code_message, headers)

    def finish(self) -> None:
        """End the response, as ``server.Request.finish`` does."""
        if not _LEAN or self.finished or not leanRequest(self):
            super().finish()  # type: ignore[no-untyped-call]
            return
        if not self.startedWriting:
            self.write(b"")
        channel = self.channel
        factory = getattr(channel, "factory", None)
        if factory is not None:
            factory.log(self)
        self.finished = 1
        if not self.queued:
            cleanUpRequest(self)


shareRequestLogger(SCGIRequest)
