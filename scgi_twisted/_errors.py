"""The exceptions of scgi_twisted: one small, two-sided hierarchy.

:class:`RemoteProtocolError` means the peer (the frontend) sent bytes that break the
SCGI protocol; it carries the HTTP status to answer with.  :class:`LocalProtocolError`
means our own code misused the parser.  Leaf classes exist only where a caller acts
differently on them.  No module here imports Twisted.
"""

from __future__ import annotations

__all__ = [
    "BodyTooLargeError",
    "ClientError",
    "ConnectFailedError",
    "HTTPRequestError",
    "HeaderTooLargeError",
    "LocalProtocolError",
    "MalformedResponseError",
    "PrematureEOFError",
    "RemoteProtocolError",
    "ResponseTimeoutError",
    "SCGIError",
]


class SCGIError(Exception):
    """The base of every error raised by scgi_twisted."""


class RemoteProtocolError(SCGIError, ValueError):
    """The peer sent something that is not a valid SCGI request.

    :ivar status_hint: the HTTP status code a server should answer with, when it can
        still answer at all.
    """

    status_hint: int = 400

    def __init__(self, message: str, *, status_hint: int | None = None) -> None:
        """Create the error.

        :param message: a short, precise description of what was wrong.
        :param status_hint: the status to answer with; the class default if omitted.
        """
        super().__init__(message)
        if status_hint is not None:
            self.status_hint = status_hint


class HTTPRequestError(RemoteProtocolError):
    """The peer sent an HTTP request (such as ``GET / HTTP/1.1``), not SCGI.

    The likeliest first mistake: a browser or ``curl`` pointed at the SCGI port.  It is
    answered in HTTP, which that peer reads, rather than with a CGI ``Status`` line.
    """


class HeaderTooLargeError(RemoteProtocolError):
    """The header block, or the number of variables in it, is over a limit."""

    status_hint = 431


class BodyTooLargeError(RemoteProtocolError):
    """The declared ``CONTENT_LENGTH`` is over the body limit.

    :ivar content_length: the declared length, or ``None`` when it is too large to be
        represented at all.
    """

    status_hint = 413

    def __init__(self, message: str, *, content_length: int | None = None) -> None:
        """Create the error.

        :param message: a short, precise description of what was wrong.
        :param content_length: the declared body length, when it is known.
        """
        super().__init__(message)
        self.content_length = content_length


class PrematureEOFError(RemoteProtocolError):
    """The connection ended before the request was complete.

    :ivar bytes_received: how many bytes had arrived before the end; ``0`` means the
        peer connected and closed without sending anything.
    """

    def __init__(self, message: str, *, bytes_received: int) -> None:
        """Create the error.

        :param message: which part of the request was cut off.
        :param bytes_received: how many bytes had arrived.
        """
        super().__init__(message)
        self.bytes_received = bytes_received


class LocalProtocolError(SCGIError, RuntimeError):
    """Our own code used the parser or the encoder in a way it does not allow."""


# The errors of the SCGI client (``scgi_twisted.client`` and its sans-I/O core,
# ``scgi_twisted._clientsansio``).  They are names of their own, not further kinds
# of RemoteProtocolError: the peer there is a *server*, and no status is answered.


class ClientError(SCGIError):
    """The base of every error the SCGI client reports about an exchange."""


class MalformedResponseError(ClientError, ValueError):
    """The server's answer is not a valid, complete CGI response.

    That covers a garbled or oversized head, a body that disagrees with its
    ``Content-Length``, and a connection that ended (or was reset) before the
    response was complete.  A frontend answers 502 to all of these.

    :ivar bytes_received: how many response bytes had arrived when the error was
        found.
    """

    def __init__(self, message: str, *, bytes_received: int = 0) -> None:
        """Create the error.

        :param message: a short, precise description of what was wrong.
        :param bytes_received: how many response bytes had arrived.
        """
        super().__init__(message)
        self.bytes_received = bytes_received


class ConnectFailedError(ClientError, ConnectionError):
    """The client could not connect to the SCGI server.

    :ivar endpoint: a description of the endpoint that was tried.
    :ivar refused: whether the server actively refused the connection (nothing is
        listening there), as opposed to any other failure (no such socket file, a
        host name that does not resolve, a connect timeout).
    """

    def __init__(self, message: str, *, endpoint: str, refused: bool) -> None:
        """Create the error.

        :param message: what went wrong, naming the endpoint.
        :param endpoint: a description of the endpoint.
        :param refused: whether the connection was refused.
        """
        super().__init__(message)
        self.endpoint = endpoint
        self.refused = refused


class ResponseTimeoutError(ClientError, TimeoutError):
    """The exchange did not complete within the client's timeout.

    :ivar timeout: the timeout that expired, in seconds.
    :ivar head_received: whether the response head had arrived when it expired.
    """

    def __init__(self, message: str, *, timeout: float, head_received: bool) -> None:
        """Create the error.

        :param message: what the client was still waiting for.
        :param timeout: the timeout, in seconds.
        :param head_received: whether the response head had arrived.
        """
        super().__init__(message)
        self.timeout = timeout
        self.head_received = head_received
