"""A streaming-upload resource and a memory probe, for the streaming tests.

:class:`StreamingHash` is an :class:`~scgi_twisted.IStreamingUploadResource`: it is
rendered as soon as the headers of a ``POST``/``PUT`` arrive, and hashes the body
as it comes, without keeping it.  Once the body is complete it answers JSON::

    {"length": 67108864, "sha256": "...", "chunks": 1024, "pauses": 0}

Query options shape the consumer:

``pause_every=N&pause=SECONDS``
    A slow consumer: after every ``N`` chunks it pauses the body for ``SECONDS``
    (``pauseProducing``, then ``resumeProducing`` from a timer).
``limit=BYTES``
    Refuse the upload early: once more than ``BYTES`` have arrived, answer ``413``
    at once (the channel drains the rest of the body before it closes).
``rss=1``
    Measure this process's resident memory (:class:`RSSProbe`) from the headers to
    the end of the body, and add ``"rss": {"baseline", "peak", "growth"}`` (bytes)
    to the answer: the growth a 64 MiB upload causes is the figure to check.

An end-to-end application mounts it beside its other routes, for instance
``root.putChild(b"stream-upload", StreamingHash(reactor))``; a frontend test then
uploads through the frontend and checks ``sha256`` and ``rss.growth``.  Tests in the
same process can also wait for an upload's outcome with
:meth:`StreamingHash.whenEnded`, which also reports uploads that failed.

:class:`RSSProbe` samples ``VmRSS`` from ``/proc/<pid>/status`` on a timer.  For
this process it also frees what ``malloc`` holds (``malloc_trim``) before taking the
baseline, and resets the kernel's peak (``VmHWM``, through ``clear_refs``) so that a
peak between two samples is seen too.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer, IReactorTime
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET
from zope.interface import implementer

from scgi_twisted import IStreamingUploadResource, deliverBody

if TYPE_CHECKING:
    from twisted.web.server import Request

__all__ = ["HashUpload", "RSSProbe", "StreamingHash", "readMemory"]

_STATUS_LINE = re.compile(rb"^(VmRSS|VmHWM):\s+(\d+) kB$", re.MULTILINE)


def readMemory(pid: int | None = None) -> dict[str, int]:
    """Return ``VmRSS`` and ``VmHWM`` of a process, in bytes.

    :param pid: the process; this one by default.
    """
    where = "self" if pid is None else str(pid)
    with open(f"/proc/{where}/status", "rb") as status:
        text = status.read()
    return {name.decode(): int(kb) * 1024 for name, kb in _STATUS_LINE.findall(text)}


def _trimMalloc() -> None:
    """Give the memory ``malloc`` keeps free back to the system (glibc only)."""
    name = ctypes.util.find_library("c")
    if name is None:  # pragma: no cover - every Linux test host has a libc
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(name).malloc_trim(0)


def _resetPeak(pid: int | None) -> bool:
    """Reset the kernel's ``VmHWM`` of a process to its ``VmRSS``; say if it worked."""
    where = "self" if pid is None else str(pid)
    try:
        with open(f"/proc/{where}/clear_refs", "w") as clear:
            clear.write("5")
    except OSError:
        return False
    return True


class RSSProbe:
    """Sample a process's resident memory (``VmRSS``) on a timer.

    :param clock: runs the sampling timer.
    :param pid: the process; this one by default.
    :param interval: seconds between samples.

    :ivar baseline: ``VmRSS`` when :meth:`start` was called, in bytes.
    :ivar peak: the highest ``VmRSS`` sampled (or ``VmHWM`` seen) since, in bytes.
    :ivar samples: how many samples were taken.
    """

    def __init__(
        self, clock: IReactorTime, *, pid: int | None = None, interval: float = 0.01
    ) -> None:
        """Prepare the probe; :meth:`start` takes the baseline."""
        self._clock = clock
        self._pid = pid
        self._interval = interval
        self._loop: LoopingCall | None = None
        self._peakReset = False
        self.baseline = 0
        self.peak = 0
        self.samples = 0

    @property
    def growth(self) -> int:
        """How far the peak rose above the baseline, in bytes."""
        return self.peak - self.baseline

    def start(self) -> None:
        """Take the baseline and start sampling."""
        if self._pid is None:
            gc.collect()
            _trimMalloc()
        self._peakReset = _resetPeak(self._pid)
        self.baseline = readMemory(self._pid)["VmRSS"]
        self.peak = self.baseline
        loop = LoopingCall(self.sample)
        loop.clock = self._clock
        self._loop = loop
        loop.start(self._interval, now=True)

    def sample(self) -> None:
        """Take one sample now."""
        memory = readMemory(self._pid)
        self.samples += 1
        self.peak = max(self.peak, memory["VmRSS"])
        if self._peakReset:
            self.peak = max(self.peak, memory["VmHWM"])

    def stop(self) -> int:
        """Take a last sample and stop; return :attr:`growth`."""
        loop, self._loop = self._loop, None
        if loop is not None and loop.running:
            loop.stop()
        self.sample()
        return self.growth

    def asJSON(self) -> dict[str, int]:
        """Return ``baseline``, ``peak`` and ``growth``, in bytes."""
        return {"baseline": self.baseline, "peak": self.peak, "growth": self.growth}


def _option(request: Request, name: bytes, default: float) -> float:
    """Return a numeric query option of ``request``."""
    values = request.args.get(name)
    return float(values[0]) if values else default


@dataclass
class HashUpload:
    """One upload as :class:`StreamingHash` received it.

    :ivar length: the bytes received.
    :ivar chunks: the pieces they came in.
    :ivar pauses: how many times the consumer paused the body.
    :ivar reason: how the body ended: ``ResponseDone`` when complete, another
        failure when it never will be; ``None`` while it is arriving.
    :ivar finishFailure: how ``notifyFinish()`` failed, if it did.
    :ivar probe: the memory probe, with ``rss=1``.
    """

    length: int = 0
    chunks: int = 0
    pauses: int = 0
    reason: Failure | None = None
    finishFailure: Failure | None = None
    probe: RSSProbe | None = None
    _hash: Any = field(default_factory=hashlib.sha256, repr=False)

    @property
    def sha256(self) -> str:
        """The SHA-256 of the bytes received, in hex."""
        return str(self._hash.hexdigest())

    @property
    def complete(self) -> bool:
        """Whether the whole body arrived."""
        return self.reason is not None and self.reason.check(ResponseDone) is not None

    def asJSON(self) -> dict[str, object]:
        """Return the answer's JSON object."""
        answer: dict[str, object] = {
            "length": self.length,
            "sha256": self.sha256,
            "chunks": self.chunks,
            "pauses": self.pauses,
        }
        if self.probe is not None:
            answer["rss"] = self.probe.asJSON()
        return answer


class _HashReceiver(Protocol):
    """Hash the body as it arrives; answer when it is complete."""

    def __init__(
        self,
        resource: StreamingHash,
        request: Request,
        upload: HashUpload,
        *,
        pauseEvery: int,
        pauseFor: float,
        limit: float | None,
    ) -> None:
        self._resource = resource
        self._request = request
        self._upload = upload
        self._pauseEvery = pauseEvery
        self._pauseFor = pauseFor
        self._limit = limit
        self._answered = False

    def dataReceived(self, data: bytes) -> None:
        """Hash a piece of the body; pause or refuse if asked to."""
        upload = self._upload
        upload.length += len(data)
        upload.chunks += 1
        upload._hash.update(data)
        if self._limit is not None and upload.length > self._limit:
            self._answer(413, {"error": "too large", "received": upload.length})
            return
        if self._pauseEvery and upload.chunks % self._pauseEvery == 0:
            producer: IPushProducer = self.transport  # type: ignore[assignment]
            upload.pauses += 1
            producer.pauseProducing()
            self._resource.clock.callLater(self._pauseFor, producer.resumeProducing)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """Answer with the digest once the body is complete; record the end."""
        upload = self._upload
        upload.reason = reason
        if upload.probe is not None:
            upload.probe.stop()
        if upload.complete:
            self._answer(200, upload.asJSON())
        self._resource._ended(upload)

    def _answer(self, code: int, body: dict[str, object]) -> None:
        """Write a JSON answer and finish, once."""
        if self._answered:
            return
        self._answered = True
        payload = json.dumps(body, sort_keys=True).encode("utf-8")
        request = self._request
        request.setResponseCode(code)
        request.setHeader(b"Content-Type", b"application/json")
        request.setHeader(b"Content-Length", b"%d" % len(payload))
        request.write(payload)
        request.finish()


@implementer(IStreamingUploadResource)
class StreamingHash(Resource):
    """``POST``/``PUT``: the body's length and SHA-256, hashed as it arrives.

    :param clock: runs the slow consumer's and the probe's timers.

    :ivar uploads: every upload, in the order they started.
    :ivar ended: the uploads whose body ended (complete or not), in that order.
    """

    isLeaf = True

    def __init__(self, clock: IReactorTime) -> None:
        """Create the resource."""
        super().__init__()
        self.clock = clock
        self.uploads: list[HashUpload] = []
        self.ended: list[HashUpload] = []
        self._waiters: list[tuple[int, Deferred[HashUpload]]] = []

    def render_POST(self, request: Request) -> int:
        """Start hashing the body; the answer comes once it is complete."""
        upload = HashUpload()
        self.uploads.append(upload)
        if _option(request, b"rss", 0):
            upload.probe = RSSProbe(self.clock)
            upload.probe.start()
        limit = _option(request, b"limit", -1)

        def finishFailed(reason: Failure) -> None:
            upload.finishFailure = reason

        request.notifyFinish().addErrback(finishFailed)
        receiver = _HashReceiver(
            self,
            request,
            upload,
            pauseEvery=int(_option(request, b"pause_every", 0)),
            pauseFor=_option(request, b"pause", 0.05),
            limit=None if limit < 0 else limit,
        )
        deliverBody(request, receiver)
        return NOT_DONE_YET

    render_PUT = render_POST

    def whenEnded(self, count: int = 1) -> Deferred[HashUpload]:
        """Return a Deferred firing with the ``count``-th upload once its body ended.

        :param count: which upload, counting from 1, in the order they ended.
        """
        waiter: Deferred[HashUpload] = Deferred()
        self._waiters.append((count, waiter))
        self._wake()
        return waiter

    def _ended(self, upload: HashUpload) -> None:
        """Record an upload whose body ended; wake who waits for it."""
        self.ended.append(upload)
        self._wake()

    def _wake(self) -> None:
        """Fire the waiters whose upload has ended."""
        done = len(self.ended)
        ready = [(n, w) for n, w in self._waiters if n <= done]
        self._waiters = [(n, w) for n, w in self._waiters if n > done]
        for count, waiter in ready:
            waiter.callback(self.ended[count - 1])
