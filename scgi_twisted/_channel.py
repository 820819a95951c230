"""The Twisted channel: one SCGI connection feeding one stock ``server.Request``.

The channel is a :class:`~twisted.internet.protocol.Protocol` that gives every byte to
the sans-I/O parser and turns its events into the calls a ``twisted.web`` request
expects from ``twisted.web.http.HTTPChannel``: the request is
built once the header block is parsed, the body is streamed into ``request.content``,
and ``requestReceived`` runs when the body is complete.  Towards the frontend the
channel writes a CGI response (``Status:`` line, CRLF headers, body) and never chunk
framing, then closes.

Connection rules, all tested:

* The header block must arrive within the header timeout (``timeOut`` unless set) of
  the connection (slowloris);
  while the body arrives, ``timeOut`` is an idle timeout; once the request is complete
  the application has all the time it needs.
* Bad input gets a short ``Status: 4xx`` answer, one log line, and a clean close.
* Every request byte is read before the close: after an early answer the channel
  half-closes its side, drains the declared body (or lingers until the peer's EOF),
  and only then closes, so the kernel never turns the close into a reset.
* A read-EOF after a complete request means the client went away (nginx signals an
  abort that way) unless the site allows half-close.
"""

from __future__ import annotations

import contextlib
import io
import socket
import sys
import weakref
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast
from typing import Protocol as TypingProtocol

from twisted.internet.abstract import FileDescriptor
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IHalfCloseableProtocol,
    IProducer,
    IProtocol,
    IPullProducer,
    IPushProducer,
    ITCPTransport,
)
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http import datetimeToString, parse_qs
from twisted.web.http_headers import Headers
from twisted.web.server import version as server_version
from zope.interface import implementer

from ._environ import (
    SCGIVariables,
    client_address,
    is_secure,
    mount_depth,
    path_segments,
    request_headers,
    request_method,
    request_protocol,
    request_uri,
    server_address,
)
from ._errors import (
    BodyTooLargeError,
    HTTPRequestError,
    LocalProtocolError,
    PrematureEOFError,
    RemoteProtocolError,
)
from ._internals import addRawHeaders, receiveRequest
from ._sansio import (
    DEFAULT_MAX_HEADER_SIZE,
    DEFAULT_MAX_VARIABLES,
    BodyReceived,
    HeadersReceived,
    RequestEnded,
    SCGIParser,
    State,
    encode_http_error,
    encode_response_head,
)
from ._streaming import BodyProducer, IStreamingUploadResource, NotStreamingError

if TYPE_CHECKING:
    from twisted.web.server import Site


class _Request(TypingProtocol):
    """The part of ``twisted.web.server.Request`` that the channel drives.

    It is spelled out here because ``twisted.web.http`` is not typed.
    """

    requestHeaders: Headers
    chunked: int
    prepath: list[bytes] | None
    postpath: list[bytes] | None
    method: bytes
    uri: bytes
    path: bytes
    clientproto: bytes
    args: dict[bytes, list[bytes]]
    content: Any
    site: Any
    sitepath: list[bytes]

    def setHeader(self, name: bytes, value: bytes) -> None:
        """Set a response header."""

    def render(self, resource: Any) -> None:
        """Render a resource."""

    def processingFailed(self, reason: Failure) -> object:
        """Answer 500 for a failure."""

    def parseCookies(self) -> None:
        """Parse the Cookie headers."""

    def gotLength(self, length: int | None) -> None:
        """Open the body file."""

    def handleContentChunk(self, data: bytes) -> None:
        """Store body bytes."""

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        """Process the complete request."""

    def connectionLost(self, reason: Failure) -> None:
        """Tell the request that its connection went away."""


__all__ = ["SCGIChannel", "SCGIConfig", "deliverBody", "getSCGIVariables"]

_log = Logger()

_LARGE_BODY = 64 * 1024
"""A body larger than this is read in :data:`_LARGE_READ` pieces."""

_LARGE_READ = 256 * 1024
"""The read size for large bodies, in bytes."""


def _failure_current() -> Failure:
    """Return a ``Failure`` for the exception being handled."""
    error = sys.exc_info()[1]
    assert error is not None
    return Failure(error, type(error), error.__traceback__)  # type: ignore[no-untyped-call]


def _failure(error: BaseException) -> Failure:
    """Wrap an exception in a ``Failure`` (``Failure`` itself is untyped)."""
    return Failure(error)  # type: ignore[no-untyped-call]


_QUEUED_WRITE = 64 * 1024
"""A first piece of the body at least this large is not joined with the head."""

_WATCH_AFTER = 64 * 1024
"""A response is watched for a full transport buffer from this many bytes on: the
smallest buffer a transport pauses its producer at (``FileDescriptor.bufferSize``)."""


@implementer(IPullProducer)
class _WriteQueue:
    """Pieces of a response handed to the transport one at a time.

    Registered on the transport as a pull producer: the transport asks for the next
    piece only once it has sent everything before it, so each piece is sent from its
    own buffer.
    """

    def __init__(self, channel: SCGIChannel, pieces: list[bytes]) -> None:
        """Queue ``pieces`` for ``channel``'s transport."""
        self._channel = channel
        self.pieces = deque(pieces)

    def resumeProducing(self) -> None:
        """Write the next piece, or end the queue when it is empty."""
        channel = self._channel
        # Asked for more: the transport has sent everything written so far.
        channel._writeProgressed()
        if self.pieces:
            channel.transport.write(self.pieces.popleft())
            channel._writeStalled()
        elif channel._writeQueue is self:
            channel._queueDrained()

    def stopProducing(self) -> None:
        """The connection is gone: drop what is left."""
        self.pieces.clear()


@implementer(IPushProducer)
class _WriteWatch:
    """Registered on the transport while a response is written without a producer.

    The transport pauses it when its write buffer fills (the peer does not read fast
    enough) and resumes it once the buffer has drained: the channel's write timeout
    runs in between.
    """

    def __init__(self, channel: SCGIChannel) -> None:
        """Watch the transport of ``channel``."""
        self._channel = channel

    def pauseProducing(self) -> None:
        """The transport's buffer is full: start the write timeout."""
        self._channel._writeStalled()

    def resumeProducing(self) -> None:
        """The transport's buffer has drained: stop the write timeout."""
        self._channel._writeProgressed()

    def stopProducing(self) -> None:
        """The connection is gone; nothing to do."""


_REASONS = {
    400: b"Bad Request",
    408: b"Request Timeout",
    413: b"Content Too Large",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
}


@dataclass(frozen=True)
class SCGIConfig:
    """The limits and policies of SCGI connections, shared by all of a site's channels.

    :ivar max_header_size: the largest header block accepted, in bytes (431 beyond).
    :ivar max_variables: the largest number of variables accepted (431 beyond).
    :ivar max_body_size: the largest request body accepted, in bytes (413 beyond), or
        ``None`` for no limit.
    :ivar merge_duplicates: merge repeated ``HTTP_*`` variables (nginx 1.22 sends them)
        instead of refusing them.
    :ivar mount: the path prefix the application lives under when the frontend sends
        no usable ``SCRIPT_NAME``/``PATH_INFO``, e.g. ``b"/app"``.
    :ivar half_close: treat a read-EOF after a complete request as a half-close (keep
        serving) instead of as the client going away.
    :ivar linger_timeout: after an early answer, how long to wait for the peer to
        finish sending before the connection is aborted, in seconds.
    :ivar abort_timeout: after a timeout closes the connection, how long before it is
        aborted if the peer ignores the close, in seconds.
    :ivar max_drain: the most request bytes read and dropped after an early answer
        before the connection is aborted.
    :ivar header_timeout: how long the whole header block may take to arrive, in
        seconds; ``None`` means the channel's ``timeOut``.
    :ivar stream_uploads: where the resource of a request with a body is looked up
        as soon as its headers arrive, so that an :class:`IStreamingUploadResource`
        can read the body as it comes: ``False`` nowhere (the default: the tree is
        traversed once the body is in, as twisted.web does), ``True`` for every
        path, or a tuple of path prefixes (``b"/upload"``, matched whole segments at
        a time against the request's URL path as sent).
    :ivar write_timeout: how long written output may wait for the peer to take it
        before the connection is aborted, in seconds; ``None`` for no limit.  It runs
        while the transport's write buffer is full and, once the connection is being
        closed, until everything is sent.
    """

    max_header_size: int = DEFAULT_MAX_HEADER_SIZE
    max_variables: int = DEFAULT_MAX_VARIABLES
    max_body_size: int | None = None
    merge_duplicates: bool = True
    mount: bytes | None = None
    half_close: bool = False
    linger_timeout: float = 5.0
    abort_timeout: float = 15.0
    max_drain: int = 128 * 1024 * 1024
    header_timeout: float | None = None
    stream_uploads: bool | tuple[bytes, ...] = False
    write_timeout: float | None = 300.0  # _site.DEFAULT_WRITE_TIMEOUT

    def streamsAt(self, uri: bytes) -> bool:
        """Return whether a request for ``uri`` with a body is looked up early.

        :param uri: the request's URI, with any query.
        """
        scope = self.stream_uploads
        if isinstance(scope, bool):
            return scope
        path = uri.partition(b"?")[0]
        return any(path == prefix or path.startswith(prefix + b"/") for prefix in scope)


_DEFAULT_CONFIG = SCGIConfig()


def getSCGIVariables(request: object) -> SCGIVariables | None:
    """Return the raw SCGI variables of a request served over SCGI.

    Call it while the request is being processed (in ``render_*`` or before
    ``finish()``); keep the result if it is needed later.

    :param request: a ``twisted.web`` request.
    :returns: the variables exactly as the frontend sent them, or ``None`` if the
        request did not arrive over SCGI (or has already finished).
    """
    channel = getattr(request, "channel", None)
    if isinstance(channel, SCGIChannel):
        return channel.variables
    return None


def deliverBody(request: object, protocol: IProtocol) -> None:
    """Deliver the body of a streamed request to ``protocol`` as it arrives.

    Call it from the ``render_*`` method of an :class:`IStreamingUploadResource`.

    :param request: the request being rendered.
    :param protocol: receives ``makeConnection(producer)`` (an ``IPushProducer`` for
        flow control), ``dataReceived(data)`` for every piece of the body, and
        ``connectionLost(reason)`` at its end: ``ResponseDone`` when the body is
        complete, any other failure when it never will be.
    :raises NotStreamingError: if the request's body is not streamed (the resource
        does not provide the interface, the request has no body, the body was
        already given to a protocol, the response is finished, or the request did
        not arrive over SCGI).

    If the connection was lost before the call, the protocol still gets what had
    arrived, then ``connectionLost`` with the reason.
    """
    channel = getattr(request, "channel", None)
    if channel is None:
        # A lost request no longer knows its channel (Request.connectionLost).
        with contextlib.suppress(TypeError):  # not a weakref-able object
            channel = _streamedBy.get(request)
    if not isinstance(channel, SCGIChannel) or not channel._streamingBody:
        raise NotStreamingError("this request's body is not streamed")
    channel._deliverBodyTo(protocol)


_streamedBy: weakref.WeakKeyDictionary[object, SCGIChannel] = (
    weakref.WeakKeyDictionary()
)
"""The channel of each request whose body is streamed, while the request lives."""


@implementer(IHalfCloseableProtocol)
class SCGIChannel(Protocol):
    """A connection from an SCGI frontend, carrying exactly one request.

    ``site``, ``factory``, ``requestFactory``, ``timeOut`` and ``callLater`` are set by
    ``Site.buildProtocol``, as for ``HTTPChannel``; :attr:`config` by the SCGI site.

    :ivar variables: the request's SCGI variables, once the header block is parsed.
    :ivar config: the limits and policies of this connection.
    """

    site: Site
    requestFactory: Any
    transport: Any
    callLater: Any
    timeOut: float | None = 60.0
    config: SCGIConfig = _DEFAULT_CONFIG
    variables: SCGIVariables | None = None
    _environ: dict[str, bytes] | None = None

    _parser: SCGIParser
    _request: _Request | None = None
    _timeoutCall: IDelayedCall | None = None
    _peer: IAddress | None = None
    _host: IPv4Address | None = None
    _secure: bool = False
    _bodyComplete: bool = False
    _responseStarted: bool = False
    _responseDone: bool = False
    _discardResponse: bool = False
    _mountPending: bool = True
    _draining: bool = False
    _drained: int = 0
    _drainTarget: int | None = None
    _requestEnd: int | None = None
    _lingerCall: IDelayedCall | None = None
    _abortCall: IDelayedCall | None = None
    _lost: bool = False
    _tracker: Any = None
    _traversal: tuple[Any, list[bytes], list[bytes], list[bytes], Any] | None = None
    _traversalError: Exception | None = None
    _streamingBody: bool = False
    _bodyReceiver: IProtocol | None = None
    _bodyPending: list[bytes]
    _bodyPaused: bool = False
    _bodyConsumerPaused: bool = False
    _bodyDelivered: bool = False
    _bodyStopped: bool = False
    _bodyNotified: bool = False
    _bodyFailure: Failure | None = None
    _processing: bool = False
    _holdHead: bool = False
    _heldHead: bytes | None = None
    _writeQueue: _WriteQueue | None = None
    _producer: tuple[IProducer, bool] | None = None
    _writeWatch: _WriteWatch | None = None
    _writeCall: IDelayedCall | None = None
    _written: int = 0

    # Connection events.

    def connectionMade(self) -> None:
        """Start the header-read deadline and the parser."""
        config = self.config
        self._bodyPending = []
        self._parser = SCGIParser(
            max_header_size=config.max_header_size,
            max_variables=config.max_variables,
            max_body_size=config.max_body_size,
            merge_duplicates=config.merge_duplicates,
        )
        if ITCPTransport.providedBy(self.transport):
            with contextlib.suppress(OSError):
                self.transport.setTcpNoDelay(True)
        if self._tracker is not None and not self._tracker._channelOpened(self):
            # Over the connection limit: the site paused the transport and calls
            # _admitted() once a slot is free.
            return
        self._admitted()

    def _admitted(self) -> None:
        """Start the header-read deadline: the connection is being served."""
        header_timeout = self.config.header_timeout
        self._setTimeout(self.timeOut if header_timeout is None else header_timeout)

    def dataReceived(self, data: bytes) -> None:
        """Feed the parser and act on every event it gives."""
        if self._draining:
            self._drain(len(data))
            return
        parser = self._parser
        parser.receive_data(data)
        self._processEvents()
        # Any read that leaves the body unfinished restarts the idle timeout, the
        # read that completed the header block included.
        if parser.state is State.BODY and not (
            self._draining or self._lost or self._bodyPaused
        ):
            self._setTimeout(self.timeOut)

    def readConnectionLost(self) -> None:
        """The peer will send nothing more: end the request or notice an abort."""
        if self._draining:
            self._closeConnection()
            return
        parser = self._parser
        if parser.state is State.DONE:
            if self._responseDone or self.config.half_close:
                return
            _log.info(
                "The frontend closed the connection before the response to {uri} "
                "was complete",
                uri=self._requestURI(),
            )
            self._abortRequest(_failure(ConnectionDone("the frontend went away")))
            self._closeConnection()
            return
        if parser.state is State.ERROR:  # pragma: no cover - errors start draining
            self._closeConnection()
            return
        parser.receive_data(b"")
        self._processEvents()

    def writeConnectionLost(self) -> None:
        """Our side was half-closed after an early answer; wait for the peer's EOF."""

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """Tell an unfinished request that its connection is gone."""
        self._lost = True
        self._heldHead = None
        self._writeQueue = None
        self._writeWatch = None
        self._setTimeout(None)
        for call in (self._lingerCall, self._abortCall, self._writeCall):
            if call is not None and call.active():
                call.cancel()
        self._lingerCall = self._abortCall = self._writeCall = None
        self._abortRequest(reason)
        if self._tracker is not None:
            self._tracker._channelClosed(self)

    def _setTimeout(self, seconds: float | None) -> None:
        """Start, restart (``seconds``) or stop (``None``) the request timer."""
        call = self._timeoutCall
        if seconds is None:
            if call is not None:
                if call.active():
                    call.cancel()
                self._timeoutCall = None
        elif call is not None and call.active():
            call.reset(seconds)
        else:
            self._timeoutCall = self.callLater(seconds, self.timeoutConnection)

    def timeoutConnection(self) -> None:
        """The header block or the body stalled: answer 408 if possible and close."""
        _log.info(
            "Timed out waiting for the request from {peer} ({state})",
            peer=self.transport.getPeer() if self.transport else None,
            state=self._parser.state.value,
        )
        if self._responseUnfinished():
            # A streaming resource is mid-answer: a close would end it as if whole.
            self._abortRequest(_failure(ConnectionDone("request timed out")))
            self._forceAbort()
            return
        if self._parser.bytes_received and not self._responseStarted:
            self._writeError(408, "timed out waiting for the request")
        self._abortRequest(_failure(ConnectionDone("request timed out")))
        self._unwatchWrites(closing=True)
        self.transport.loseConnection()
        self._abortCall = self.callLater(self.config.abort_timeout, self._forceAbort)

    # Parser events.

    def _processEvents(self) -> None:
        """Take every event the parser has ready; no exception escapes."""
        if self._processing:
            return
        self._processing = True
        try:
            try:
                self._takeEvents()
            except PrematureEOFError as error:
                self._prematureEOF(error)
            except RemoteProtocolError as error:
                self._protocolError(error)
        except Exception:
            self._internalError()
        finally:
            self._processing = False

    def _takeEvents(self) -> None:
        """Act on each event until the parser needs more bytes."""
        parser = self._parser
        while not self._bodyPaused:
            event = parser.next_event()
            if event is None:
                return
            if type(event) is BodyReceived:
                if self._streamingBody:
                    self._bodyChunk(event.data)
                else:
                    request = self._request
                    if request is not None:
                        request.handleContentChunk(event.data)
            elif type(event) is HeadersReceived:
                self._headersReceived(event)
            elif type(event) is RequestEnded:
                self._requestEnded()
            if self._draining or self._lost:
                return

    def _internalError(self) -> None:
        """Our own code failed: log it, answer 500 if possible, and close."""
        _log.failure("Unhandled error in the SCGI channel")
        try:
            if not self._responseStarted:
                self._writeError(500, "internal error")
            self._abortRequest(_failure(ConnectionDone("internal error")))
            self._startDraining(self._requestEnd, already=self._parser.bytes_received)
        except Exception:
            _log.failure("Unhandled error while closing the SCGI channel")
            self.transport.abortConnection()

    def _headersReceived(self, event: HeadersReceived) -> None:
        """Build the stock request from the CGI environment."""
        environ = event.environ
        assert self._parser.body_offset is not None
        self._requestEnd = self._parser.body_offset + event.content_length
        self.variables = SCGIVariables(environ, event.raw)
        self._environ = environ
        self._secure = secure = is_secure(environ)
        family, host, port = client_address(environ)
        if family == socket.AF_INET6:
            self._peer = IPv6Address("TCP", host, port)
        else:
            self._peer = IPv4Address("TCP", host, port)
        server_host, server_port = server_address(environ, secure)
        self._host = IPv4Address("TCP", server_host, server_port)
        headers = request_headers(environ)
        request: _Request = self.requestFactory(self)
        addRawHeaders(request.requestHeaders, headers)
        request.parseCookies()
        request.gotLength(event.content_length)
        self._request = request
        if event.content_length > _LARGE_BODY and hasattr(self.transport, "bufferSize"):
            # Fewer, larger reads for a large body (the transport reads bufferSize
            # bytes at a time); still a small, fixed bound per connection.
            self.transport.bufferSize = _LARGE_READ
        if (
            event.content_length
            and self.config.stream_uploads
            and self.config.streamsAt(request_uri(environ))
        ):
            self._lookUpEarly(request)

    def _lookUpEarly(self, request: _Request) -> None:
        """Find the resource before the body arrives; render it now if it streams.

        The result of the traversal is kept, so that the ordinary path (rendering once
        the body is complete) does not traverse the tree a second time.
        """
        environ = self.variables
        assert environ is not None
        uri = request_uri(environ)
        path, _, query = uri.partition(b"?")
        if path == b"*":
            return
        request.method = request_method(environ)
        request.uri = uri
        request.clientproto = request_protocol(environ)
        request.path = path
        # Twisted's own parser, as in Request.requestReceived: it takes any bytes.
        request.args = parse_qs(query, 1) if query else {}  # type: ignore[no-untyped-call]
        request.site = site = self.site
        request.prepath = []
        request.postpath = path_segments(path)
        try:
            resource = site.getResourceFor(request)  # type: ignore[no-untyped-call]
        except Exception as error:
            # The ordinary path raises it again, once the body is complete, and
            # answers with its error page: the tree is still traversed once.
            self._traversalError = error
            return
        if IStreamingUploadResource.providedBy(resource):
            self._streamingBody = True
            with contextlib.suppress(TypeError):  # a request that has no weakref
                _streamedBy[request] = self
            content = request.content
            if content is not None:
                content.close()
            request.content = io.BytesIO()
            request.setHeader(b"Server", server_version)
            request.setHeader(b"Date", datetimeToString())  # type: ignore[no-untyped-call]
            try:
                request.render(resource)
            except Exception:
                request.processingFailed(_failure_current())
            return
        self._traversal = (
            resource,
            list(request.prepath or ()),
            list(request.postpath or ()),
            list(getattr(request, "sitepath", ())),
            request.site,
        )

    def _cachedResource(self, request: Any) -> Any:
        """Return the resource found before the body arrived, restoring the paths.

        :returns: the resource, or ``None`` if there is no cached traversal.
        :raises Exception: what the traversal before the body arrived raised.
        """
        error = self._traversalError
        if error is not None:
            self._traversalError = None
            raise error
        cached = self._traversal
        if cached is None:
            return None
        self._traversal = None
        resource, prepath, postpath, sitepath, site = cached
        request.prepath = prepath
        request.postpath = postpath
        request.sitepath = sitepath
        request.site = site
        return resource

    # Streamed bodies.
    #
    # The transport is paused (_bodyPaused) while the receiver asked for a pause
    # (_bodyConsumerPaused), or while there is no receiver yet and a chunk waits for
    # one in _bodyPending.  The receiver gets exactly one connectionLost.

    def _bodyChunk(self, data: bytes) -> None:
        """Hand a piece of a streamed body on, or hold it until a receiver exists."""
        receiver = self._bodyReceiver
        if receiver is not None:
            receiver.dataReceived(data)
        elif not (self._bodyDelivered or self._bodyStopped):
            self._bodyPending.append(data)
            self._pauseTransport()

    def _deliverBodyTo(self, protocol: IProtocol) -> None:
        """Start delivering the streamed body to ``protocol``."""
        if self._bodyDelivered or self._bodyStopped:
            raise NotStreamingError(
                "the body was already delivered to a protocol, or the response is "
                "finished"
            )
        self._bodyDelivered = True
        self._bodyReceiver = protocol
        # As with IResponse.deliverBody, the protocol's "transport" is a producer.
        producer: Any = BodyProducer(self)
        protocol.makeConnection(producer)
        self._flushBody()

    def _flushBody(self) -> None:
        """Deliver the held chunks while the receiver wants them, then read on."""
        pending = self._bodyPending
        while pending and self._bodyReceiver is not None:
            if self._bodyConsumerPaused:
                return
            self._bodyReceiver.dataReceived(pending.pop(0))
        if self._bodyReceiver is None or self._bodyConsumerPaused:
            return
        if self._bodyFailure is not None:
            self._notifyBodyEnd(self._bodyFailure)
        elif self._bodyComplete:
            self._notifyBodyEnd(None)
        else:
            self._resumeTransport()

    def _pauseTransport(self) -> None:
        """Stop reading the connection (and its idle timeout) for the body."""
        if self._bodyPaused or self._lost or self._draining:
            return
        self._bodyPaused = True
        self._setTimeout(None)
        self.transport.pauseProducing()

    def _resumeTransport(self) -> None:
        """Read the connection again and act on what has already arrived."""
        if not self._bodyPaused:
            return
        self._bodyPaused = False
        if self._lost or self._draining:
            return
        self.transport.resumeProducing()
        if not self._bodyComplete:
            self._setTimeout(self.timeOut)
        self._processEvents()

    def _pauseBody(self) -> None:
        """The receiver asks for no more of the body until it resumes."""
        if self._bodyReceiver is None:
            return
        self._bodyConsumerPaused = True
        self._pauseTransport()

    def _resumeBody(self) -> None:
        """The receiver wants the body again: held chunks first, then the connection."""
        if self._bodyReceiver is None or not self._bodyConsumerPaused:
            return
        self._bodyConsumerPaused = False
        self._flushBody()

    def _stopBody(self) -> None:
        """The receiver wants no more of the body; the rest is read and dropped."""
        if self._bodyReceiver is None:
            return
        self._bodyStopped = True
        self._bodyConsumerPaused = False
        self._bodyPending = []
        self._notifyBodyEnd(
            _failure(ConnectionDone("the body's receiver stopped the delivery"))
        )
        self._resumeTransport()

    def _notifyBodyEnd(self, reason: Failure | None) -> None:
        """Tell the body's receiver, once, that the body ended (``None``: complete).

        An exception from its ``connectionLost`` fails the request as one from
        ``render`` does (a 500 page), or is logged once the request is over.
        """
        receiver = self._bodyReceiver
        if receiver is None or self._bodyNotified:
            return
        self._bodyNotified = True
        self._bodyReceiver = None
        self._bodyPending = []
        if reason is None:
            reason = _failure(ResponseDone("the request body is complete"))
        try:
            receiver.connectionLost(reason)
        except Exception:
            failure = _failure_current()
            request = self._request
            if request is not None and not self._responseDone:
                request.processingFailed(failure)
            else:
                _log.failure(
                    "The receiver of the body of {uri} failed",
                    failure,
                    uri=self._requestURI(),
                )

    def _requestEnded(self) -> None:
        """The body is complete: hand the request to twisted.web."""
        self._bodyComplete = True
        self._setTimeout(None)
        if self._streamingBody:
            self._notifyBodyEnd(None)
            if self._responseDone:
                self._closeConnection()
            return
        request = self._request
        assert request is not None and self._environ is not None
        environ = self._environ
        method = request_method(environ)
        # While the request is processed, the response head is held back and sent
        # with the first piece of the body (see writeHeaders).
        self._holdHead = True
        try:
            # Skips the form parse of a body that is surely no form (see there).
            receiveRequest(
                request, method, request_uri(environ), request_protocol(environ)
            )
        finally:
            self._holdHead = False
            self._flushHead()

    def _prematureEOF(self, error: PrematureEOFError) -> None:
        """The peer closed before the request was complete."""
        if error.bytes_received:
            _log.info(
                "The frontend closed the connection early: {error}", error=str(error)
            )
        self._abortRequest(_failure(error))
        self._closeConnection()

    def _protocolError(self, error: RemoteProtocolError) -> None:
        """Answer a request the parser refused, then drain and close."""
        _log.warn(
            "Refused an SCGI request from {peer}: {status} {error}",
            peer=self.transport.getPeer() if self.transport else None,
            status=error.status_hint,
            error=str(error),
        )
        if not self._responseStarted:
            if isinstance(error, HTTPRequestError):
                # The peer speaks HTTP: answer in HTTP, which it can read.
                self._responseStarted = True
                answer = encode_http_error(error.status_hint, str(error))
                self.transport.write(answer)
                self._logRefused(
                    error.status_hint, len(answer.partition(b"\r\n\r\n")[2])
                )
            else:
                self._writeError(error.status_hint, str(error))
        self._abortRequest(_failure(error))
        parser = self._parser
        target = self._requestEnd
        if isinstance(error, BodyTooLargeError) and error.content_length is not None:
            assert parser.body_offset is not None
            target = parser.body_offset + error.content_length
        self._startDraining(target, already=parser.bytes_received)

    # Draining: read and drop what the peer still sends, then close.

    def _startDraining(self, target: int | None, already: int = 0) -> None:
        """Half-close our side and read until ``target`` bytes or the peer's EOF.

        :param target: the stream offset at which the request ends, when known.
        :param already: how many bytes of the stream were read so far.
        """
        if self._draining or self._lost:
            return
        self._draining = True
        if self._bodyPaused:
            self._bodyPaused = False
            self.transport.resumeProducing()
        self._drained = already
        self._drainTarget = target
        self._setTimeout(None)
        if target is not None and already >= target:
            self._closeConnection()
            return
        self._unwatchWrites(closing=True)
        loseWrite = getattr(self.transport, "loseWriteConnection", None)
        if loseWrite is not None:
            loseWrite()
        self._lingerCall = self.callLater(self.config.linger_timeout, self._forceAbort)

    def _drain(self, count: int) -> None:
        """Drop ``count`` bytes read while draining; close once the request is read."""
        self._drained += count
        call = self._lingerCall
        if call is not None and call.active():
            call.reset(self.config.linger_timeout)
        target = self._drainTarget
        if target is not None and self._drained >= target:
            self._closeConnection()
        elif self._drained > self.config.max_drain:
            _log.info("Stopped draining after {count} bytes", count=self._drained)
            self._forceAbort()

    def _closeConnection(self) -> None:
        """Close once our output is flushed; every input byte has been read.

        The peer has the write timeout to take what is left of our output.
        """
        if self._lingerCall is not None and self._lingerCall.active():
            self._lingerCall.cancel()
        self._lingerCall = None
        self._setTimeout(None)
        self._unwatchWrites(closing=True)
        self.transport.loseConnection()
        self._writeStalled()

    # The write timeout: a peer that stops reading must not hold the connection (and
    # what is buffered for it) forever.

    def _watchWrites(self, size: int) -> None:
        """Count ``size`` bytes written; have the transport report a full buffer.

        A transport's buffer cannot fill before :data:`_WATCH_AFTER` bytes were
        written, so short responses are not watched at all.  Not while another
        producer is registered: the transport reports to that one.
        """
        self._written += size
        if (
            self._written >= _WATCH_AFTER
            and self._writeWatch is None
            and self._producer is None
            and self._writeQueue is None
            and self.config.write_timeout is not None
            and not self._lost
        ):
            watch = self._writeWatch = _WriteWatch(self)
            self.transport.registerProducer(watch, True)

    def _unwatchWrites(self, closing: bool = False) -> None:
        """Take the watch off the transport (another producer, or the close, is next).

        :param closing: whether the connection is being closed: a timeout already
            running goes on (the close completes only once everything is sent);
            otherwise it stops, since nothing would report the buffer's draining.
        """
        if self._writeWatch is not None:
            self._writeWatch = None
            if not closing:
                self._writeProgressed()
            if not self._lost:
                self.transport.unregisterProducer()

    def _writeStalled(self) -> None:
        """Output waits for the peer: start the write timeout, unless it runs."""
        timeout = self.config.write_timeout
        call = self._writeCall
        if timeout is None or self._lost or (call is not None and call.active()):
            return
        self._writeCall = self.callLater(timeout, self._writeTimedOut)

    def _writeProgressed(self) -> None:
        """The peer took our output: stop the write timeout."""
        call = self._writeCall
        if call is not None:
            self._writeCall = None
            if call.active():
                call.cancel()

    def _writeTimedOut(self) -> None:
        """The peer took none of our output for the write timeout: abort."""
        self._writeCall = None
        _log.warn(
            "Aborted the connection from {peer}: it took none of the response to "
            "{uri} for {timeout:g} s",
            peer=self.transport.getPeer() if self.transport else None,
            uri=self._requestURI(),
            timeout=self.config.write_timeout,
        )
        self._abortRequest(_failure(ConnectionDone("write timed out")))
        self._forceAbort()

    def _shutDown(self) -> None:
        """The server is stopping: abandon the request and close, then abort.

        An unfinished response is aborted at once: the close that ends an SCGI
        response would tell the frontend that the truncated answer is complete.
        """
        if self._lost:
            return
        unfinished = self._responseUnfinished()
        self._abortRequest(_failure(ConnectionDone("the server is shutting down")))
        self._setTimeout(None)
        if unfinished:
            self._forceAbort()
            return
        self._unwatchWrites(closing=True)
        self.transport.loseConnection()
        if self._abortCall is None:
            self._abortCall = self.callLater(
                self.config.abort_timeout, self._forceAbort
            )

    def _responseUnfinished(self) -> bool:
        """Return whether the application has begun its response and not ended it."""
        return (
            self._request is not None
            and self._responseStarted
            and not self._responseDone
            and not self._discardResponse
        )

    def _forceAbort(self) -> None:
        """Abort a connection whose peer ignored our close."""
        self._lingerCall = self._abortCall = None
        abort = getattr(self.transport, "abortConnection", None)
        if abort is not None:
            abort()
        else:  # pragma: no cover - every Twisted stream transport can abort
            self.transport.loseConnection()

    def _abortRequest(self, reason: Failure) -> None:
        """Tell the request (if any, and unfinished) that its connection is gone.

        The request first, so that the body's receiver, told next, cannot answer on
        a connection that is gone; a ``deliverBody`` still to come gets ``reason``.
        """
        request = self._request
        self._request = None
        if request is not None and not self._responseDone:
            request.connectionLost(reason)
        if self._streamingBody and not self._bodyComplete:
            if not self._bodyDelivered and self._bodyFailure is None:
                self._bodyFailure = reason
            self._notifyBodyEnd(reason)

    def _writeError(self, status: int, message: str) -> None:
        """Write a complete, short error response."""
        self._responseStarted = True
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
        self.transport.write(head + payload)
        self._logRefused(status, len(payload))

    def _logRefused(self, status: int, length: int) -> None:
        """Tell the site (if it keeps such a log) of an answer the channel wrote."""
        logRefused = getattr(self.factory, "logRefused", None)
        if logRefused is not None:
            logRefused(self, status, length)

    def _requestURI(self) -> bytes:
        """Return the request's URI for log lines."""
        if self.variables is None:
            return b"-"
        return request_uri(self.variables)

    # The channel surface a twisted.web Request uses.

    def getPeer(self) -> IAddress:
        """Return the client's address, from ``REMOTE_ADDR`` and ``REMOTE_PORT``."""
        if self._peer is None:
            return IPv4Address("TCP", "0.0.0.0", 0)
        return self._peer

    def getHost(self) -> IPv4Address:
        """Return the address the client addressed, from the Host and SERVER_*."""
        if self._host is None:
            return IPv4Address("TCP", "localhost", 80)
        return self._host

    def isSecure(self) -> bool:
        """Return whether the client used TLS to reach the frontend."""
        return self._secure

    def writeHeaders(
        self, version: bytes, code: bytes, reason: bytes, headers: Headers
    ) -> None:
        """Write the CGI response head; never chunk framing, never a status line.

        :param version: ignored: the frontend owns the HTTP version.
        :param code: the status code, as digits.
        :param reason: the reason phrase; CR, LF and NUL become spaces.
        :param headers: the response headers (the request's ``responseHeaders``).
        """
        self._responseStarted = True
        request = self._request
        if request is not None and request.chunked:
            request.chunked = 0
        # SCGI responses are delimited by the close: never chunk framing, whoever
        # set the header.
        headers.removeHeader(b"Transfer-Encoding")
        reason = reason.replace(b"\r", b" ").replace(b"\n", b" ").replace(b"\0", b" ")
        pairs = [
            (name, value)
            for name, values in headers.getAllRawHeaders()
            for value in values
        ]
        if code == b"200" and self._behindApache():
            pairs = self._absoluteLocations(pairs)
        try:
            head = encode_response_head(int(code), reason, pairs)
        except (LocalProtocolError, ValueError) as error:
            _log.error(
                "The application's response head for {uri} cannot be sent: {error}",
                uri=self._requestURI(),
                error=str(error),
            )
            self._writeError(500, "the application produced an invalid response")
            self._discardResponse = True
            return
        if self._holdHead and self._producer is None:
            self._heldHead = head
        else:
            self._watchWrites(len(head))
            self.transport.write(head)

    def _behindApache(self) -> bool:
        """Return whether the frontend says it is Apache httpd (``SERVER_SOFTWARE``)."""
        environ = self._environ
        software = environ.get("SERVER_SOFTWARE", b"") if environ else b""
        return software[:6].lower() == b"apache"

    def _absoluteLocations(
        self, pairs: list[tuple[bytes, bytes]]
    ) -> list[tuple[bytes, bytes]]:
        """Make a ``Location`` path of a 200 response an absolute URL, for Apache.

        ``mod_proxy_scgi`` takes a 200 whose ``Location`` starts with ``/`` for a CGI
        internal redirect and asks the backend again (``ProxySCGIInternalRedirect``,
        on by default), where ``twisted.web`` sends the 200 as it is.  The same URL,
        absolute (scheme and host as ``prePathURL()`` has them), passes through.
        """
        request = self._request
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

    # Writing the response.  While the request is being processed, the head waits in
    # _heldHead for the first piece of the body: a small piece is written with it in
    # one buffer; a large one is queued behind it (_WriteQueue), so that the
    # transport sends each from its own buffer instead of joining them into a new
    # one (a copy of the whole piece: a third of the CPU of a 1 MiB response).  What
    # is written while the queue is not empty joins the queue, in order.

    def _flushHead(self) -> None:
        """Write the held response head, if any."""
        head = self._heldHead
        if head is not None:
            self._heldHead = None
            self.transport.write(head)

    def write(self, data: bytes) -> None:
        """Write response body bytes."""
        if self._discardResponse:
            return
        queue = self._writeQueue
        if queue is not None:
            queue.pieces.append(data)
            return
        if self._writeWatch is None:
            self._watchWrites(len(data))
        head = self._heldHead
        if head is not None:
            self._heldHead = None
            if len(data) < _QUEUED_WRITE:
                data = head + data
            elif self._producer is None and isinstance(self.transport, FileDescriptor):
                self._startQueue([head, data])
                return
            else:
                self.transport.write(head)
        self.transport.write(data)

    def writeSequence(self, iovec: list[bytes]) -> None:
        """Write several pieces of response body."""
        if self._discardResponse:
            return
        if self._writeQueue is not None:
            self._writeQueue.pieces.extend(iovec)
            return
        self._watchWrites(sum(map(len, iovec)))
        self._flushHead()
        self.transport.writeSequence(iovec)

    def _startQueue(self, pieces: list[bytes]) -> None:
        """Hand ``pieces`` to the transport one at a time, through a pull producer."""
        self._unwatchWrites()
        queue = self._writeQueue = _WriteQueue(self, pieces)
        self.transport.registerProducer(queue, False)

    def _queueDrained(self) -> None:
        """The queue is empty: let the application's producer, if any, take over."""
        self._writeQueue = None
        self._writeProgressed()
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
        self._unwatchWrites()
        self._flushHead()
        self._producer = (producer, streaming)
        if self._writeQueue is None:
            self.transport.registerProducer(producer, streaming)
        elif streaming:
            cast(IPushProducer, producer).pauseProducing()

    def unregisterProducer(self) -> None:
        """Stop the response's producer."""
        self._producer = None
        if self._writeQueue is None:
            self.transport.unregisterProducer()

    def requestDone(self, request: object) -> None:
        """The response is complete: close once the request is fully read."""
        self._responseDone = True
        self._request = None
        if self._lost:
            return
        self._flushHead()
        if self._bodyComplete:
            self._closeConnection()
        else:
            if self._streamingBody:
                self._bodyStopped = True
                self._bodyConsumerPaused = False
                self._notifyBodyEnd(
                    _failure(ConnectionDone("the response finished before the body"))
                )
            self._startDraining(self._requestEnd, already=self._parser.bytes_received)

    def loseConnection(self) -> None:
        """Close the connection (used by ``Request.loseConnection``)."""
        self._unwatchWrites(closing=True)
        self.transport.loseConnection()
        self._writeStalled()

    def _respondToBadRequestAndDisconnect(self) -> None:
        """Answer 400 and close; ``Request`` calls this for a malformed form body."""
        if not self._responseStarted:
            self._writeError(400, "malformed request body")
        self._abortRequest(_failure(ConnectionDone("bad request body")))
        self._closeConnection()

    # Mounting: called once per request by the SCGI site.

    def _applyMount(self, request: Any) -> None:
        """Move the mount point's segments from ``postpath`` to ``prepath``, once."""
        environ = self._environ
        if not self._mountPending or environ is None:
            return
        self._mountPending = False
        mount = self.config.mount
        if mount is None and "SCRIPT_NAME" not in environ:
            return  # nothing can move
        postpath = request.postpath
        assert postpath is not None
        depth = mount_depth(postpath, environ, mount)
        if depth:
            request.prepath = postpath[:depth]
            request.postpath = postpath[depth:]
