"""The streamed upload: the body of one request, delivered to a protocol as it arrives.

A :class:`StreamedUpload` is what :func:`~scgi_twisted.deliverBody` hands the
protocol as its "transport", in the way ``twisted.web._http2.H2Stream`` is both what a
request sees and its producer: pausing it pauses the reading of the connection.  The
channel feeds it the body (:meth:`StreamedUpload.bodyReceived`) and tells it how the
body ends; the upload talks back only through the small :class:`UploadReader`
interface (stop or resume reading the connection, a receiver that failed).

Rules, all tested: the protocol gets exactly one ``connectionLost``; chunks that
arrive before the protocol does wait for it, with the connection paused; a protocol
that stops the delivery gets its ``connectionLost`` at once and the rest of the body
is read and dropped.
"""

from __future__ import annotations

import contextlib
import enum
import sys
import weakref
from typing import Any, Protocol

from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IProtocol, IPushProducer
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from zope.interface import implementer

from ._streaming import NotStreamingError

__all__ = ["StreamedUpload", "UploadReader", "deliverBody", "uploadOf"]


class UploadReader(Protocol):
    """What an upload needs from the connection it arrives on."""

    def pauseReading(self) -> None:
        """Stop reading the connection (and its idle timeout) for the body."""

    def resumeReading(self) -> None:
        """Read the connection again and act on what has already arrived."""

    def receiverFailed(self, failure: Failure) -> None:
        """The receiver's ``connectionLost`` raised ``failure``."""


class Delivery(enum.Enum):
    """Where the delivery of an upload to its receiver is."""

    WAITING = "waiting"
    """No receiver yet: chunks are held (the connection paused) until one comes."""

    RECEIVING = "receiving"
    """A receiver gets the chunks."""

    ENDED = "ended"
    """The receiver was told the end, stopped the delivery, or the response was
    finished first: what still arrives is dropped, and no receiver can come."""


_uploads: weakref.WeakKeyDictionary[object, StreamedUpload] = (
    weakref.WeakKeyDictionary()
)
"""The upload of each request whose body is streamed, while the request lives."""


def uploadOf(request: object) -> StreamedUpload | None:
    """Return the upload of ``request``, or ``None`` if its body is not streamed."""
    try:
        return _uploads.get(request)
    except TypeError:  # not a weakref-able object: never streamed
        return None


def deliverBody(request: object, protocol: IProtocol) -> None:
    """Deliver the body of a streamed request to ``protocol`` as it arrives.

    Call it from the ``render_*`` method of an :class:`IStreamingUploadResource`.

    :param request: the request being rendered.
    :param protocol: receives ``makeConnection(producer)`` (an ``IPushProducer`` for
        flow control), ``dataReceived(data)`` for every piece of the body, and
        ``connectionLost(reason)`` at its end: ``ResponseDone`` when the body is
        complete, any other failure when it never will be.
    :raises NotStreamingError: if the request's body is not streamed (the resource
        does not provide the interface, the request has no body, the body was
        already given to a protocol, the response is finished, or the request did
        not arrive over SCGI).

    If the connection was lost before the call, the protocol still gets what had
    arrived, then ``connectionLost`` with the reason.
    """
    upload = uploadOf(request)
    if upload is None:
        raise NotStreamingError("this request's body is not streamed")
    upload.deliverTo(protocol)


def _failure(error: BaseException) -> Failure:
    """Wrap an exception in a ``Failure`` (``Failure`` itself is untyped)."""
    return Failure(error)  # type: ignore[no-untyped-call]


@implementer(IPushProducer)
class StreamedUpload:
    """The streamed body of one request, and the producer its receiver controls.

    :ivar delivery: where the delivery is (:class:`Delivery`).

    Two flags beside it, each independent of the delivery: ``_complete``, whether
    the whole body has arrived (it may, before any receiver exists), and ``_paused``,
    whether the receiver asked for a pause (only while it receives).
    """

    delivery: Delivery = Delivery.WAITING
    _receiver: IProtocol | None = None
    _complete: bool = False
    _paused: bool = False
    _failure: Failure | None = None

    def __init__(self, request: object, reader: UploadReader) -> None:
        """Stream the body of ``request``, which arrives through ``reader``."""
        self._reader = reader
        self._pending: list[bytes] = []
        with contextlib.suppress(TypeError):  # a request that has no weakref
            _uploads[request] = self

    # The channel's side.

    def bodyReceived(self, data: bytes) -> None:
        """Hand a piece of the body on, or hold it until a receiver exists."""
        receiver = self._receiver
        if receiver is not None:
            receiver.dataReceived(data)
        elif self.delivery is Delivery.WAITING:
            self._pending.append(data)
            self._reader.pauseReading()

    def bodyComplete(self) -> None:
        """The whole body has arrived: tell the receiver (or the one to come)."""
        self._complete = True
        self._end(None)

    def responseFinished(self) -> None:
        """The response ended before the body: deliver no more of it."""
        self._stop(ConnectionDone("the response finished before the body"))

    def connectionLost(self, reason: Failure) -> None:
        """The connection is gone: an unfinished body ends with ``reason``.

        A receiver still to come gets what had arrived, then ``reason``.
        """
        if self._complete:
            return
        if self.delivery is Delivery.WAITING and self._failure is None:
            self._failure = reason
        self._end(reason)

    def deliverTo(self, protocol: IProtocol) -> None:
        """Start delivering the body to ``protocol`` (``deliverBody``).

        :raises NotStreamingError: if the body already has a receiver, or no
            receiver can come any more.
        """
        if self.delivery is not Delivery.WAITING:
            raise NotStreamingError(
                "the body was already delivered to a protocol, or the response is "
                "finished"
            )
        self.delivery = Delivery.RECEIVING
        self._receiver = protocol
        # As with IResponse.deliverBody, the protocol's "transport" is a producer.
        transport: Any = self
        protocol.makeConnection(transport)
        self._flush()

    # IPushProducer: the receiver's side.

    def pauseProducing(self) -> None:
        """Stop reading the body until ``resumeProducing``."""
        if self._receiver is None:
            return
        self._paused = True
        self._reader.pauseReading()

    def resumeProducing(self) -> None:
        """Read the body again: held chunks first, then the connection."""
        if self._receiver is None or not self._paused:
            return
        self._paused = False
        self._flush()

    def stopProducing(self) -> None:
        """Deliver no more of the body; the rest is read and dropped.

        The protocol's ``connectionLost`` is called at once, with a failure.
        """
        if self._receiver is None:
            return
        self._stop(ConnectionDone("the body's receiver stopped the delivery"))
        self._reader.resumeReading()

    # Delivery.

    def _flush(self) -> None:
        """Deliver the held chunks while the receiver wants them, then read on."""
        pending = self._pending
        while pending and self._receiver is not None:
            if self._paused:
                return
            self._receiver.dataReceived(pending.pop(0))
        if self._receiver is None or self._paused:
            return
        if self._failure is not None:
            self._end(self._failure)
        elif self._complete:
            self._end(None)
        else:
            self._reader.resumeReading()

    def _stop(self, error: BaseException) -> None:
        """End the delivery now: the receiver, if any, gets ``error``."""
        self.delivery = Delivery.ENDED
        self._paused = False
        self._pending = []
        self._end(_failure(error))

    def _end(self, reason: Failure | None) -> None:
        """Tell the receiver, once, that the body ended (``None``: complete).

        Nothing happens without a receiver: one still to come is told by
        :meth:`_flush`.  An exception from its ``connectionLost`` goes to the reader.
        """
        receiver = self._receiver
        if receiver is None:
            return
        self.delivery = Delivery.ENDED
        self._receiver = None
        self._pending = []
        if reason is None:
            reason = _failure(ResponseDone("the request body is complete"))
        try:
            receiver.connectionLost(reason)
        except Exception:
            error = sys.exc_info()[1]
            assert error is not None
            self._reader.receiverFailed(
                Failure(error, type(error), error.__traceback__)  # type: ignore[no-untyped-call]
            )
