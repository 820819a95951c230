"""Streaming uploads over real sockets: exact bytes, and memory that stays flat.

An ``SCGISite`` on the real reactor listens on ``tcp:0:interface=127.0.0.1`` or on a
unix socket in a temporary directory, and serves :class:`tests._streaming_app.
StreamingHash`, which hashes each upload as it arrives.  The client is a blocking
socket in a thread (``deferToThread``) that sends a 64 MiB body at full speed,
generated and hashed block by block, so that it never holds the body either.

Memory is this process's resident set (the server and the client share it):
:class:`~tests._streaming_app.RSSProbe` takes a baseline after ``malloc_trim`` just
before the upload, samples ``VmRSS`` every few milliseconds while it runs, and also
reads the kernel's peak (``VmHWM``, reset through ``clear_refs`` at the baseline), so
a peak between two samples is not missed.  The growth must stay under 8 MiB for a
64 MiB upload, for a consumer at full speed and for one that keeps pausing; a
consumer that keeps every piece shows that the probe does see 64 MiB.

The same tests run over TCP and over unix sockets, by subclassing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import shutil
import socket
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted.internet import reactor as _global_reactor
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.task import Clock, deferLater
from twisted.internet.threads import deferToThread
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import ResponseDone
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET
from zope.interface import implementer

from scgi_twisted import (
    IStreamingUploadResource,
    PrematureEOFError,
    SCGISite,
    deliverBody,
)

from ._streaming_app import RSSProbe, StreamingHash, readMemory
from .support.apps import WebRequest
from .support.scgi import buildRequest, nginxVariables, parseResponse

if TYPE_CHECKING:
    _MixinBase = TestCase
else:
    _MixinBase = object

_reactor: Any = _global_reactor

MiB = 1024 * 1024

UPLOAD_SIZE = 64 * MiB
"""The size of the big uploads."""

RSS_BUDGET = 8 * MiB
"""How much the resident set may grow while a big upload streams through."""

BLOCK_SIZE = 64 * 1024
"""The size of the client's ``send`` calls."""

CLIENT_TIMEOUT = 30.0
"""Every blocking client call gives up after this many seconds."""

Address = tuple[socket.AddressFamily, Any]
"""Where to connect: an address family and a ``connect()`` argument."""


# The client side: a blocking socket in a thread, never holding the body.


def _blocks(seed: int, size: int) -> Iterator[bytes]:
    """Yield ``size`` pseudo-random bytes, block by block, the same for a seed."""
    generator = random.Random(seed)
    left = size
    while left:
        block = generator.randbytes(min(BLOCK_SIZE, left))
        left -= len(block)
        yield block


@dataclass(frozen=True)
class _Upload:
    """What the client sent and received.

    :ivar sent: the body bytes sent.
    :ivar sha256: their SHA-256, in hex.
    :ivar response: every byte received, up to EOF.
    """

    sent: int
    sha256: str
    response: bytes


def _upload(
    address: Address,
    uri: bytes,
    *,
    seed: int = 64,
    size: int = UPLOAD_SIZE,
    stopAfter: int | None = None,
    reset: bool = False,
) -> _Upload:
    """Send a POST of ``size`` bytes at full speed and read the answer to EOF.

    :param stopAfter: close the connection after this many body bytes instead.
    :param reset: with ``stopAfter``, close with a reset rather than a FIN.
    """
    family, target = address
    digest = hashlib.sha256()
    sent = 0
    with contextlib.closing(socket.socket(family, socket.SOCK_STREAM)) as client:
        client.settimeout(CLIENT_TIMEOUT)
        client.connect(target)
        variables = nginxVariables(
            uri,
            REQUEST_METHOD=b"POST",
            REMOTE_ADDR=b"127.0.0.1",
            CONTENT_TYPE=b"application/octet-stream",
        )
        client.sendall(buildRequest(variables, contentLength=size))
        for block in _blocks(seed, size):
            if stopAfter is not None and sent >= stopAfter:
                if reset:
                    linger = struct.pack("ii", 1, 0)
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                return _Upload(sent, digest.hexdigest(), b"")
            client.sendall(block)
            digest.update(block)
            sent += len(block)
        chunks = []
        while chunk := client.recv(65536):
            chunks.append(chunk)
    return _Upload(sent, digest.hexdigest(), b"".join(chunks))


def _answer(upload: _Upload) -> Any:
    """Parse a 200 JSON answer."""
    response = parseResponse(upload.response)
    if response.status != 200:
        raise AssertionError(f"not a 200: {upload.response[:300]!r}")
    return json.loads(response.body)


# The server side.


class _Hoarder(Protocol):
    """A receiver that keeps every piece of the body: memory grows with it."""

    def __init__(self, request: WebRequest, lengths: list[int]) -> None:
        self.request = request
        self.lengths = lengths
        self.pieces: list[bytes] = []

    def dataReceived(self, data: bytes) -> None:
        """Keep the piece."""
        self.pieces.append(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """Answer with the length, then drop the pieces."""
        length = sum(len(piece) for piece in self.pieces)
        self.lengths.append(length)
        self.pieces = []
        self.request.write(b"%d" % length)
        self.request.finish()


@implementer(IStreamingUploadResource)
class Hoard(Resource):
    """A streaming resource whose receiver keeps the whole body in memory.

    :ivar lengths: the length of each body kept, in the order they ended.
    """

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.lengths: list[int] = []

    def render_POST(self, request: WebRequest) -> int:
        """Deliver the body to a hoarder."""
        deliverBody(request, _Hoarder(request, self.lengths))
        return NOT_DONE_YET


class _StreamingSocketsMixin(_MixinBase):
    """Tests that hold over any stream socket; subclasses choose TCP or unix."""

    timeout = 180.0

    def endpointFor(self) -> str:
        """Return the server endpoint string to listen on."""
        raise NotImplementedError

    def addressOf(self, port: Any) -> Address:
        """Return where a client connects to reach the listening ``port``."""
        raise NotImplementedError

    async def serve(self) -> tuple[SCGISite, StreamingHash, Hoard, Address]:
        """Listen with a site serving ``/hash`` and ``/hoard``.

        Cleanup waits until the site has no connection left, then stops listening.
        """
        hashing = StreamingHash(_reactor)
        hoard = Hoard()
        root = Resource()
        root.putChild(b"hash", hashing)
        root.putChild(b"hoard", hoard)
        # Streaming is off by default: opt in for the two streaming resources.
        site = SCGISite(
            root, reactor=_reactor, timeout=30, stream_uploads=["/hash", "/hoard"]
        )
        port = await serverFromString(_reactor, self.endpointFor()).listen(site)
        self.addCleanup(port.stopListening)
        self.addCleanup(self.allClosed, site)
        return site, hashing, hoard, self.addressOf(port)

    async def allClosed(self, site: SCGISite) -> None:
        """Wait until the site has no open connection."""
        while site.connections:
            await deferLater(_reactor, 0.01, lambda: None)

    async def measured(self, address: Address, uri: bytes) -> tuple[_Upload, RSSProbe]:
        """Upload 64 MiB to ``uri`` while the probe samples this process's memory.

        A 1 MiB upload first warms up the code paths and the client's thread.
        """
        await deferToThread(_upload, address, uri, size=MiB)
        probe = RSSProbe(_reactor, interval=0.005)
        probe.start()
        try:
            upload = await deferToThread(_upload, address, uri)
        finally:
            probe.stop()
        return upload, probe

    def assertFlat(self, probe: RSSProbe) -> None:
        """The resident set grew by less than :data:`RSS_BUDGET` while sampled."""
        self.assertGreater(probe.samples, 5, "the upload was not sampled")
        self.assertLess(
            probe.growth,
            RSS_BUDGET,
            f"RSS grew by {probe.growth / MiB:.1f} MiB "
            f"(baseline {probe.baseline / MiB:.1f} MiB, peak {probe.peak / MiB:.1f})",
        )

    async def test_fullSpeed(self) -> None:
        """64 MiB at full speed are hashed exactly, with RSS growth under 8 MiB."""
        _, hashing, _, address = await self.serve()
        upload, probe = await self.measured(address, b"/hash")
        answer = _answer(upload)
        self.assertEqual(answer["length"], UPLOAD_SIZE)
        self.assertEqual(answer["sha256"], upload.sha256)
        self.assertGreater(answer["chunks"], 1)
        self.assertFlat(probe)
        self.assertTrue(hashing.uploads[-1].complete)

    async def test_slowConsumer(self) -> None:
        """A consumer that keeps pausing gets the exact bytes, with RSS still flat.

        It pauses for 0.1 s every 64 pieces; meanwhile the client keeps sending,
        and only the paused transport (the kernel's buffers filling, the client's
        ``send`` blocking) keeps the memory flat.
        """
        _, _, _, address = await self.serve()
        upload, probe = await self.measured(address, b"/hash?pause_every=64&pause=0.1")
        answer = _answer(upload)
        self.assertEqual(answer["length"], UPLOAD_SIZE)
        self.assertEqual(answer["sha256"], upload.sha256)
        self.assertGreaterEqual(answer["pauses"], 4)
        self.assertFlat(probe)

    async def test_clientCloseMidUpload(self) -> None:
        """A client that closes mid-upload: the consumer fails, never completes.

        It gets ``PrematureEOFError`` with the bytes that arrived, and the
        request's ``notifyFinish()`` fails.
        """
        site, hashing, _, address = await self.serve()
        upload = await deferToThread(_upload, address, b"/hash", stopAfter=8 * MiB)
        ended = await hashing.whenEnded()
        self.assertFalse(ended.complete)
        assert ended.reason is not None
        self.assertIsNotNone(ended.reason.check(PrematureEOFError), ended.reason)
        self.assertEqual(ended.length, upload.sent)
        self.assertEqual(ended.sha256, upload.sha256)
        self.assertIsNotNone(ended.finishFailure)
        await self.allClosed(site)

    async def test_clientResetMidUpload(self) -> None:
        """A client that resets mid-upload: the consumer fails, never completes."""
        site, hashing, _, address = await self.serve()
        await deferToThread(_upload, address, b"/hash", stopAfter=8 * MiB, reset=True)
        ended = await hashing.whenEnded()
        self.assertFalse(ended.complete)
        assert ended.reason is not None
        self.assertIsNone(ended.reason.check(ResponseDone))
        self.assertIsNotNone(
            ended.reason.check(PrematureEOFError, ConnectionLost, ConnectionDone),
            ended.reason,
        )
        self.assertIsNotNone(ended.finishFailure)
        await self.allClosed(site)

    async def test_probeSeesHoarding(self) -> None:
        """The measurement can fail: a consumer keeping the body grows RSS 48+ MiB."""
        _, _, hoard, address = await self.serve()
        upload, probe = await self.measured(address, b"/hoard")
        self.assertEqual(parseResponse(upload.response).body, b"%d" % UPLOAD_SIZE)
        self.assertEqual(hoard.lengths, [MiB, UPLOAD_SIZE])
        self.assertGreater(probe.growth, 48 * MiB)


class StreamingTCPTests(_StreamingSocketsMixin, TestCase):
    """Streaming uploads over TCP on 127.0.0.1."""

    def endpointFor(self) -> str:
        """Listen on a free loopback port."""
        return "tcp:0:interface=127.0.0.1"

    def addressOf(self, port: Any) -> Address:
        """Connect to the bound port."""
        host = port.getHost()
        return socket.AF_INET, (host.host, host.port)


class StreamingUNIXTests(_StreamingSocketsMixin, TestCase):
    """Streaming uploads over a unix socket."""

    def setUp(self) -> None:
        directory = tempfile.mkdtemp(prefix="scgi-stream-")
        self.addCleanup(shutil.rmtree, directory, True)
        self.path = f"{directory}/s.sock"

    def endpointFor(self) -> str:
        """Listen on a socket in a temporary directory."""
        return f"unix:{self.path}"

    def addressOf(self, port: Any) -> Address:
        """Connect to the socket's path."""
        return socket.AF_UNIX, self.path


class RSSProbeTests(SynchronousTestCase):
    """The memory probe measures what it claims to."""

    def test_readMemory(self) -> None:
        """``readMemory`` gives this process's VmRSS and VmHWM, in bytes."""
        memory = readMemory()
        self.assertGreater(memory["VmRSS"], MiB)
        self.assertGreaterEqual(memory["VmHWM"], memory["VmRSS"])

    def test_peakBetweenSamples(self) -> None:
        """A peak that comes and goes between two samples is still seen."""
        probe = RSSProbe(Clock())
        probe.start()
        block = b"\x01" * (32 * MiB)
        del block
        probe.stop()
        self.assertGreater(probe.growth, 30 * MiB)
        self.assertEqual(probe.samples, 2)
