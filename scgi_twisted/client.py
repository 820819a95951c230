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

From a shell, ``scgi-client ENDPOINT PATH`` does the same (:mod:`scgi_twisted.cli`).

Strategy: one connection carries one request (SCGI has no keep-alive).  The request
head is encoded before connecting, so bad arguments raise at once.  A body producer is
registered on the transport, so an upload is read only as fast as the socket drains.
The response's Deferred fires when its head has arrived; the transport is then paused
until :meth:`Response.deliverBody` is called, so an unread body is never buffered
beyond one read.  SCGI ends a response by closing the connection: the body is complete
at EOF, and ``Content-Length`` must agree with it.  Errors are reported once the
connection is closed, never while it is still open.

This module holds the public names: the library lives in ``_client`` (and the modules
it names), the command line in :mod:`scgi_twisted.cli`; this module imports both, so
``scgi_twisted.client.main`` and ``python -m scgi_twisted.client`` still work.
"""

from __future__ import annotations

from ._client import (
    DEFAULT_TIMEOUT,
    Body,
    Response,
    SCGIClient,
    clientEndpoint,
    request,
)
from ._errors import (
    ConnectFailedError,
    MalformedResponseError,
    ResponseTimeoutError,
)
from .cli import (
    EXIT_CONNECT,
    EXIT_ERROR,
    EXIT_MALFORMED,
    EXIT_OK,
    EXIT_STATUS,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    main,
    run,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "EXIT_CONNECT",
    "EXIT_ERROR",
    "EXIT_MALFORMED",
    "EXIT_OK",
    "EXIT_STATUS",
    "EXIT_TIMEOUT",
    "EXIT_USAGE",
    "Body",
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

if __name__ == "__main__":
    raise SystemExit(main())
