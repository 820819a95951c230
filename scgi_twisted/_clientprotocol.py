"""One SCGI client exchange on a connection, and the :class:`Response` it delivers.

:class:`SCGIClientProtocol` writes an encoded request head and its body, feeds what
comes back to the sans-I/O :class:`~scgi_twisted._clientsansio.ResponseParser`, and
fires its Deferred with a :class:`Response` once the head has arrived.  The transport
is then paused until :meth:`Response.deliverBody` is called, so an unread body is never
buffered beyond one read.  It is the one response parser of the project: the network
client (:mod:`scgi_twisted.client`) and the in-memory test client
(:mod:`scgi_twisted.testing`) both run it.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any, cast

from twisted.internet.defer import Deferred
from twisted.internet.error import (
    ConnectError,
    ConnectionAborted,
    ConnectionDone,
    ConnectionRefusedError,
)
from twisted.internet.interfaces import IPushProducer, ITransport
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http_headers import Headers
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer

from ._clientresponse import (
    ResponseBody,
    ResponseHead,
    ResponseParser,
    ResponseState,
)
from ._errors import (
    ConnectFailedError,
    LocalProtocolError,
    MalformedResponseError,
    ResponseTimeoutError,
)

__all__ = [
    "ERR_BODY_TWICE",
    "ERR_PRODUCER_TOO_LONG",
    "ERR_PRODUCER_TOO_SHORT",
    "Body",
    "Response",
    "SCGIClientProtocol",
    "connectFailure",
]

ERR_PRODUCER_TOO_LONG = "the body producer wrote more than its length of {length} bytes"
ERR_PRODUCER_TOO_SHORT = (
    "the body producer wrote {written} bytes, not its length {length}"
)
ERR_BODY_TWICE = "the response body can be delivered only once"

Body = bytes | IBodyProducer | None
"""A request body: bytes, a producer whose ``length`` is known, or nothing."""


def _failure(error: BaseException) -> Failure:
    """Wrap an exception in a ``Failure`` (``Failure`` itself is untyped)."""
    return Failure(error)  # type: ignore[no-untyped-call]


# The response.


@implementer(IPushProducer)
class _BodyTransport:
    """What a body protocol gets as its transport: flow control over the socket."""

    def __init__(self, protocol: SCGIClientProtocol) -> None:
        self._protocol = protocol

    def pauseProducing(self) -> None:
        """Stop reading from the socket until :meth:`resumeProducing`."""
        self._protocol._pauseReading()

    def resumeProducing(self) -> None:
        """Read from the socket again."""
        self._protocol._resumeReading()

    def stopProducing(self) -> None:
        """Give up on the body: close the connection, and call the consumer no more."""
        response = self._protocol.response
        assert response is not None
        response._consumer = None
        self._protocol._abort(_failure(ConnectionAborted("the body was not wanted")))

    def abortConnection(self) -> None:
        """Give up on the body (``twisted.web.client.readBody`` calls this)."""
        self.stopProducing()


class Response:
    """The response of an SCGI server, delivered once its head has arrived.

    The attributes follow ``twisted.web.iweb.IResponse``, so ``treq`` and
    ``twisted.web.client.readBody`` can read the body too.

    :ivar code: the status code (200 when the server sent no ``Status``; 302 when it
        sent only a ``Location``).
    :ivar phrase: the reason phrase; the standard one when the server sent none.
    :ivar headers: the response headers, without ``Status``.
    :ivar rawHeaders: the headers exactly as sent, in order.
    :ivar length: the ``Content-Length``, or ``None`` when the server sent none.
    """

    def __init__(self, head: ResponseHead, protocol: SCGIClientProtocol) -> None:
        """Wrap a parsed head; the body arrives through ``protocol``."""
        self.code = head.status
        phrase = head.reason
        if not phrase:
            try:
                phrase = HTTPStatus(head.status).phrase.encode("ascii")
            except ValueError:
                phrase = b""
        self.phrase = phrase
        self.headers = Headers()
        for name, value in head.headers:
            self.headers.addRawHeader(name, value)
        self.rawHeaders = head.headers
        self.length = head.content_length
        self._protocol = protocol
        self._buffered: list[bytes] = []
        self._consumer: Protocol | None = None
        self._delivered = False
        self._reason: Failure | None = None

    def __repr__(self) -> str:
        """Show the status."""
        return f"<Response {self.code} {self.phrase.decode('latin-1')!r}>"

    def deliverBody(self, protocol: Protocol) -> None:
        """Stream the body to ``protocol``.

        The protocol's ``makeConnection`` gets a transport with ``pauseProducing``,
        ``resumeProducing``, ``stopProducing`` and ``abortConnection``; then
        ``dataReceived`` runs for each piece of body, and ``connectionLost`` once,
        with ``ResponseDone`` after a complete body, or with the error
        (:class:`MalformedResponseError`, :class:`ResponseTimeoutError`, ...).
        A protocol that calls ``stopProducing`` or ``abortConnection`` gets no more
        calls: the connection is closed at once.

        :param protocol: the protocol to give the body to.
        :raises LocalProtocolError: if the body was already delivered.
        """
        if self._delivered:
            raise LocalProtocolError(ERR_BODY_TWICE)
        self._delivered = True
        self._consumer = protocol
        protocol.makeConnection(  # type: ignore[no-untyped-call]
            cast(ITransport, _BodyTransport(self._protocol))
        )
        buffered, self._buffered = self._buffered, []
        buffered.reverse()
        while buffered and self._consumer is protocol:
            protocol.dataReceived(buffered.pop())
        if self._consumer is not protocol:
            return
        if self._reason is not None:
            self._consumer = None
            protocol.connectionLost(self._reason)
        else:
            self._protocol._bodyWanted()

    def collect(self, collector: Callable[[bytes], object]) -> Deferred[None]:
        """Call ``collector`` with each piece of the body as it arrives.

        :param collector: called with each piece; if it raises, the connection is
            closed and the Deferred fails with that exception.
        :returns: a Deferred that fires with ``None`` once the body is complete, or
            fails with the client's error.
        """
        finished: Deferred[None] = Deferred()
        self.deliverBody(_Collector(collector, finished))
        return finished

    def content(self) -> Deferred[bytes]:
        """Read the whole body.

        :returns: a Deferred that fires with the body, or fails with the client's
            error.
        """
        pieces: list[bytes] = []
        finished = self.collect(pieces.append)
        return finished.addCallback(lambda _: b"".join(pieces))

    def text(self, encoding: str | None = None) -> Deferred[str]:
        """Read the whole body as text.

        :param encoding: the codec; by default the ``charset`` of the
            ``Content-Type``, else UTF-8.  Undecodable bytes are replaced.
        :returns: a Deferred that fires with the text.
        """
        codec = encoding or _charset(self.headers) or "utf-8"
        return self.content().addCallback(lambda body: body.decode(codec, "replace"))

    # Called by the protocol.

    def _dataReceived(self, data: bytes) -> None:
        """Hand on, or keep until a consumer is given, a piece of body."""
        if self._consumer is not None:
            self._consumer.dataReceived(data)
        else:
            self._buffered.append(data)

    def _finished(self, reason: Failure) -> None:
        """The body is complete (``ResponseDone``) or failed."""
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            consumer.connectionLost(reason)
        else:
            self._reason = reason


def _charset(headers: Headers) -> str | None:
    """Return the ``charset`` parameter of a ``Content-Type``, if any."""
    values = headers.getRawHeaders(b"content-type")
    if not values:
        return None
    for parameter in values[-1].split(b";")[1:]:
        name, _, value = parameter.partition(b"=")
        if name.strip().lower() == b"charset":
            charset = value.strip().strip(b'"').decode("ascii", "replace")
            try:
                "".encode(charset)
            except LookupError:
                return None
            return charset
    return None


class _Collector(Protocol):
    """A body protocol that calls a function with each piece."""

    def __init__(self, collector: Callable[[bytes], object], finished: Deferred[None]):
        self._collector = collector
        self._finished = finished

    def dataReceived(self, data: bytes) -> None:
        """Give a piece to the collector; if it raises, fail and stop the body."""
        try:
            self._collector(data)
        except Exception:
            error = Failure()  # type: ignore[no-untyped-call]
            cast(_BodyTransport, self.transport).stopProducing()
            self._finished.errback(error)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """Fire the Deferred: with ``None`` after ``ResponseDone``, else the error."""
        if isinstance(reason.value, ResponseDone):
            self._finished.callback(None)
        else:
            self._finished.errback(reason)


# The connection.


class _LengthEnforcingConsumer:
    """The consumer a body producer writes to: passes on at most ``length`` bytes."""

    def __init__(self, protocol: SCGIClientProtocol, length: int) -> None:
        self._protocol = protocol
        self.length = length
        self.written = 0

    def write(self, data: bytes) -> None:
        """Write body bytes, refusing any beyond the declared length."""
        if self._protocol._failure is not None:
            return
        self.written += len(data)
        if self.written > self.length:
            self._protocol._abort(
                _failure(
                    LocalProtocolError(ERR_PRODUCER_TOO_LONG.format(length=self.length))
                )
            )
            return
        self._protocol.transport.write(data)

    def registerProducer(self, producer: object, streaming: bool) -> None:
        """Producers are registered by the client itself; nothing to do."""

    def unregisterProducer(self) -> None:
        """Producers are unregistered by the client itself; nothing to do."""


class SCGIClientProtocol(Protocol):
    """One SCGI exchange: write the request, parse the response, report the end."""

    transport: Any

    def __init__(
        self,
        head: bytes,
        body: Body,
        method: bytes,
        describe: str,
        result: Deferred[Response],
    ) -> None:
        self._head = head
        self._body = body
        self._describe = describe
        self._result = result
        self._parser = ResponseParser(method=method)
        self.response: Response | None = None
        self._failure: Failure | None = None
        self._connected = False
        self._lost = False
        self._awaitingConsumer = False
        self._pausedByConsumer = False
        self._producing: IBodyProducer | None = None
        self.lostDeferred: Deferred[None] = Deferred()

    # Connection events.

    def connectionMade(self) -> None:
        """Send the request."""
        self._connected = True
        self.transport.write(self._head)
        body = self._body
        self._body = None
        if isinstance(body, bytes):
            if body:
                self.transport.write(body)
        elif body is not None:
            self._startProducer(body)

    def dataReceived(self, data: bytes) -> None:
        """Parse response bytes."""
        if self._failure is not None:
            return
        self._parser.receive_data(data)
        self._processEvents()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """End the exchange: the body is complete at EOF, or the exchange failed."""
        self._lost = True
        self._stopProducer()
        parser = self._parser
        if self._failure is None and parser.state in (
            ResponseState.HEAD,
            ResponseState.BODY,
        ):
            if isinstance(reason.value, ConnectionDone) or parser.body_remaining == 0:
                parser.receive_data(b"")
                self._processEvents()
            else:
                self._failure = _failure(
                    MalformedResponseError(
                        "the connection was lost before the response was complete: "
                        + reason.getErrorMessage(),
                        bytes_received=parser.bytes_received,
                    )
                )
        failure = self._failure
        if failure is not None:
            if self.response is None:
                if not self._result.called:
                    self._result.errback(failure)
            else:
                self.response._finished(failure)
        self.lostDeferred.callback(None)

    # Parser events.

    def _processEvents(self) -> None:
        """Act on every event the parser has ready."""
        parser = self._parser
        try:
            while self._failure is None:
                event = parser.next_event()
                if event is None:
                    return
                if type(event) is ResponseBody:
                    assert self.response is not None
                    self.response._dataReceived(event.data)
                elif type(event) is ResponseHead:
                    self._headReceived(event)
                else:
                    assert self.response is not None
                    self.response._finished(_failure(ResponseDone("complete")))
        except MalformedResponseError as error:
            self._abort(_failure(error))

    def _headReceived(self, head: ResponseHead) -> None:
        """Fire the result with the response; hold the body until it is wanted.

        When no body can follow (``Content-Length: 0``, ``HEAD``, 204, 304), the
        socket is not paused, so the exchange ends without a consumer.
        """
        response = self.response = Response(head, self)
        if not self._lost and self._parser.body_remaining != 0:
            self._awaitingConsumer = True
            self.transport.pauseProducing()
        self._result.callback(response)

    # Flow control, used by the response.

    def _bodyWanted(self) -> None:
        """A consumer is there: read the body."""
        self._awaitingConsumer = False
        if not self._pausedByConsumer and not self._lost:
            self.transport.resumeProducing()

    def _pauseReading(self) -> None:
        """The consumer wants no more for now."""
        self._pausedByConsumer = True
        if not self._lost:
            self.transport.pauseProducing()

    def _resumeReading(self) -> None:
        """The consumer wants more."""
        self._pausedByConsumer = False
        if not self._awaitingConsumer and not self._lost:
            self.transport.resumeProducing()

    def _abort(self, failure: Failure) -> None:
        """Fail the exchange: close now, report ``failure`` once the socket is gone."""
        if self._failure is None:
            self._failure = failure
        if self._connected and not self._lost:
            self.transport.abortConnection()

    # The request body.

    def _startProducer(self, producer: IBodyProducer) -> None:
        """Stream the body from ``producer``, at the pace the socket allows."""
        length = cast(int, producer.length)
        consumer = _LengthEnforcingConsumer(self, length)
        self._producing = producer
        self.transport.registerProducer(producer, True)
        produced: Deferred[None] = producer.startProducing(  # type: ignore[no-untyped-call]
            consumer
        )

        def finished(_: object) -> None:
            self._stopProducer()
            if self._failure is None and consumer.written != length:
                self._abort(
                    _failure(
                        LocalProtocolError(
                            ERR_PRODUCER_TOO_SHORT.format(
                                written=consumer.written, length=length
                            )
                        )
                    )
                )

        def failed(reason: Failure) -> None:
            self._stopProducer()
            self._abort(reason)

        produced.addCallbacks(finished, failed)

    def _stopProducer(self) -> None:
        """Unregister the body producer.

        After a connection is lost there is nothing to do: the transport has
        stopped its producer already.
        """
        producer, self._producing = self._producing, None
        if producer is not None and not self._lost:
            self.transport.unregisterProducer()

    def _timedOut(self, timeout: float) -> None:
        """The exchange took too long."""
        parser = self._parser
        if self.response is None:
            message = f"no response from {self._describe} within {timeout:g} seconds"
        elif parser.body_remaining == 0:
            message = (
                f"{self._describe} sent the whole body (Content-Length) but did not "
                f"close the connection within {timeout:g} seconds"
            )
        else:
            message = (
                f"the response body from {self._describe} was not complete within "
                f"{timeout:g} seconds"
            )
        self._abort(
            _failure(
                ResponseTimeoutError(
                    message, timeout=timeout, head_received=self.response is not None
                )
            )
        )


def connectFailure(failure: Failure, describe: str) -> Failure:
    """Turn a failure to connect into :class:`ConnectFailedError`."""
    if not isinstance(failure.value, ConnectError):
        return failure
    refused = isinstance(failure.value, ConnectionRefusedError)
    if refused:
        message = f"connection refused by {describe}"
    else:
        message = f"could not connect to {describe}: {failure.getErrorMessage()}"
    error = ConnectFailedError(message, endpoint=describe, refused=refused)
    error.__cause__ = failure.value
    return _failure(error)
