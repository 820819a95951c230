"""A Twisted SCGI client, and ``scgi-client``, the curl of SCGI backends.

The client talks to an SCGI server the way a frontend (nginx, Apache, lighttpd) does: it
connects over any Twisted client endpoint, sends the variables a frontend would send
(:func:`scgi_twisted._clientsansio.request_variables`) and the body, and reads the CGI
response back.  Use it for health checks, for integration tests, and to debug a
deployment without its frontend::

    from twisted.internet import task
    from scgi_twisted.client import request

    async def main(reactor):
        response = await request(reactor, "unix:/run/app/scgi.sock", "GET", "/health")
        print(response.code, response.headers.getRawHeaders(b"content-type"))
        print(await response.content())

    task.react(main)

From a shell, ``python -m scgi_twisted.client ENDPOINT PATH`` (installed as
``scgi-client``) does the same; ``scgi-client --help`` lists its options and
``docs/client.md`` its exit statuses.

Strategy: one connection carries one request (SCGI has no keep-alive).  The request
head is encoded before connecting, so bad arguments raise at once.  A body producer is
registered on the transport, so an upload is read only as fast as the socket drains.
The response's Deferred fires when its head has arrived; the transport is then paused
until :meth:`Response.deliverBody` is called, so an unread body is never buffered
beyond one read.  SCGI ends a response by closing the connection: the body is complete
at EOF, and ``Content-Length`` must agree with it (:class:`ResponseParser`).  Errors are
reported once the connection is closed, never while it is still open.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from http import HTTPStatus
from typing import IO, TYPE_CHECKING, Any, NoReturn, cast

from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.endpoints import (
    HostnameEndpoint,
    UNIXClientEndpoint,
    clientFromString,
    connectProtocol,
)
from twisted.internet.error import (
    ConnectError,
    ConnectionAborted,
    ConnectionDone,
    ConnectionRefusedError,
)
from twisted.internet.interfaces import (
    IDelayedCall,
    IPushProducer,
    IReactorTime,
    IStreamClientEndpoint,
    ITransport,
)
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.client import FileBodyProducer, ResponseDone
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer
from zope.interface import implementer

from ._clientsansio import (
    HeaderPairs,
    ResponseBody,
    ResponseHead,
    ResponseParser,
    ResponseState,
    Text,
    VariableOverrides,
    encode_variables,
    request_variables,
)
from ._errors import (
    ConnectFailedError,
    LocalProtocolError,
    MalformedResponseError,
    ResponseTimeoutError,
    SCGIError,
)

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

__all__ = [
    "DEFAULT_TIMEOUT",
    "EXIT_CONNECT",
    "EXIT_ERROR",
    "EXIT_MALFORMED",
    "EXIT_OK",
    "EXIT_STATUS",
    "EXIT_TIMEOUT",
    "EXIT_USAGE",
    "ConnectFailedError",
    "MalformedResponseError",
    "Response",
    "ResponseTimeoutError",
    "SCGIClient",
    "clientEndpoint",
    "main",
    "request",
    "run",
]

DEFAULT_TIMEOUT = 60.0
"""The default limit on a whole exchange (connect, send, response), in seconds."""

ERR_UNKNOWN_LENGTH = (
    "an SCGI request needs its body's length up front (CONTENT_LENGTH), but this "
    "body producer's length is UNKNOWN_LENGTH: buffer or spool the body first"
)
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


def _describe(endpoint: object) -> str:
    """Describe an endpoint object for error messages, as well as it can."""
    path = getattr(endpoint, "_path", None)
    if isinstance(path, str | bytes):
        return f"unix:{os.fsdecode(path)}"
    host = getattr(endpoint, "_hostText", None) or getattr(endpoint, "_host", None)
    port = getattr(endpoint, "_port", None)
    if isinstance(host, str | bytes) and isinstance(port, int):
        text = host.decode("ascii", "replace") if isinstance(host, bytes) else host
        return f"[{text}]:{port}" if ":" in text else f"{text}:{port}"
    return repr(endpoint)


_BUILTIN_ENDPOINT_TYPES = frozenset({"tcp", "ssl", "unix", "tls"})
_HOST_PORT = re.compile(r"(?:\[([0-9A-Fa-f:.]+)\]|([^:\[\]/\\]+)):([0-9]{1,5})\Z")


def _isEndpointType(name: str) -> bool:
    """Return whether ``name`` is the prefix of an endpoint string parser."""
    if name.lower() in _BUILTIN_ENDPOINT_TYPES:
        return True
    from twisted.internet.interfaces import (  # noqa: PLC0415 - slow plugin scan
        IStreamClientEndpointStringParserWithReactor,
    )
    from twisted.plugin import getPlugins  # noqa: PLC0415

    return any(
        getattr(plugin, "prefix", "").lower() == name.lower()
        for plugin in getPlugins(IStreamClientEndpointStringParserWithReactor)
    )


def _splitEndpoint(description: str) -> list[str]:
    r"""Split an endpoint string on its unescaped colons, removing the escapes.

    ``tcp6:4000:interface=\:\:1`` is ``["tcp6", "4000", "interface=::1"]``.
    """
    parts = [""]
    characters = iter(description)
    for character in characters:
        if character == "\\":
            parts[-1] += next(characters, "")
        elif character == ":":
            parts.append("")
        else:
            parts[-1] += character
    return parts


_UNIX_SERVER_KEYWORDS = frozenset({"mode", "lockfile", "backlog", "wantPID"})
_LOOPBACK = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1", "::0": "::1"}


def _fromServerEndpoint(reactor: Any, description: str) -> IStreamClientEndpoint | None:
    r"""Turn a *server* endpoint string into the client endpoint that reaches it.

    ``tcp:4000:interface=127.0.0.1`` (as ``twistd scgi`` logs it), ``tcp:4000``,
    ``tcp6:4000:interface=\:\:1`` and ``unix:/run/app/scgi.sock:mode=660``; a
    server on every interface is reached on the loopback address.

    :returns: the endpoint, or ``None`` if ``description`` is no such string.
    :raises ValueError: for a port that is not a number in 0-65535.
    """
    kind, *arguments = _splitEndpoint(description)
    kind = kind.lower()
    positional = [argument for argument in arguments if "=" not in argument]
    keywords = dict(argument.split("=", 1) for argument in arguments if "=" in argument)
    if kind == "unix":
        if not (_UNIX_SERVER_KEYWORDS & keywords.keys()):
            return None
        path = keywords.get("address") or (positional[0] if positional else "")
        if not path:
            raise ValueError(f"{description!r} names no socket path")
        return UNIXClientEndpoint(  # type: ignore[no-untyped-call]
            reactor, os.path.expanduser(path)
        )
    if kind not in ("tcp", "tcp6") or "host" in keywords:
        return None
    port = keywords.get("port") or (positional[0] if positional else "")
    if not port.isdigit():
        if kind == "tcp6":
            raise ValueError(f"{description!r}: the port {port!r} is not a number")
        return None
    if int(port) > 65535:
        raise ValueError(f"the port {port} is not in 0-65535")
    interface = keywords.get("interface", "::" if kind == "tcp6" else "")
    host = _LOOPBACK.get(interface, interface)
    return cast(IStreamClientEndpoint, HostnameEndpoint(reactor, host, int(port)))


def clientEndpoint(reactor: Any, description: str) -> IStreamClientEndpoint:
    """Turn a command-line endpoint into a client endpoint.

    Four forms are accepted:

    * a Twisted client endpoint string: ``tcp:127.0.0.1:4000``,
      ``unix:/run/app/scgi.sock``, ``tcp:host=example.net:port=4000:timeout=5``;
    * the server's own endpoint string, as given to ``twistd scgi --listen`` and
      logged by it: ``tcp:4000:interface=127.0.0.1``, ``tcp:4000``,
      ``unix:/run/app/scgi.sock:mode=660``;
    * ``HOST:PORT`` or ``[IPV6]:PORT``, for ``HostnameEndpoint`` (IPv4 and IPv6);
    * a filesystem path (any text without ``:``, or starting with ``/``, ``./``,
      ``../`` or ``~``), for a unix socket.

    :param reactor: the reactor to connect with.
    :param description: the endpoint, in one of the forms above.
    :returns: the endpoint.
    :raises ValueError: if the text is none of these.
    """
    if not description:
        raise ValueError("the endpoint is empty")
    if ":" not in description or description.startswith(("/", "./", "../", "~")):
        return UNIXClientEndpoint(  # type: ignore[no-untyped-call]
            reactor, os.path.expanduser(description)
        )
    server = _fromServerEndpoint(reactor, description)
    if server is not None:
        return server
    match = _HOST_PORT.match(description)
    if match is not None and not (match.group(2) and _isEndpointType(match.group(2))):
        host = match.group(1) or match.group(2)
        port = int(match.group(3))
        if port > 65535:
            raise ValueError(f"the port {port} is not in 0-65535")
        return cast(IStreamClientEndpoint, HostnameEndpoint(reactor, host, port))
    try:
        endpoint = clientFromString(reactor, description)  # type: ignore[no-untyped-call]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(
            f"{description!r} is not a client endpoint ({error!s})"
        ) from error
    return cast(IStreamClientEndpoint, endpoint)


# The response.


@implementer(IPushProducer)
class _BodyTransport:
    """What a body protocol gets as its transport: flow control over the socket."""

    def __init__(self, protocol: _SCGIClientProtocol) -> None:
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

    def __init__(self, head: ResponseHead, protocol: _SCGIClientProtocol) -> None:
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

    def __init__(self, protocol: _SCGIClientProtocol, length: int) -> None:
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


class _SCGIClientProtocol(Protocol):
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


def _connectFailure(failure: Failure, describe: str) -> Failure:
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


class SCGIClient:
    """Send requests to one SCGI server, as a frontend would.

    :param reactor: the reactor: its ``callLater`` runs the timeout, and an endpoint
        string is connected with it.
    :param endpoint: the server: a client endpoint, or a string as
        :func:`clientEndpoint` accepts (``"tcp:127.0.0.1:4000"``,
        ``"unix:/run/app/scgi.sock"``, ``"127.0.0.1:4000"``, ``"/run/app/scgi.sock"``).
    :param timeout: the most time a whole exchange may take (connecting, sending the
        body, and receiving the whole response), in seconds; ``None`` for no limit.
    :param script_name: where the frontend mounts the application (``SCRIPT_NAME``);
        ``""`` for the root, ``None`` to send no ``SCRIPT_NAME``/``PATH_INFO``.
    :param secure: send the variables of a client that used TLS (``HTTPS=on``).
    :param variables: SCGI variables to set on every request (see
        :func:`scgi_twisted._clientsansio.request_variables`).
    :raises ValueError: for an endpoint string that is not valid.
    """

    def __init__(
        self,
        reactor: IReactorTime,
        endpoint: IStreamClientEndpoint | str,
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        script_name: Text | None = b"",
        secure: bool = False,
        variables: VariableOverrides = (),
    ) -> None:
        """Create a client; it connects only when a request is made."""
        if isinstance(endpoint, str):
            self.description = endpoint
            endpoint = clientEndpoint(reactor, endpoint)
        else:
            self.description = _describe(endpoint)
        self.endpoint = endpoint
        self.reactor = reactor
        self.timeout = timeout
        self.script_name = script_name
        self.secure = secure
        self.variables = _overrideList(variables)

    def request(
        self,
        method: Text = b"GET",
        path: Text = b"/",
        *,
        headers: HeaderPairs | Headers | None = None,
        variables: VariableOverrides = (),
        body: Body = None,
    ) -> Deferred[Response]:
        """Send one request on a new connection.

        :param method: the request method.
        :param path: the request target, path and query (``/search?q=1``).
        :param headers: the request headers: pairs, a mapping, or ``Headers``.
        :param variables: SCGI variables to set, after the client's own.
        :param body: the body: bytes, or an ``IBodyProducer`` whose ``length`` is
            known (SCGI sends ``CONTENT_LENGTH`` before the body).
        :returns: a Deferred that fires with the :class:`Response` once its head has
            arrived, or fails with :class:`ConnectFailedError`,
            :class:`MalformedResponseError` or :class:`ResponseTimeoutError` (or the
            body producer's own failure).  Cancelling it closes the connection.
        :raises LocalProtocolError: at once, for arguments no request can carry, or
            a producer of ``UNKNOWN_LENGTH``.
        """
        if body is None or isinstance(body, bytes):
            length = len(body or b"")
        elif body.length is UNKNOWN_LENGTH or not isinstance(body.length, int):
            raise LocalProtocolError(ERR_UNKNOWN_LENGTH)
        else:
            length = body.length
        method_bytes = method if isinstance(method, bytes) else method.encode("utf-8")
        pairs = request_variables(
            method_bytes,
            path,
            _headerPairs(headers),
            [*self.variables, *_overrideList(variables)],
            length,
            script_name=self.script_name,
            secure=self.secure,
        )
        return self._exchange(encode_variables(pairs), body, method_bytes)

    def _exchange(self, head: bytes, body: Body, method: bytes) -> Deferred[Response]:
        """Connect, and run one exchange."""
        describe = self.description
        connecting: Deferred[Protocol] | None = None
        timedOut: list[float] = []
        cancelled: list[bool] = []

        def cancel(_: Deferred[Response]) -> None:
            cancelled.append(True)
            if connecting is not None and not connecting.called:
                connecting.cancel()
            protocol._abort(_failure(CancelledError()))

        result: Deferred[Response] = Deferred(cancel)
        protocol = _SCGIClientProtocol(head, body, method, describe, result)
        deadline: IDelayedCall | None = None
        timeout = self.timeout
        if timeout is not None:

            def expire() -> None:
                timedOut.append(timeout)
                if protocol._connected:
                    protocol._timedOut(timeout)
                else:
                    assert connecting is not None
                    connecting.cancel()

            deadline = self.reactor.callLater(timeout, expire)

        def stopDeadline(_: object) -> None:
            if deadline is not None and deadline.active():
                deadline.cancel()

        protocol.lostDeferred.addCallback(stopDeadline)

        def connectFailed(failure: Failure) -> None:
            stopDeadline(None)
            if cancelled:
                return
            if timedOut:
                failure = _failure(
                    ResponseTimeoutError(
                        f"timed out after {timedOut[0]:g} seconds connecting to "
                        f"{describe}",
                        timeout=timedOut[0],
                        head_received=False,
                    )
                )
            result.errback(_connectFailure(failure, describe))

        connecting = connectProtocol(  # type: ignore[no-untyped-call]
            self.endpoint, protocol
        )
        connecting.addCallbacks(lambda _: None, connectFailed)
        return result


def _headerPairs(headers: HeaderPairs | Headers | None) -> HeaderPairs:
    """Return request headers as pairs or a mapping."""
    if headers is None:
        return ()
    if isinstance(headers, Headers):
        return [
            (name, value)
            for name, values in headers.getAllRawHeaders()
            for value in values
        ]
    return headers


def _overrideList(variables: VariableOverrides) -> list[tuple[Text, Text | None]]:
    """Return variable overrides as a list of pairs."""
    if isinstance(variables, Mapping):
        return list(variables.items())
    return list(variables)


def request(
    reactor: IReactorTime,
    endpoint: IStreamClientEndpoint | str,
    method: Text = b"GET",
    path: Text = b"/",
    *,
    headers: HeaderPairs | Headers | None = None,
    variables: VariableOverrides = (),
    body: Body = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    script_name: Text | None = b"",
    secure: bool = False,
) -> Deferred[Response]:
    """Send one request to an SCGI server.

    A shortcut for ``SCGIClient(reactor, endpoint, ...).request(method, path, ...)``;
    see :class:`SCGIClient` and :meth:`SCGIClient.request` for the parameters.

    :returns: a Deferred that fires with the :class:`Response`.
    :raises LocalProtocolError: at once, for arguments no request can carry.
    :raises ValueError: at once, for an endpoint string that is not valid.
    """
    client = SCGIClient(
        reactor, endpoint, timeout=timeout, script_name=script_name, secure=secure
    )
    return client.request(method, path, headers=headers, variables=variables, body=body)


# The command line.

EXIT_OK = 0
"""A complete response with a 2xx status (any status with ``--no-fail``)."""
EXIT_ERROR = 1
"""Any other failure: an unreadable body file, an unwritable output file."""
EXIT_USAGE = 2
"""Bad options or arguments."""
EXIT_CONNECT = 7
"""Could not connect (as curl's 7)."""
EXIT_MALFORMED = 8
"""The response was malformed or incomplete (as curl's 8, "weird server reply")."""
EXIT_STATUS = 22
"""A complete response whose status is not 2xx (as curl's 22 with ``--fail``)."""
EXIT_TIMEOUT = 28
"""The exchange did not finish within ``--timeout`` (as curl's 28)."""

_DESCRIPTION = """\
Send one request to an SCGI server, as nginx, Apache or lighttpd would, and print the
response body.  The "curl" of SCGI backends: for health checks, and for debugging a
deployment without its frontend.
"""

_EPILOG = """\
ENDPOINT is a Twisted client endpoint (tcp:127.0.0.1:4000, unix:/run/app.sock),
the server's own --listen string (tcp:4000:interface=127.0.0.1,
unix:/run/app.sock:mode=660), HOST:PORT, or the path of a unix socket.

exit status: 0 for a 2xx answer; 22 for any other status (0 with --no-fail);
7 if the connection failed; 8 for a malformed or incomplete response; 28 on
timeout; 2 for bad usage; 1 for any other error.

examples:
  scgi-client unix:/run/app/scgi.sock /health
  scgi-client -i 127.0.0.1:4000 '/search?q=twisted'
  scgi-client -X PUT -H 'Content-Type: application/json' --data-file - \\
      /run/app/scgi.sock /api/item/1 < item.json
  scgi-client -V SCRIPT_NAME=/app -V HTTPS=on -v 127.0.0.1:4000 /app/
"""


class _UsageError(Exception):
    """The command line is not valid."""


class _ArgumentParser(argparse.ArgumentParser):
    """An argument parser that reports to our streams instead of exiting."""

    def __init__(self, stdout: IO[str], stderr: IO[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._stdout = stdout
        self._stderr = stderr

    def error(self, message: str) -> NoReturn:
        """Report bad usage."""
        raise _UsageError(message)

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        """Stop after ``--help``."""
        if message:
            self._stderr.write(message)
        raise SystemExit(status)

    def print_help(self, file: SupportsWrite[str] | None = None) -> None:
        """Print the help to our standard output."""
        super().print_help(file or self._stdout)


def _argumentParser(stdout: IO[str], stderr: IO[str]) -> _ArgumentParser:
    """Build the command line's parser."""
    parser = _ArgumentParser(
        stdout,
        stderr,
        prog="scgi-client",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("endpoint", metavar="ENDPOINT", help="the SCGI server")
    parser.add_argument(
        "path", metavar="PATH", help="the request target, with any query: /a/b?c=d"
    )
    parser.add_argument(
        "-X",
        "--method",
        help="the request method (default: GET; POST with a body; HEAD with -I)",
    )
    parser.add_argument(
        "-H",
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="add a request header (repeatable; repeated names are merged)",
    )
    body = parser.add_mutually_exclusive_group()
    body.add_argument("-d", "--data", help="send this text (UTF-8) as the body")
    body.add_argument(
        "--data-file",
        metavar="FILE",
        help="send this file as the body; '-' reads standard input",
    )
    parser.add_argument(
        "-V",
        "--var",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help=(
            "set an SCGI variable, overriding the one built from the request "
            "(repeatable); a bare NAME leaves the variable out"
        ),
    )
    parser.add_argument(
        "--script-name",
        default="",
        metavar="PREFIX",
        help=(
            "the frontend's mount point: SCRIPT_NAME=PREFIX and PATH_INFO the rest "
            "of the path (default: the root)"
        ),
    )
    parser.add_argument(
        "--https",
        action="store_true",
        help="send the variables of a TLS client (HTTPS=on, REQUEST_SCHEME=https)",
    )
    parser.add_argument(
        "-i", "--include", action="store_true", help="print the response head too"
    )
    parser.add_argument(
        "-I",
        "--head",
        action="store_true",
        help="send a HEAD request and print only the response head",
    )
    parser.add_argument(
        "-o", "--output", metavar="FILE", help="write the output to FILE"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="the most time the whole exchange may take (default: 30)",
    )
    parser.add_argument(
        "--no-fail",
        action="store_true",
        help="exit 0 for any complete response, whatever its status",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="print the SCGI variables sent and the response head on standard error",
    )
    parser.add_argument(
        "-s", "--silent", action="store_true", help="print no error messages"
    )
    return parser


def _headerArgument(text: str) -> tuple[str, str]:
    """Split ``Name: value``."""
    name, colon, value = text.partition(":")
    if not colon or not name.strip():
        raise _UsageError(f"a header must look like 'Name: value': {text!r}")
    return name.strip(), value.strip()


def _variableArgument(text: str) -> tuple[str, str | None]:
    """Split ``NAME=VALUE``; a bare ``NAME`` removes the variable."""
    name, equals, value = text.partition("=")
    if not name:
        raise _UsageError(f"a variable must look like 'NAME=VALUE': {text!r}")
    return name, value if equals else None


def _discard(data: bytes) -> None:
    """Drop a piece of body."""


def _formatHead(response: Response) -> bytes:
    """Format a response head the way the server sent it (CGI form)."""
    lines = [b"Status: %d %s\r\n" % (response.code, response.phrase)]
    lines += [b"%s: %s\r\n" % (name, value) for name, value in response.rawHeaders]
    lines.append(b"\r\n")
    return b"".join(lines)


def _printable(value: bytes) -> str:
    """Show bytes on a terminal, escaping what is not printable."""
    return value.decode("latin-1").encode("unicode_escape").decode("ascii")


def _spool(source: IO[bytes]) -> IO[bytes]:
    """Copy a stream of unknown length to a temporary file, for its length."""
    spool = tempfile.SpooledTemporaryFile(max_size=1024 * 1024)  # noqa: SIM115
    while chunk := source.read(64 * 1024):
        spool.write(chunk)
    spool.seek(0)
    return cast(IO[bytes], spool)


def run(
    reactor: Any,
    argv: Sequence[str],
    *,
    stdin: IO[bytes] | None = None,
    stdout: IO[bytes] | None = None,
    stderr: IO[str] | None = None,
) -> Deferred[int]:
    """Run the command line with a running reactor; see :func:`main`.

    :param reactor: the reactor, already running (for instance under trial).
    :param argv: the arguments, without the program name.
    :param stdin: the body source for ``--data-file -`` (default: standard input).
    :param stdout: where the response goes (default: standard output).
    :param stderr: where messages go (default: standard error).
    :returns: a Deferred that fires with the exit status.
    """
    inStream = stdin if stdin is not None else sys.stdin.buffer
    outStream = stdout if stdout is not None else sys.stdout.buffer
    errStream = stderr if stderr is not None else sys.stderr
    textOut = sys.stdout if stdout is None else cast(IO[str], _TextTo(outStream))
    parser = _argumentParser(textOut, errStream)
    try:
        options = parser.parse_args(list(argv))
    except SystemExit as stop:
        return succeed(int(stop.code or 0))
    except _UsageError as error:
        errStream.write(f"{parser.format_usage()}scgi-client: error: {error}\n")
        return succeed(EXIT_USAGE)
    return Deferred.fromCoroutine(
        _Command(reactor, options, inStream, outStream, errStream).run()
    )


class _TextTo:
    """A text stream writing UTF-8 into a binary one (for ``--help``)."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        """Write text."""
        self._stream.write(text.encode("utf-8"))
        return len(text)


class _Command:
    """One run of the command line."""

    def __init__(
        self,
        reactor: Any,
        options: argparse.Namespace,
        stdin: IO[bytes],
        stdout: IO[bytes],
        stderr: IO[str],
    ) -> None:
        self.reactor = reactor
        self.options = options
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.bodyFile: IO[bytes] | None = None

    def say(self, message: str) -> None:
        """Print an error message, unless silenced."""
        if not self.options.silent:
            self.stderr.write(f"scgi-client: {message}\n")

    async def run(self) -> int:
        """Send the request, print the response, and return the exit status."""
        options = self.options
        try:
            headers = [_headerArgument(text) for text in options.header]
            variables = [_variableArgument(text) for text in options.var]
            if options.timeout <= 0:
                raise _UsageError("--timeout must be positive")
            endpoint = clientEndpoint(self.reactor, options.endpoint)
        except (_UsageError, ValueError) as error:
            self.say(f"error: {error}")
            return EXIT_USAGE
        try:
            output = self.openOutput()
        except OSError as error:
            self.say(f"cannot write the output: {error}")
            return EXIT_ERROR
        try:
            return await self.exchange(endpoint, headers, variables, output)
        finally:
            if output is not self.stdout:
                output.close()

    async def exchange(
        self,
        endpoint: IStreamClientEndpoint,
        headers: list[tuple[str, str]],
        variables: list[tuple[str, str | None]],
        output: IO[bytes],
    ) -> int:
        """Send the request and write the response to ``output``."""
        options = self.options
        try:
            body = self.body()
        except OSError as error:
            self.say(f"cannot read the body: {error}")
            return EXIT_ERROR
        method = options.method or (
            "HEAD" if options.head else "GET" if body is None else "POST"
        )
        client = SCGIClient(
            self.reactor,
            endpoint,
            timeout=options.timeout,
            script_name=options.script_name,
            secure=options.https,
        )
        client.description = options.endpoint
        try:
            if options.verbose:
                self.showVariables(client, method, headers, variables, body)
            responded = client.request(
                method, options.path, headers=headers, variables=variables, body=body
            )
        except SCGIError as error:
            if self.bodyFile is not None:
                self.bodyFile.close()
            self.say(f"error: {error}")
            return EXIT_USAGE
        return await self.receive(responded, output, method)

    def body(self) -> bytes | IBodyProducer | None:
        """Return the request body the options name."""
        options = self.options
        if options.data is not None:
            return cast(str, options.data).encode("utf-8")
        if options.data_file is None:
            return None
        if options.data_file == "-":
            source = _spool(self.stdin)
        else:
            source = open(options.data_file, "rb")  # noqa: SIM115
        self.bodyFile = source
        return cast(
            IBodyProducer,
            FileBodyProducer(source),  # type: ignore[no-untyped-call]
        )

    def openOutput(self) -> IO[bytes]:
        """Open the output file, or return standard output."""
        if self.options.output is None or self.options.output == "-":
            return self.stdout
        return open(self.options.output, "wb")

    def showVariables(
        self,
        client: SCGIClient,
        method: str,
        headers: list[tuple[str, str]],
        variables: list[tuple[str, str | None]],
        body: bytes | IBodyProducer | None,
    ) -> None:
        """Print the variables that will be sent (``--verbose``)."""
        if body is None or isinstance(body, bytes):
            length = len(body or b"")
        else:
            length = cast(int, body.length)
        pairs = request_variables(
            method,
            self.options.path,
            headers,
            variables,
            length,
            script_name=client.script_name,
            secure=client.secure,
        )
        for name, value in pairs:
            self.stderr.write(f"> {_printable(name)}={_printable(value)}\n")

    async def receive(
        self, responded: Deferred[Response], output: IO[bytes], method: str
    ) -> int:
        """Wait for the response, print it, and return the exit status."""
        options = self.options
        try:
            response = await responded
            if options.verbose:
                for line in _formatHead(response).splitlines():
                    self.stderr.write(f"< {_printable(line)}\n")
            if options.include or options.head:
                output.write(_formatHead(response))
            # With --head only the head is shown, even if a body comes.
            await response.collect(_discard if options.head else output.write)
            output.flush()
        except ConnectFailedError as error:
            self.say(str(error))
            return EXIT_CONNECT
        except ResponseTimeoutError as error:
            self.say(str(error))
            return EXIT_TIMEOUT
        except MalformedResponseError as error:
            self.say(f"malformed response: {error}")
            return EXIT_MALFORMED
        except OSError as error:
            self.say(f"cannot write the output: {error}")
            return EXIT_ERROR
        except Exception as error:
            self.say(f"error: {error!r}")
            return EXIT_ERROR
        if 200 <= response.code < 300 or options.no_fail:
            return EXIT_OK
        self.say(
            f"the server answered {response.code} "
            f"{response.phrase.decode('latin-1')} to {method} {options.path}"
        )
        return EXIT_STATUS


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``scgi-client``: send one request and print the response.

    This runs the global reactor (with ``twisted.internet.task.react``), so call it
    once per process; under a running reactor use :func:`run`.

    :param argv: the arguments, without the program name (default: ``sys.argv``).
    :returns: the exit status (see ``EXIT_*``).
    """
    from twisted.internet.task import react  # noqa: PLC0415

    arguments = list(sys.argv[1:] if argv is None else argv)

    def start(reactor: Any) -> Deferred[None]:
        def stop(code: int) -> None:
            raise SystemExit(code)

        return run(reactor, arguments).addCallback(stop)

    try:
        react(start)
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
