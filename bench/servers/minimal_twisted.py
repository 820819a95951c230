"""The floor of Twisted itself: a minimal SCGI protocol that builds no Request.

It parses the netstring just enough (the variables into a dict, ``CONTENT_LENGTH``
and ``REQUEST_URI``), counts the body's bytes without keeping them, writes a canned
CGI response and closes.  No ``twisted.web`` at all: what remains is the reactor,
the transport and a few Python operations per request, which is the least any
Twisted SCGI server can cost.
"""

from __future__ import annotations

import cProfile
from typing import Any

from _common import BIG, HELLO, arguments
from twisted.internet import endpoints, reactor
from twisted.internet.protocol import Factory, Protocol


def _head(length: int, content_type: bytes) -> bytes:
    return b"Status: 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n" % (
        content_type,
        length,
    )


HELLO_RESPONSE = _head(len(HELLO), b"text/plain") + HELLO
BIG_HEAD = _head(len(BIG), b"application/octet-stream")
NOT_FOUND = b"Status: 404 Not Found\r\nContent-Length: 0\r\n\r\n"
BAD = b"Status: 400 Bad Request\r\nContent-Length: 0\r\n\r\n"


class MinimalSCGI(Protocol):
    """One request per connection: buffer the netstring, count the body, answer."""

    def __init__(self) -> None:
        self._buffer = b""
        self._remaining = -1  # body bytes still expected; -1 while in the header
        self._uri = b""
        self._length = 0

    def dataReceived(self, data: bytes) -> None:
        """Parse the header block once complete; then count body bytes."""
        if self._remaining < 0:
            buffer = self._buffer + data
            colon = buffer.find(b":")
            if colon < 0:
                self._buffer = buffer
                return
            end = colon + 1 + int(buffer[:colon])
            if len(buffer) <= end:
                self._buffer = buffer
                return
            strings = buffer[colon + 1 : end].split(b"\0")
            environ = dict(zip(strings[0::2], strings[1::2], strict=False))
            self._buffer = b""
            try:
                self._length = int(environ[b"CONTENT_LENGTH"])
                self._uri = environ[b"REQUEST_URI"]
            except (KeyError, ValueError):
                self.transport.write(BAD)
                self.transport.loseConnection()
                return
            self._remaining = self._length
            data = buffer[end + 1 :]
        self._remaining -= len(data)
        if self._remaining <= 0:
            self._respond()

    def _respond(self) -> None:
        path = self._uri.split(b"?", 1)[0]
        transport = self.transport
        if path == b"/hello":
            transport.write(HELLO_RESPONSE)
        elif path == b"/big":
            transport.writeSequence([BIG_HEAD, BIG])
        elif path == b"/post":
            body = b"%d" % self._length
            transport.write(_head(len(body), b"text/plain") + body)
        else:
            transport.write(NOT_FOUND)
        self._remaining = 1 << 62  # ignore anything after the request
        transport.loseConnection()


def main() -> None:
    """Serve the minimal protocol."""
    args = arguments(__doc__ or "", profile=True)
    factory = Factory.forProtocol(MinimalSCGI)
    factory.noisy = False
    endpoints.serverFromString(reactor, args.listen.twisted_endpoint()).listen(factory)
    profiler: Any = None
    if args.profile:
        profiler = cProfile.Profile()

        def dump() -> None:
            profiler.disable()
            profiler.dump_stats(args.profile)

        reactor.addSystemEventTrigger("before", "shutdown", dump)  # type: ignore[attr-defined]
        profiler.enable()
    reactor.run()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
