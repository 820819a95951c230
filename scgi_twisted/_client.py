"""The SCGI client's library: :class:`SCGIClient` and :func:`request`.

Its public names are :mod:`scgi_twisted.client`'s, which documents the client; the
command line (:mod:`scgi_twisted.cli`) builds on this module, which never imports it.

Layout: endpoint strings are read in ``_clientendpoint``, one exchange on a connection
is ``_clientprotocol`` (also run by :mod:`scgi_twisted.testing`, in memory), and the
bytes are encoded and parsed without I/O in ``_clientsansio`` and
``_clientresponse``.  This module connects, times the exchange out and builds the
request.
"""

from __future__ import annotations

from collections.abc import Mapping

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.endpoints import connectProtocol
from twisted.internet.interfaces import (
    IDelayedCall,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH

from ._clientendpoint import clientEndpoint, describeEndpoint
from ._clientprotocol import (
    Body,
    Response,
    SCGIClientProtocol,
    connectFailure,
)
from ._clientsansio import (
    HeaderPairs,
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
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "Body",
    "ConnectFailedError",
    "MalformedResponseError",
    "Response",
    "ResponseTimeoutError",
    "SCGIClient",
    "clientEndpoint",
    "request",
]

DEFAULT_TIMEOUT = 60.0
"""The default limit on a whole exchange (connect, send, response), in seconds."""

ERR_UNKNOWN_LENGTH = (
    "an SCGI request needs its body's length up front (CONTENT_LENGTH), but this "
    "body producer's length is UNKNOWN_LENGTH: buffer or spool the body first"
)


def _failure(error: BaseException) -> Failure:
    """Wrap an exception in a ``Failure`` (``Failure`` itself is untyped)."""
    return Failure(error)  # type: ignore[no-untyped-call]


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
            self.description = describeEndpoint(endpoint)
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
        protocol = SCGIClientProtocol(head, body, method, describe, result)
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
            result.errback(connectFailure(failure, describe))

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
