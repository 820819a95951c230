"""The response writer: one SCGI response written to one transport.

The channel hands it the encoded head and every piece of the body; it decides how
they reach the transport, and watches that the peer takes them:

* While the request is being processed (:meth:`ResponseWriter.hold`), the head waits
  for the first piece of the body: a small piece is written with it in one buffer; a
  large one is queued behind it (:class:`_WriteQueue`), so that the transport sends
  each from its own buffer instead of joining them into a new one (a copy of the
  whole piece).  What is written while the queue is not empty joins the queue, in
  order.
* The application's producer is registered on the transport, after the queue.
* A response whose head could not be sent is discarded: the channel answered 500
  instead, and nothing more of the application's response is written.
* The write timeout: a peer that stops reading must not hold the connection (and what
  is buffered for it) forever.  It runs while the transport's write buffer is full
  (the transport pauses a producer: the queue, a watch registered for it, or the
  application's) and, once the connection is being closed, until everything is
  sent.  When it expires the writer calls its ``timedOut`` callback; the channel
  aborts the connection.

The writer knows the transport and that callback, never the channel.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any, cast

from twisted.internet.abstract import FileDescriptor
from twisted.internet.error import AlreadyCalled, AlreadyCancelled
from twisted.internet.interfaces import (
    IDelayedCall,
    IProducer,
    IPullProducer,
    IPushProducer,
    ITCPTransport,
)
from twisted.web.http_headers import Headers
from zope.interface import implementer

from ._internals import RESPONSE_RAW, headerKey, responseHeaderStore
from ._sansio import encode_http_error, encode_response_head

__all__ = ["ResponseWriter", "cancelTimer", "errorAnswer", "responseHead"]

_QUEUED_WRITE = 64 * 1024
"""A first piece of the body at least this large is not joined with the head."""

_WATCH_AFTER = 64 * 1024
"""A response is watched for a full transport buffer from this many bytes on: the
smallest buffer a transport pauses its producer at (``FileDescriptor.bufferSize``)."""


_TRANSFER_ENCODING = headerKey(b"Transfer-Encoding") if RESPONSE_RAW else b""
"""The key of ``Transfer-Encoding`` in the response headers' own dict."""

_STATUS = {b"%d" % (status.value,): status.value for status in HTTPStatus}
"""The standard status codes, by their digits (``int`` reads any other)."""

_REASONS = {
    400: b"Bad Request",
    408: b"Request Timeout",
    413: b"Content Too Large",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
}


def errorAnswer(status: int, message: str, http: bool = False) -> bytes:
    """Return a complete, short error response of the server's own.

    :param status: the status code.
    :param message: what went wrong, for the body.
    :param http: an HTTP response (for a peer that speaks HTTP to the SCGI port)
        rather than a CGI one.
    """
    if http:
        return encode_http_error(status, message)
    body = f"{status} {_REASONS.get(status, b'Error').decode()}: {message}\n"
    payload = body.encode("utf-8", "replace")
    head = encode_response_head(
        status,
        _REASONS.get(status, b""),
        [
            (b"Content-Type", b"text/plain; charset=utf-8"),
            (b"Content-Length", b"%d" % len(payload)),
        ],
    )
    return head + payload


def responseHead(
    code: bytes,
    reason: bytes,
    headers: Headers,
    environ: Mapping[str, bytes] | None,
    request: object,
) -> bytes:
    """Return the CGI response head; never chunk framing, never a status line.

    :param code: the status code, as digits.
    :param reason: the reason phrase; CR, LF and NUL become spaces.
    :param headers: the response headers; any ``Transfer-Encoding`` is removed.
    :param environ: the request's CGI environment, if known.
    :param request: the request (its ``prePathURL``, for Apache).
    :raises LocalProtocolError: if the head cannot be sent (a bad name or value).
    :raises ValueError: if ``code`` is not a number.
    """
    # SCGI responses are delimited by the close: never chunk framing, whoever set
    # the header.
    store = responseHeaderStore(headers)
    if store is None:
        headers.removeHeader(b"Transfer-Encoding")
    else:
        store.pop(_TRANSFER_ENCODING, None)
    # Looked for as ints: a bytes needle is first tried as one, and fails.
    if 13 in reason or 10 in reason or 0 in reason:
        reason = reason.replace(b"\r", b" ").replace(b"\n", b" ").replace(b"\0", b" ")
    pairs = [
        (name, value) for name, values in headers.getAllRawHeaders() for value in values
    ]
    if code == b"200" and _behindApache(environ):
        pairs = _absoluteLocations(pairs, request)
    status = _STATUS.get(code)
    if status is None:
        status = int(code)
    return encode_response_head(status, reason, pairs)


def _behindApache(environ: Mapping[str, bytes] | None) -> bool:
    """Return whether the frontend says it is Apache httpd (``SERVER_SOFTWARE``)."""
    software = environ.get("SERVER_SOFTWARE", b"") if environ else b""
    return software[:6].lower() == b"apache"


def _absoluteLocations(
    pairs: list[tuple[bytes, bytes]], request: object
) -> list[tuple[bytes, bytes]]:
    """Make a ``Location`` path of a 200 response an absolute URL, for Apache.

    ``mod_proxy_scgi`` takes a 200 whose ``Location`` starts with ``/`` for a CGI
    internal redirect and asks the backend again (``ProxySCGIInternalRedirect``, on
    by default), where ``twisted.web`` sends the 200 as it is.  The same URL,
    absolute (scheme and host as ``prePathURL()`` has them), passes through.
    """
    prePathURL = getattr(request, "prePathURL", None)
    if prePathURL is None:
        return pairs
    fixed = []
    for name, value in pairs:
        if name.lower() != b"location" or not value.startswith(b"/"):
            fixed.append((name, value))
            continue
        scheme, _, rest = prePathURL().partition(b"://")
        if value.startswith(b"//"):
            fixed.append((name, scheme + b":" + value))
        else:
            fixed.append((name, scheme + b"://" + rest.partition(b"/")[0] + value))
    return fixed


@implementer(IPullProducer)
class _WriteQueue:
    """Pieces of a response handed to the transport one at a time.

    Registered on the transport as a pull producer: the transport asks for the next
    piece only once it has sent everything before it, so each piece is sent from its
    own buffer.
    """

    def __init__(self, writer: ResponseWriter, pieces: list[bytes]) -> None:
        """Queue ``pieces`` for the transport of ``writer``."""
        self._writer = writer
        self.pieces = deque(pieces)

    def resumeProducing(self) -> None:
        """Write the next piece, or end the queue when it is empty."""
        writer = self._writer
        # Asked for more: the transport has sent everything written so far.
        writer.progressed()
        if self.pieces:
            writer.transport.write(self.pieces.popleft())
            writer.stalled()
        else:
            writer.queueDrained(self)

    def stopProducing(self) -> None:
        """The connection is gone: drop what is left."""
        self.pieces.clear()


@implementer(IPushProducer)
class _WriteWatch:
    """Registered on the transport while a response is written without a producer.

    The transport pauses it when its write buffer fills (the peer does not read fast
    enough) and resumes it once the buffer has drained: the write timeout runs in
    between.
    """

    def __init__(self, writer: ResponseWriter) -> None:
        """Watch the transport of ``writer``."""
        self._writer = writer

    def pauseProducing(self) -> None:
        """The transport's buffer is full: start the write timeout."""
        self._writer.stalled()

    def resumeProducing(self) -> None:
        """The transport's buffer has drained: stop the write timeout."""
        self._writer.progressed()

    def stopProducing(self) -> None:
        """The connection is gone; nothing to do."""


def cancelTimer(timer: IDelayedCall) -> None:
    """Cancel ``timer`` unless it was called or cancelled already.

    One call where ``active()`` then ``cancel()`` would be two: a connection
    cancels a deadline or two in the life of every request.
    """
    try:  # noqa: SIM105 - a suppress() context costs more than the try
        timer.cancel()
    except (AlreadyCalled, AlreadyCancelled):
        pass


def _nothing() -> None:
    """Do nothing: the write timeout of a connection that is gone."""


class ResponseWriter:
    """Write one response to a transport; watch that the peer takes it.

    :ivar started: whether the response has begun (a head or an answer written).
    :ivar discarded: whether the application's response is dropped (its head could
        not be sent and an error answer took its place).
    :ivar transport: the transport written to.
    """

    started: bool = False
    discarded: bool = False

    _connected: bool = True
    """Whether the transport is still connected: the writer's own view of the
    connection (it registers nothing on a transport that is gone)."""
    _holding: bool = False
    _heldHead: bytes | None = None
    _queue: _WriteQueue | None = None
    _producer: tuple[IProducer, bool] | None = None
    _watch: _WriteWatch | None = None
    _timer: IDelayedCall | None = None
    _written: int = 0
    _sent: bool = False
    """Whether part of the response went to the transport already."""
    _noDelay: bool = False
    """Whether Nagle's algorithm was turned off for this connection."""

    def __init__(
        self,
        transport: Any,
        callLater: Callable[..., IDelayedCall],
        timeout: float | None,
        timedOut: Callable[[], None],
    ) -> None:
        """Write to ``transport``.

        :param transport: the connection's transport.
        :param callLater: schedules the write timeout (the reactor's ``callLater``).
        :param timeout: the write timeout, in seconds; ``None`` for none.
        :param timedOut: called when the peer took none of our output for
            ``timeout`` seconds; the connection is then to be aborted.
        """
        self.transport = transport
        self._callLater = callLater
        self._timeout = timeout
        self._timedOut = timedOut

    @property
    def unfinished(self) -> bool:
        """Whether the response has begun and is being written (not discarded)."""
        return self.started and not self.discarded

    # The head.

    def hold(self) -> None:
        """Hold the next head back until the first piece of the body (or release)."""
        self._holding = True

    def release(self) -> None:
        """Stop holding heads; write a held one."""
        self._holding = False
        head = self._heldHead
        if head is not None:
            self._heldHead = None
            self._sent = True
            self.transport.write(head)

    def writeHead(self, head: bytes) -> None:
        """Write the encoded response head, or hold it (see :meth:`hold`)."""
        self.started = True
        if self._holding and self._producer is None:
            self._heldHead = head
        else:
            self._watchWrites(len(head))
            self._sent = True
            self.transport.write(head)

    def writeAnswer(self, answer: bytes) -> None:
        """Write a complete answer of the server's own (an error response)."""
        self.started = True
        self.transport.write(answer)

    def discard(self) -> None:
        """Drop the application's response from now on."""
        self.discarded = True

    def flushHead(self) -> None:
        """Write the held response head, if any."""
        head = self._heldHead
        if head is not None:
            self._heldHead = None
            self._sent = True
            self.transport.write(head)

    # The body.

    def write(self, data: bytes) -> None:
        """Write response body bytes."""
        if self.discarded:
            return
        queue = self._queue
        if queue is not None:
            queue.pieces.append(data)
            return
        if self._watch is None:
            self._written += len(data)
            if self._written >= _WATCH_AFTER:
                self._startWatch()
        self._pieceWritten()
        transport = self.transport
        head = self._heldHead
        if head is not None:
            self._heldHead = None
            if len(data) < _QUEUED_WRITE:
                data = head + data
            elif self._producer is None and isinstance(transport, FileDescriptor):
                self._startQueue([head, data])
                return
            else:
                transport.write(head)
        transport.write(data)

    def writeSequence(self, iovec: list[bytes]) -> None:
        """Write several pieces of response body."""
        if self.discarded:
            return
        if self._queue is not None:
            self._queue.pieces.extend(iovec)
            return
        self._watchWrites(sum(map(len, iovec)))
        self._pieceWritten()
        self.flushHead()
        self.transport.writeSequence(iovec)

    def _pieceWritten(self) -> None:
        """A piece of the body goes to the transport: Nagle off from the second on.

        Nagle's algorithm holds a small segment back while an earlier one is
        unacknowledged, and the frontend may delay its acknowledgement: each piece
        of a stream of small writes (server-sent events, say) would wait for it.
        A response written at once has no earlier segment in flight, so only
        responses written in several pieces pay for the socket option.
        """
        if not self._sent:
            self._sent = True
        elif not self._noDelay:
            self._sendEachWrite()

    def _sendEachWrite(self) -> None:
        """Turn Nagle's algorithm off: the response is being written in pieces."""
        self._noDelay = True
        transport = self.transport
        if ITCPTransport.providedBy(transport):
            with contextlib.suppress(OSError):
                transport.setTcpNoDelay(True)

    def _startQueue(self, pieces: list[bytes]) -> None:
        """Hand ``pieces`` to the transport one at a time, through a pull producer."""
        self._unwatch()
        queue = self._queue = _WriteQueue(self, pieces)
        self.transport.registerProducer(queue, False)

    def queueDrained(self, queue: _WriteQueue) -> None:
        """``queue`` is empty: let the application's producer, if any, take over."""
        if self._queue is not queue:
            return
        self._queue = None
        self.progressed()
        self.transport.unregisterProducer()
        waiting = self._producer
        if waiting is not None:
            producer, streaming = waiting
            self.transport.registerProducer(producer, streaming)
            if streaming:
                cast(IPushProducer, producer).resumeProducing()

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        """Let the response's producer write straight to the transport.

        If queued pieces of the body are still being written, the producer is
        registered once they are; a streaming one is paused until then.
        """
        self._unwatch()
        self.flushHead()
        self._producer = (producer, streaming)
        if self._queue is None:
            self.transport.registerProducer(producer, streaming)
        elif streaming:
            cast(IPushProducer, producer).pauseProducing()

    def unregisterProducer(self) -> None:
        """Stop the response's producer."""
        self._producer = None
        if self._queue is None:
            self.transport.unregisterProducer()

    # Closing.

    def close(self, watched: bool = True) -> None:
        """Close the connection once everything written is sent.

        :param watched: whether the write timeout covers the close (the peer has
            that long to take the rest of our output); a close that has its own
            deadline (a timeout, a shutdown) passes ``False``.
        """
        if self._watch is not None:
            self._unwatch(closing=True)
        self.transport.loseConnection()
        if watched:
            self.stalled()

    def closeWrite(self) -> None:
        """Half-close our side once everything written is sent (if it can)."""
        self._unwatch(closing=True)
        loseWrite = getattr(self.transport, "loseWriteConnection", None)
        if loseWrite is not None:
            loseWrite()

    def lost(self) -> None:
        """The connection is gone: write nothing more, stop the write timeout.

        The callback is dropped too: it refers to the channel, which refers to this
        writer, and the pair is freed as soon as nothing else holds it.
        """
        self._connected = False
        self._timedOut = _nothing
        self._heldHead = None
        self._queue = None
        self._watch = None
        timer = self._timer
        if timer is not None:
            self._timer = None
            cancelTimer(timer)

    # The write timeout.

    def _watchWrites(self, size: int) -> None:
        """Count ``size`` bytes written; have the transport report a full buffer.

        A transport's buffer cannot fill before :data:`_WATCH_AFTER` bytes were
        written, so short responses are not watched at all.  Not while another
        producer is registered: the transport reports to that one.
        """
        self._written += size
        if self._written >= _WATCH_AFTER:
            self._startWatch()

    def _startWatch(self) -> None:
        """Register the watch, unless a producer (or the watch) already is."""
        if (
            self._watch is None
            and self._producer is None
            and self._queue is None
            and self._timeout is not None
            and self._connected
        ):
            watch = self._watch = _WriteWatch(self)
            self.transport.registerProducer(watch, True)

    def _unwatch(self, closing: bool = False) -> None:
        """Take the watch off the transport (another producer, or the close, is next).

        :param closing: whether the connection is being closed: a timeout already
            running goes on (the close completes only once everything is sent);
            otherwise it stops, since nothing would report the buffer's draining.
        """
        if self._watch is not None:
            self._watch = None
            if not closing:
                self.progressed()
            if self._connected:
                self.transport.unregisterProducer()

    def stalled(self) -> None:
        """Output waits for the peer: start the write timeout, unless it runs."""
        timeout = self._timeout
        timer = self._timer
        if (
            timeout is None
            or not self._connected
            or (timer is not None and timer.active())
        ):
            return
        self._timer = self._callLater(timeout, self._expired)

    def progressed(self) -> None:
        """The peer took our output: stop the write timeout."""
        timer = self._timer
        if timer is not None:
            self._timer = None
            cancelTimer(timer)

    def _expired(self) -> None:
        """The peer took none of our output for the write timeout."""
        self._timer = None
        self._timedOut()
