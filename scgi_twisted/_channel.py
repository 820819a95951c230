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

The channel is the request's side of the connection; the rest is in parts:
:class:`~scgi_twisted._connection.Connection` (its base: the phase, the one deadline
timer, draining and the close), :class:`~scgi_twisted._response.ResponseWriter` (the
output), :class:`~scgi_twisted._upload.StreamedUpload` (a streamed body, itself the
producer its receiver controls) and :class:`~scgi_twisted._traversal.Traversal`
(through which the site finds the resource).
"""

from __future__ import annotations

import io
import socket
import sys
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from typing import Protocol as TypingProtocol

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import (
    IAddress,
    IHalfCloseableProtocol,
    IProducer,
)
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http import datetimeToString
from twisted.web.http_headers import Headers
from twisted.web.server import version as server_version
from zope.interface import implementer

from ._config import SCGIConfig
from ._connection import (
    _BODY,
    _CLOSED,
    _CLOSING,
    _DRAINING,
    _PROCESSING,
    Connection,
)
from ._environ import (
    SCGIVariables,
    client_address,
    is_secure,
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
from ._response import errorAnswer, responseHead
from ._sansio import (
    BodyReceived,
    HeadersReceived,
    RequestEnded,
    SCGIParser,
    State,
)
from ._streaming import IStreamingUploadResource
from ._traversal import Traversal
from ._upload import StreamedUpload, deliverBody

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


__all__ = [
    "SCGIChannel",
    "SCGIConfig",
    "deliverBody",
    "getSCGIVariables",
]

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


def _addresses(environ: dict[str, bytes]) -> tuple[IAddress, IPv4Address, bool]:
    """Return the client's address, the address it addressed, and whether it used TLS.

    :param environ: the request's CGI environment.
    """
    get = environ.get
    host, secure = _addressed(
        get("SERVER_NAME"),
        get("HTTP_HOST", b""),
        get("SERVER_PORT"),
        get("HTTPS"),
        get("REQUEST_SCHEME"),
    )
    family, address, port = client_address(environ)
    peer: IAddress
    if family == socket.AF_INET6:
        peer = IPv6Address("TCP", address, port)
    else:
        peer = IPv4Address("TCP", address, port)
    return peer, host, secure


SERVER_ADDRESSES_CACHED = 256
"""How many server addresses :func:`_addressed` remembers (least recently used
first out): a site is addressed under a handful of names."""


@lru_cache(maxsize=SERVER_ADDRESSES_CACHED)
def _addressed(
    server_name: bytes | None,
    host_header: bytes,
    server_port: bytes | None,
    https: bytes | None,
    scheme: bytes | None,
) -> tuple[IPv4Address, bool]:
    """Return the address the client addressed and whether it used TLS.

    The variables it depends on (``SERVER_NAME``, ``HTTP_HOST``, ``SERVER_PORT``,
    ``HTTPS``, ``REQUEST_SCHEME``) repeat from request to request, so the answer is
    remembered for them; the client's port, which does not, is not among them.
    ``IPv4Address`` is a value (compared and hashed by its fields) that twisted.web
    never assigns to, so one instance can stand for every request with the same
    host and port.
    """
    variables = {
        name: value
        for name, value in (
            ("SERVER_NAME", server_name),
            ("HTTP_HOST", host_header),
            ("SERVER_PORT", server_port),
            ("HTTPS", https),
            ("REQUEST_SCHEME", scheme),
        )
        if value is not None
    }
    secure = is_secure(variables)
    return IPv4Address("TCP", *server_address(variables, secure)), secure


def _renderStreaming(request: _Request, resource: Any) -> None:
    """Render a streaming resource now; its body is delivered as it arrives."""
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


@implementer(IHalfCloseableProtocol)
class SCGIChannel(Connection):
    """A connection from an SCGI frontend, carrying exactly one request.

    ``site``, ``factory``, ``requestFactory``, ``timeOut`` and ``callLater`` are set by
    ``Site.buildProtocol``, as for ``HTTPChannel``; :attr:`config` and
    :attr:`tracker` by the SCGI site.

    :ivar variables: the request's SCGI variables, once the header block is parsed.
    :ivar config: the limits and policies of this connection.
    :ivar tracker: the :class:`~scgi_twisted._connection.ConnectionTracker` told when
        the connection opens and closes, or ``None``.
    :ivar traversal: the request's :class:`~scgi_twisted._traversal.Traversal`, if
        it has a mount point or is looked up before its body: the site finds the
        resource through it.
    :ivar phase: where the connection is
        (:class:`~scgi_twisted._connection.Phase`).
    """

    site: Site
    requestFactory: Any
    variables: SCGIVariables | None = None
    traversal: Traversal | None = None
    _environ: dict[str, bytes] | None = None

    _parser: SCGIParser
    _request: _Request | None = None
    _upload: StreamedUpload | None = None
    _requestEnd: int | None = None
    # Independent of the phase (as _readPaused is, in Connection): the guard that
    # keeps the parser's events from being taken re-entrantly.
    _processing: bool = False

    # Connection events.

    def connectionMade(self) -> None:
        """Start the header-read deadline and the parser."""
        config = self.config
        self._parser = SCGIParser(
            max_header_size=config.max_header_size,
            max_variables=config.max_variables,
            max_body_size=config.max_body_size,
            merge_duplicates=config.merge_duplicates,
        )
        super().connectionMade()

    def dataReceived(self, data: bytes) -> None:
        """Feed the parser and act on every event it gives."""
        phase = self.phase
        if phase is _DRAINING:
            self._drain(len(data))
            return
        if phase is _CLOSING:
            return  # closed on our side: nothing more is acted on
        parser = self._parser
        parser.receive_data(data)
        self._processEvents()
        # Any read that leaves the body unfinished restarts the idle timeout, the
        # read that completed the header block included.
        if parser.state is State.BODY and self.phase is _BODY and not self._readPaused:
            self._setTimeout(self.timeOut)

    def readConnectionLost(self) -> None:
        """The peer will send nothing more: end the request or notice an abort."""
        phase = self.phase
        if phase is _DRAINING:
            self._closeConnection()
            return
        if phase is _CLOSING or phase is _CLOSED:
            return
        parser = self._parser
        if parser.state is State.DONE:
            if self.config.half_close:
                return
            _log.info(
                "The frontend closed the connection before the response to {uri} "
                "was complete",
                uri=self._requestURI(),
            )
            reason = _failure(ConnectionDone("the frontend went away"))
            self._abortRequest(reason, gone=True)
            self._closeConnection()
            return
        if parser.state is State.ERROR:  # pragma: no cover - errors start draining
            self._closeConnection()
            return
        parser.receive_data(b"")
        self._processEvents()

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
        if self._parser.bytes_received and not self._writer.started:
            self._writeError(408, "timed out waiting for the request")
        self._abortRequest(_failure(ConnectionDone("request timed out")))
        self.phase = _CLOSING
        self._writer.close(watched=False)
        self._arm(self.config.abort_timeout, self._forceAbort)

    # Parser events.

    def _processEvents(self) -> None:
        """Act on each event until the parser needs more bytes; no exception escapes."""
        if self._processing:
            return
        self._processing = True
        parser = self._parser
        try:
            try:
                while not self._readPaused:
                    event = parser.next_event()
                    if event is None:
                        return
                    if type(event) is BodyReceived:
                        upload = self._upload
                        if upload is not None:
                            upload.bodyReceived(event.data)
                        else:
                            request = self._request
                            if request is not None:
                                request.handleContentChunk(event.data)
                    elif type(event) is HeadersReceived:
                        self._headersReceived(event)
                    elif type(event) is RequestEnded:
                        self._requestEnded()
                    phase = self.phase
                    if phase is _DRAINING or phase is _CLOSING or phase is _CLOSED:
                        return
            except PrematureEOFError as error:
                self._prematureEOF(error)
            except RemoteProtocolError as error:
                self._protocolError(error)
        except Exception:
            self._internalError()
        finally:
            self._processing = False

    def _internalError(self) -> None:
        """Our own code failed: log it, answer 500 if possible, and close."""
        _log.failure("Unhandled error in the SCGI channel")
        try:
            if not self._writer.started:
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
        self.phase = _BODY
        self.variables = SCGIVariables(environ, event.raw)
        self._environ = environ
        mount = self.config.mount
        if mount is not None or "SCRIPT_NAME" in environ:
            self.traversal = Traversal(environ, mount)
        self._peer, self._host, self._secure = _addresses(environ)
        headers = request_headers(environ)
        request: _Request = self.requestFactory(self)
        addRawHeaders(request.requestHeaders, headers)
        request.parseCookies()
        request.gotLength(event.content_length)
        self._request = request
        metrics = self.metrics
        if metrics is not None:
            self._started = metrics.requestStarted()
        if event.content_length > _LARGE_BODY and hasattr(self.transport, "bufferSize"):
            # Fewer, larger reads for a large body (the transport reads bufferSize
            # bytes at a time); still a small, fixed bound per connection.
            self.transport.bufferSize = _LARGE_READ
        if (
            event.content_length
            and self.config.stream_uploads
            and self.config.streamsAt(request_uri(environ))
        ):
            traversal = self.traversal
            if traversal is None:
                traversal = self.traversal = Traversal(environ, mount)
            resource = traversal.lookUpEarly(request, self.site)
            if IStreamingUploadResource.providedBy(resource):
                self._upload = StreamedUpload(request, self)
                _renderStreaming(request, resource)

    # What the streamed upload asks of the connection (UploadReader), besides
    # pauseReading and resumeReading (Connection).

    def receiverFailed(self, failure: Failure) -> None:
        """The body's receiver failed in ``connectionLost``.

        While the request is unfinished it fails as one from ``render`` does (a
        500 page); after, the failure is logged.
        """
        request = self._request
        if request is not None:
            request.processingFailed(failure)
        else:
            _log.failure(
                "The receiver of the body of {uri} failed",
                failure,
                uri=self._requestURI(),
            )

    def _requestEnded(self) -> None:
        """The body is complete: hand the request to twisted.web."""
        self.phase = _PROCESSING
        self._disarm()
        upload = self._upload
        if upload is not None:
            upload.bodyComplete()
            return
        request = self._request
        assert request is not None and self._environ is not None
        environ = self._environ
        method = request_method(environ)
        # While the request is processed, the response head is held back and sent
        # with the first piece of the body (see writeHeaders).
        self._writer.hold()
        try:
            # Skips the form parse of a body that is surely no form (see there).
            receiveRequest(
                request, method, request_uri(environ), request_protocol(environ)
            )
        finally:
            self._writer.release()

    def _prematureEOF(self, error: PrematureEOFError) -> None:
        """The peer closed before the request was complete."""
        if error.bytes_received:
            _log.info(
                "The frontend closed the connection early: {error}", error=str(error)
            )
        self._abortRequest(_failure(error), gone=True)
        self._closeConnection()

    def _protocolError(self, error: RemoteProtocolError) -> None:
        """Answer a request the parser refused, then drain and close."""
        _log.warn(
            "Refused an SCGI request from {peer}: {status} {error}",
            peer=self.transport.getPeer() if self.transport else None,
            status=error.status_hint,
            error=str(error),
        )
        if not self._writer.started:
            # A peer that speaks HTTP is answered in HTTP, which it can read.
            self._writeError(
                error.status_hint, str(error), http=isinstance(error, HTTPRequestError)
            )
        self._abortRequest(_failure(error))
        parser = self._parser
        target = self._requestEnd
        if isinstance(error, BodyTooLargeError) and error.content_length is not None:
            assert parser.body_offset is not None
            target = parser.body_offset + error.content_length
        self._startDraining(target, already=parser.bytes_received)

    # The request's side of the close.

    def _responseUnfinished(self) -> bool:
        """Return whether the application has begun its response and not ended it."""
        return self._request is not None and self._writer.unfinished

    def _abortRequest(self, reason: Failure, gone: bool = False) -> None:
        """Tell the request (if any, and unfinished) that its connection is gone.

        The request first, so that the body's receiver, told next, cannot answer on
        a connection that is gone; a ``deliverBody`` still to come gets ``reason``.
        """
        request = self._request
        self._request = None
        if request is not None:
            if self._started is not None:
                self._countEnded(request, gone)
            request.connectionLost(reason)
        upload, self._upload = self._upload, None
        if upload is not None:
            upload.connectionLost(reason)

    def _writeError(self, status: int, message: str, http: bool = False) -> None:
        """Write a complete, short error response: every error answer goes here.

        :param http: answer in HTTP (a peer that speaks HTTP to the SCGI port).
        """
        answer = errorAnswer(status, message, http)
        self._writer.writeAnswer(answer)
        self._logRefused(status, len(answer.partition(b"\r\n\r\n")[2]))

    def _requestURI(self) -> bytes:
        """Return the request's URI for log lines."""
        if self.variables is None:
            return b"-"
        return request_uri(self.variables)

    def _bodyReceived(self) -> int:
        """Return how many bytes of the request body have arrived."""
        parser, end = self._parser, self._requestEnd
        offset = parser.body_offset
        if offset is None or end is None:
            return 0
        return min(parser.bytes_received, end) - offset

    # The channel surface a twisted.web Request uses (and getPeer, getHost,
    # isSecure: Connection).

    def writeHeaders(
        self, version: bytes, code: bytes, reason: bytes, headers: Headers
    ) -> None:
        """Write the CGI response head; never chunk framing, never a status line.

        :param version: ignored: the frontend owns the HTTP version.
        :param code: the status code, as digits.
        :param reason: the reason phrase; CR, LF and NUL become spaces.
        :param headers: the response headers (the request's ``responseHeaders``).
        """
        request = self._request
        if request is not None and request.chunked:
            request.chunked = 0
        try:
            head = responseHead(code, reason, headers, self._environ, request)
        except (LocalProtocolError, ValueError) as error:
            _log.error(
                "The application's response head for {uri} cannot be sent: {error}",
                uri=self._requestURI(),
                error=str(error),
            )
            self._writeError(500, "the application produced an invalid response")
            self._writer.discard()
            return
        self._writer.writeHead(head)

    # Writing the response: the ResponseWriter (_response.py) does it.

    def write(self, data: bytes) -> None:
        """Write response body bytes."""
        self._writer.write(data)

    def writeSequence(self, iovec: list[bytes]) -> None:
        """Write several pieces of response body."""
        self._writer.writeSequence(iovec)

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        """Let the response's producer write straight to the transport.

        If queued pieces of the body are still being written, the producer is
        registered once they are; a streaming one is paused until then.
        """
        self._writer.registerProducer(producer, streaming)

    def unregisterProducer(self) -> None:
        """Stop the response's producer."""
        self._writer.unregisterProducer()

    def requestDone(self, request: object) -> None:
        """The response is complete: close once the request is fully read."""
        self._request = None
        if self._started is not None:
            self._countEnded(request, None)
        phase = self.phase
        if phase is _CLOSED:
            return
        self._writer.flushHead()
        if phase is _PROCESSING:
            self._closeConnection()
        elif phase is _BODY:
            upload = self._upload
            if upload is not None:
                upload.responseFinished()
            self._startDraining(self._requestEnd, already=self._parser.bytes_received)

    def loseConnection(self) -> None:
        """Close the connection (used by ``Request.loseConnection``)."""
        self._writer.close()

    def _respondToBadRequestAndDisconnect(self) -> None:
        """Answer 400 and close; ``Request`` calls this for a malformed form body."""
        if not self._writer.started:
            self._writeError(400, "malformed request body")
        self._abortRequest(_failure(ConnectionDone("bad request body")))
        self._closeConnection()
