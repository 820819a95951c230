"""``max_connections`` on a TLS (``ssl:``) listener.

Twisted serves ``ssl:`` endpoints with a TCP port whose factory wraps the site's
(``TLSMemoryBIOFactory``): each connection's transport is the TLS protocol, which
passes ``pauseProducing`` and the port (``server``) through to the TCP connection.
These tests run an :class:`~scgi_twisted.SCGISite` on a real ``ssl:`` port with a
self-signed certificate, and clients speaking TLS from threads.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import ssl
import tempfile
from typing import Any

from twisted.internet.endpoints import serverFromString
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from .support.apps import Hold
from .support.frontends import _certificate, clientTLSContext
from .support.scgi import parseResponse
from .support.sockets import (
    CLIENT_TIMEOUT,
    RecordingSite,
    nginxRequest,
    reactor,
    sleep,
    until,
)


def _tlsExchange(port: int, payload: bytes) -> tuple[bytes, str]:
    """Send ``payload`` over TLS; read the answer to the end."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT)
    with contextlib.closing(
        clientTLSContext().wrap_socket(raw, server_hostname="localhost")
    ) as client:
        client.sendall(payload)
        chunks: list[bytes] = []
        while True:
            try:
                chunk = client.recv(65536)
            except (ssl.SSLError, ConnectionResetError):
                return b"".join(chunks), "reset"
            except TimeoutError:
                return b"".join(chunks), "timeout"
            if not chunk:
                return b"".join(chunks), "eof"
            chunks.append(chunk)


class TLSConnectionLimitTests(TestCase):
    """The connection limit holds on an ``ssl:`` listener."""

    timeout = 60.0

    async def listen(self, resource: Any, **options: Any) -> tuple[RecordingSite, int]:
        """Serve ``resource`` on an ``ssl:`` port on 127.0.0.1."""
        cert, key = _certificate()
        directory = tempfile.mkdtemp(prefix="scgi-tls-")
        self.addCleanup(shutil.rmtree, directory, True)
        certFile, keyFile = (os.path.join(directory, n) for n in ("c.pem", "k.pem"))
        with open(certFile, "wb") as f:
            f.write(cert)
        with open(keyFile, "wb") as f:
            f.write(key)
        site = RecordingSite(resource, reactor=reactor, **options)
        endpoint = serverFromString(
            reactor,
            f"ssl:0:interface=127.0.0.1:privateKey={keyFile}:certKey={certFile}",
        )
        port = await endpoint.listen(site)
        self.addCleanup(port.stopListening)
        return site, port.getHost().port

    async def test_limitHolds(self) -> None:
        """At ``max_connections`` over TLS, further connections wait for a slot.

        Five clients hold requests with a limit of two: two are served, the rest
        wait; once released, all five are answered, never more than two at once.
        """
        hold = Hold()
        site, port = await self.listen(hold, max_connections=2)
        answers = [
            deferToThread(_tlsExchange, port, nginxRequest(b"/hold/%d" % i))
            for i in range(5)
        ]
        await until(lambda: len(hold.pending) == 2, "two requests held")
        await sleep(0.5)  # time for the other three to connect and be held off
        self.assertEqual(site.maxServed, 2)
        self.assertEqual(len(hold.pending), 2)
        while hold.served < 5:
            hold.release()
            await until(lambda: bool(hold.pending) or hold.served >= 5, "the next held")
        for answer in answers:
            data, end = await answer
            self.assertEqual(parseResponse(data).body, b"released")
            self.assertEqual(end, "eof")
        self.assertEqual(site.maxServed, 2)
        await site.allClosed()


def _refusedExchange(port: int) -> tuple[bytes, str]:
    """Connect over TLS to a port that refuses us; say how the connection ended.

    The refusal can come during the handshake, so it is caught there too.
    """
    try:
        return _tlsExchange(port, nginxRequest(b"/x"))
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError, OSError):
        return b"", "reset"


class TLSAllowTests(TLSConnectionLimitTests):
    """``allow=`` refuses a peer on an ``ssl:`` listener without an exception."""

    async def test_limitHolds(self) -> None:
        """Not run again here: :class:`TLSConnectionLimitTests` has it."""

    async def test_refusedOverTLS(self) -> None:
        """A peer outside ``allow=`` is closed at once; nothing is logged as an error.

        The TLS factory wraps whatever the site builds, so a refusal must be a
        protocol that drops the connection, not ``None`` (which the wrapper would
        call methods on). The next allowed site on the same reactor still serves.
        """
        _, refusing = await self.listen(Hold(), allow=["10.0.0.0/8"])
        data, end = await deferToThread(_refusedExchange, refusing)
        self.assertEqual(data, b"")
        self.assertIn(end, ("eof", "reset"))
        hold = Hold()
        _, allowing = await self.listen(hold, allow=["127.0.0.0/8"])
        answer = deferToThread(_tlsExchange, allowing, nginxRequest(b"/hold/1"))
        await until(lambda: len(hold.pending) == 1, "the allowed request held")
        hold.release()
        data, end = await answer
        self.assertEqual(parseResponse(data).body, b"released")
