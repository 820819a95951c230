"""The deadlines of a site's connections, kept in queues on a few reactor timers.

Every deadline a connection sets is one of a handful of lengths: the header, idle,
linger, abort and write timeouts of its site.  Deadlines of one length fall in the
order they were set, so each length needs only a queue in that order and one
reactor timer, for the earliest.  Setting, moving and stopping a deadline is then a
dictionary operation, where a reactor timer per deadline would be an object to
build, schedule and cancel for every connection.

:class:`Deadlines` offers the reactor's ``callLater`` with the same meaning: the
call it returns is an ``IDelayedCall``, whose action runs at the same time, and it
can be moved (``reset``), delayed (``delay``) or stopped (``cancel``).

While its site listens (:attr:`Deadlines.lazy`), a queue that empties keeps its
timer: the next connection's deadline comes later, so the timer serves it too, and
a quiet server does not build and cancel a reactor timer for every connection.
Otherwise, and once the site stops, a queue's timer is stopped as soon as the queue
is empty, so a site without connections leaves nothing scheduled.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

from twisted.internet.error import AlreadyCalled, AlreadyCancelled
from twisted.internet.interfaces import IDelayedCall
from zope.interface import implementer

__all__ = ["Deadline", "Deadlines"]


@implementer(IDelayedCall)
class Deadline:
    """One deadline in a queue: an ``IDelayedCall``.

    :ivar time: when it falls, on the reactor's clock.
    """

    __slots__ = ("_action", "_args", "_queue", "_state", "time")

    def __init__(
        self,
        queue: _Queue,
        time: float,
        action: Callable[..., object],
        args: tuple[Any, ...],
    ) -> None:
        """Fall at ``time`` in ``queue``, then call ``action(*args)``."""
        self._queue: _Queue | None = queue
        self._action = action
        self._args = args
        self._state = ""
        self.time = time

    def getTime(self) -> float:
        """Return when it falls, on the reactor's clock."""
        return self.time

    def active(self) -> bool:
        """Return whether it has neither fallen nor been cancelled."""
        return self._queue is not None

    def cancel(self) -> None:
        """Stop it: its action will not run."""
        queue = self._queue
        if queue is None:
            self._raiseInactive()
        self._queue = None
        self._state = "cancelled"
        queue.remove(self)

    def reset(self, secondsFromNow: float) -> None:
        """Move it to ``secondsFromNow`` from now."""
        queue = self._queue
        if queue is None:
            self._raiseInactive()
        if secondsFromNow == queue.length:
            queue.moveToEnd(self)
            return
        queue.remove(self)
        self._queue = queue.owner.queue(secondsFromNow)
        self._queue.append(self, secondsFromNow)

    def delay(self, secondsLater: float) -> None:
        """Move it ``secondsLater`` later than it is."""
        queue = self._queue
        if queue is None:
            self._raiseInactive()
        self.reset(self.time + secondsLater - queue.owner.seconds())

    def _raiseInactive(self) -> NoReturn:
        """Raise what a reactor's call raises once called or cancelled."""
        if self._state == "cancelled":
            raise AlreadyCancelled
        raise AlreadyCalled

    def fall(self) -> None:
        """It has fallen: run its action (the queue took it out)."""
        self._queue = None
        self._state = "called"
        action, args = self._action, self._args
        self._action = _nothing
        self._args = ()
        action(*args)


def _nothing(*args: object) -> None:
    """What a fallen deadline keeps instead of its action (freeing its owner)."""


class _Queue:
    """The deadlines of one length, earliest first, on one reactor timer."""

    def __init__(self, owner: Deadlines, length: float) -> None:
        """Hold the deadlines ``length`` seconds after they are set."""
        self.owner = owner
        self.length = length
        # A dict keeps insertion order and removes any entry at once: an ordered set.
        self._entries: dict[Deadline, None] = {}
        self._timer: IDelayedCall | None = None

    def append(self, deadline: Deadline, length: float) -> None:
        """Add ``deadline``, ``length`` (this queue's) seconds from now: the latest."""
        deadline.time = self.owner.seconds() + length
        self._entries[deadline] = None
        if self._timer is None:
            self._timer = self.owner.callLater(length, self._due)

    def pending(self) -> int:
        """Return how many deadlines wait in this queue."""
        return len(self._entries)

    def moveToEnd(self, deadline: Deadline) -> None:
        """Set ``deadline`` again, from now: it becomes the latest.

        The timer stays where it is: if it comes before the next deadline, it waits
        again then.
        """
        del self._entries[deadline]
        deadline.time = self.owner.seconds() + self.length
        self._entries[deadline] = None

    def remove(self, deadline: Deadline) -> None:
        """Take ``deadline`` out; stop the timer once nothing is left (unless lazy).

        A timer for a deadline that was taken out is left to come: it finds the
        next one, if any, and waits again (one reactor call instead of two).
        """
        del self._entries[deadline]
        if not self._entries and not self.owner.lazy:
            self.stopTimer()

    def stopTimer(self) -> None:
        """Stop the timer, if it runs."""
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    def _due(self) -> None:
        """The earliest deadline may have come: run every one that has."""
        self._timer = None
        entries = self._entries
        seconds = self.owner.seconds
        while entries:
            deadline = next(iter(entries))
            now = seconds()
            if deadline.time > now:
                if self._timer is None:
                    self._timer = self.owner.callLater(deadline.time - now, self._due)
                return
            del entries[deadline]
            deadline.fall()


class Deadlines:
    """A ``callLater`` whose calls wait in queues, one per length of delay.

    :param reactor: the reactor (``IReactorTime``) whose clock and timers it uses.

    :ivar lazy: whether a queue that empties keeps its timer (see the module's
        docstring); the site sets it while it listens.
    """

    lazy = False

    def __init__(self, reactor: Any) -> None:
        """Keep no deadline yet."""
        self.reactor = reactor
        self.callLater: Callable[..., IDelayedCall] = reactor.callLater
        self.seconds: Callable[[], float] = reactor.seconds
        self._queues: dict[float, _Queue] = {}

    def stopIdle(self) -> None:
        """Stop the timers of the queues that are empty (the site stopped)."""
        self.lazy = False
        for queue in self._queues.values():
            if not queue.pending():
                queue.stopTimer()

    def queue(self, length: float) -> _Queue:
        """Return the queue of deadlines ``length`` seconds long."""
        queue = self._queues.get(length)
        if queue is None:
            queue = self._queues[length] = _Queue(self, length)
        return queue

    def call(
        self, delay: float, action: Callable[..., object], *args: object
    ) -> Deadline:
        """Call ``action(*args)`` in ``delay`` seconds, as ``callLater`` does.

        :returns: the deadline, an ``IDelayedCall``.
        """
        queue = self.queue(delay)
        deadline = Deadline(queue, 0.0, action, args)
        queue.append(deadline, delay)
        return deadline
