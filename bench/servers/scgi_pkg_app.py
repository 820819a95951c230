"""The ``scgi`` package: ``scgi.scgi_server.SCGIServer`` with one child process.

The package is not WSGI: its server accepts in a parent process and passes each
connection to a pre-forked child that runs ``SCGIHandler.produce``.  The benchmark
allows one child (``max_children=1``): one process serves, like every other server.
CPU time and RSS are measured over the parent and its child together.
"""

from __future__ import annotations

import contextlib
import os
import socket
from typing import BinaryIO

from _common import BIG, CHUNK, HELLO, arguments
from scgi.scgi_server import SCGIServer
from scgi.util import SCGIHandler


def _head(length: int, content_type: bytes = b"text/plain") -> bytes:
    return b"Status: 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n" % (
        content_type,
        length,
    )


HELLO_RESPONSE = _head(len(HELLO)) + HELLO
BIG_HEAD = _head(len(BIG), b"application/octet-stream")


class Handler(SCGIHandler):
    """Serve ``/hello``, ``/big`` and ``/post``."""

    def handle_connection(self, conn: socket.socket) -> None:
        """Serve one connection; a peer that goes away must not kill the child.

        ``SCGIHandler.serve`` lets any exception end the child process (the parent
        then forks a new one on the next request), so a client closing early, or
        the benchmark's readiness probe, would cost a fork.
        """
        with contextlib.suppress(OSError):
            super().handle_connection(conn)

    def produce(
        self, env: dict[str, str], bodysize: int, input: BinaryIO, output: BinaryIO
    ) -> None:
        """Answer one request."""
        path = env.get("DOCUMENT_URI") or env.get("REQUEST_URI", "").split("?", 1)[0]
        if path == "/hello":
            output.write(HELLO_RESPONSE)
        elif path == "/big":
            output.write(BIG_HEAD)
            output.write(BIG)
        elif path == "/post":
            remaining = bodysize
            total = 0
            while remaining > 0:
                chunk = input.read(min(CHUNK, remaining))
                if not chunk:
                    break
                total += len(chunk)
                remaining -= len(chunk)
            body = b"%d" % total
            output.write(_head(len(body)) + body)
        else:
            output.write(b"Status: 404 Not Found\r\nContent-Length: 0\r\n\r\n")


class Server(SCGIServer):
    """``SCGIServer`` that can also listen on a unix socket."""

    unix_path: str | None = None

    def get_listening_socket(self) -> socket.socket:
        """Bind the TCP address, or the unix socket if one was given."""
        if self.unix_path is None:
            return super().get_listening_socket()
        if os.path.exists(self.unix_path):
            os.unlink(self.unix_path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(self.unix_path)
        return sock


def main() -> None:
    """Serve with one pre-forked child."""
    args = arguments(__doc__ or "")
    listen = args.listen
    os.environ.pop("LISTEN_FDS", None)
    server = Server(
        handler_class=Handler, host=listen.host, port=listen.port, max_children=1
    )
    if listen.kind == "unix":
        server.unix_path = listen.path
    server.serve()


if __name__ == "__main__":
    main()
