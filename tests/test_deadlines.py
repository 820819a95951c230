"""Tests for ``scgi_twisted._deadlines``: connection deadlines in per-length queues.

A :class:`Deadlines` stands in for the reactor's ``callLater`` of every channel of
a site.  These pin that each call behaves as a reactor's ``IDelayedCall`` would
(when it runs, moving, delaying, cancelling, the errors once called or cancelled),
and how many reactor timers the queues keep.
"""

from __future__ import annotations

from twisted.internet.error import AlreadyCalled, AlreadyCancelled, ConnectionDone
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.static import Data
from zope.interface.verify import verifyObject

from scgi_twisted import SCGISite
from scgi_twisted._deadlines import Deadlines
from scgi_twisted._response import cancelTimer

from .support.memory import connect
from .support.scgi import buildRequest, nginxVariables


class DeadlineTests(SynchronousTestCase):
    """Each deadline runs its action when a reactor's call would."""

    def setUp(self) -> None:
        """A set of queues on a ``Clock``; ``self.fired`` records what ran, when."""
        self.clock = Clock()
        self.deadlines = Deadlines(self.clock)
        self.fired: list[tuple[str, float]] = []

    def record(self, name: str) -> None:
        """Note that ``name`` ran, and the time."""
        self.fired.append((name, self.clock.seconds()))

    def test_isADelayedCall(self) -> None:
        """A deadline provides ``IDelayedCall`` and reports its time."""
        call = self.deadlines.call(5.0, self.record, "a")
        self.assertTrue(verifyObject(IDelayedCall, call))
        self.assertEqual(call.getTime(), 5.0)
        self.assertTrue(call.active())

    def test_firesAtItsTime(self) -> None:
        """The action runs, with its arguments, at its time, not before."""
        call = self.deadlines.call(5.0, self.record, "a")
        self.clock.advance(4.999)
        self.assertEqual(self.fired, [])
        self.clock.advance(0.001)
        self.assertEqual(self.fired, [("a", 5.0)])
        self.assertFalse(call.active())
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_sameLengthInOrder(self) -> None:
        """Deadlines of one length run in order, each at its own time."""
        self.deadlines.call(5.0, self.record, "a")
        self.clock.advance(1)
        self.deadlines.call(5.0, self.record, "b")
        self.clock.advance(2)
        self.deadlines.call(5.0, self.record, "c")
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.pump([1] * 10)
        self.assertEqual(self.fired, [("a", 5.0), ("b", 6.0), ("c", 8.0)])

    def test_severalLengths(self) -> None:
        """Deadlines of different lengths each run at their own time."""
        self.deadlines.call(10.0, self.record, "long")
        self.deadlines.call(2.0, self.record, "short")
        self.clock.pump([1, 1, 8])
        self.assertEqual(self.fired, [("short", 2.0), ("long", 10.0)])

    def test_cancel(self) -> None:
        """A cancelled deadline never runs; the last one out stops the timer."""
        first = self.deadlines.call(5.0, self.record, "a")
        second = self.deadlines.call(5.0, self.record, "b")
        first.cancel()
        self.assertFalse(first.active())
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        second.cancel()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(10)
        self.assertEqual(self.fired, [])

    def test_cancelEarliestWaitsForNext(self) -> None:
        """With the earliest cancelled, the next still runs at its own time."""
        first = self.deadlines.call(5.0, self.record, "a")
        self.clock.advance(3)
        self.deadlines.call(5.0, self.record, "b")
        first.cancel()
        self.clock.advance(2)
        self.assertEqual(self.fired, [])
        self.clock.advance(3)
        self.assertEqual(self.fired, [("b", 8.0)])

    def test_resetSameLength(self) -> None:
        """``reset`` to the same length moves the deadline to now plus that length."""
        call = self.deadlines.call(5.0, self.record, "a")
        self.clock.advance(4)
        call.reset(5.0)
        self.assertEqual(call.getTime(), 9.0)
        self.clock.advance(4.5)
        self.assertEqual(self.fired, [])
        self.clock.advance(0.5)
        self.assertEqual(self.fired, [("a", 9.0)])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_resetOtherLength(self) -> None:
        """``reset`` to another length, sooner or later, moves it there."""
        call = self.deadlines.call(5.0, self.record, "a")
        call.reset(1.0)
        self.assertEqual(call.getTime(), 1.0)
        self.clock.advance(1)
        self.assertEqual(self.fired, [("a", 1.0)])
        later = self.deadlines.call(1.0, self.record, "b")
        later.reset(30.0)
        self.clock.advance(29.5)
        self.assertEqual(self.fired, [("a", 1.0)])
        self.clock.advance(0.5)
        self.assertEqual(self.fired, [("a", 1.0), ("b", 31.0)])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_delay(self) -> None:
        """``delay`` moves the deadline later by that much."""
        call = self.deadlines.call(5.0, self.record, "a")
        self.clock.advance(1)
        call.delay(2.0)
        self.assertEqual(call.getTime(), 7.0)
        self.clock.advance(6)
        self.assertEqual(self.fired, [("a", 7.0)])

    def test_inactiveRaises(self) -> None:
        """Once run or cancelled, a deadline raises as a reactor's call does."""
        ran = self.deadlines.call(1.0, self.record, "a")
        self.clock.advance(1)
        self.assertRaises(AlreadyCalled, ran.cancel)
        self.assertRaises(AlreadyCalled, ran.reset, 1.0)
        cancelled = self.deadlines.call(1.0, self.record, "b")
        cancelled.cancel()
        self.assertRaises(AlreadyCancelled, cancelled.cancel)
        self.assertRaises(AlreadyCancelled, cancelled.delay, 1.0)

    def test_actionSchedulesAgain(self) -> None:
        """An action may cancel a deadline of its own queue and set a new one."""
        calls: list[IDelayedCall] = []

        def first() -> None:
            self.record("first")
            calls[0].cancel()
            self.deadlines.call(5.0, self.record, "again")

        self.deadlines.call(5.0, first)
        self.clock.advance(1)
        calls.append(self.deadlines.call(5.0, self.record, "later"))
        self.clock.advance(4)
        self.assertEqual(self.fired, [("first", 5.0)])
        self.clock.pump([1] * 5)
        self.assertEqual(self.fired, [("first", 5.0), ("again", 10.0)])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_actionDropped(self) -> None:
        """A deadline that ran keeps no reference to its action (nor its owner)."""
        call = self.deadlines.call(1.0, self.record, "a")
        self.clock.advance(1)
        self.assertNotIn(self, [getattr(call._action, "__self__", None)])


class CancelTimerTests(SynchronousTestCase):
    """``cancelTimer`` stops a pending timer and lets a spent one be."""

    def test_cancelTimer(self) -> None:
        """A pending timer is cancelled; a spent one is left alone.

        Both a reactor's timer and a deadline: one that ran or was cancelled
        already raises nothing, where its ``cancel`` would.
        """
        clock = Clock()
        deadlines = Deadlines(clock)
        ran: list[str] = []
        for timer in (
            clock.callLater(1.0, ran.append, "reactor"),
            deadlines.call(1.0, ran.append, "deadline"),
        ):
            cancelTimer(timer)
            self.assertFalse(timer.active())
            cancelTimer(timer)  # cancelled already
        clock.advance(2)
        self.assertEqual(ran, [])
        for timer in (
            clock.callLater(1.0, ran.append, "reactor"),
            deadlines.call(1.0, ran.append, "deadline"),
        ):
            clock.advance(1)
            cancelTimer(timer)  # called already
        self.assertEqual(ran, ["reactor", "deadline"])


class LazyTests(SynchronousTestCase):
    """While the site listens, an emptied queue keeps its timer for the next."""

    def setUp(self) -> None:
        """Lazy queues on a ``Clock``."""
        self.clock = Clock()
        self.deadlines = Deadlines(self.clock)
        self.deadlines.lazy = True
        self.fired: list[float] = []

    def test_timerKeptForTheNext(self) -> None:
        """Cancelling the only deadline leaves the timer, which the next one uses."""
        self.deadlines.call(5.0, self.fired.append, 0).cancel()
        (timer,) = self.clock.getDelayedCalls()
        self.clock.advance(1)
        self.deadlines.call(5.0, lambda: self.fired.append(self.clock.seconds()))
        self.assertEqual(self.clock.getDelayedCalls(), [timer])
        self.clock.advance(4)
        self.assertEqual(self.fired, [])
        self.clock.advance(1)
        self.assertEqual(self.fired, [6.0])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_emptyTimerEndsQuietly(self) -> None:
        """A kept timer that finds its queue empty runs nothing and is not renewed."""
        self.deadlines.call(5.0, self.fired.append, 0).cancel()
        self.clock.advance(5)
        self.assertEqual(self.fired, [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stopIdle(self) -> None:
        """``stopIdle`` stops the timers of empty queues, not of the others."""
        self.deadlines.call(5.0, self.fired.append, 0).cancel()
        self.deadlines.call(7.0, self.fired.append, 7)
        self.deadlines.stopIdle()
        (timer,) = self.clock.getDelayedCalls()
        self.assertEqual(timer.getTime(), 7.0)
        self.assertFalse(self.deadlines.lazy)
        self.clock.advance(7)
        self.assertEqual(self.fired, [7])


def _page() -> Data:
    """Return a leaf resource that answers every path with ``hi``."""
    page = Data(b"hi", "text/plain")
    page.isLeaf = True
    return page


class SiteTests(SynchronousTestCase):
    """A site's channels take their deadlines from the site's queues."""

    def test_listeningSiteKeepsTimerUntilStopped(self) -> None:
        """A started site keeps an emptied queue's timer; stopping it leaves none.

        Its channels' header deadline is a queue's: one reactor timer for every
        connection, not one built and cancelled per connection.
        """
        clock = Clock()
        site = SCGISite(_page(), reactor=clock, header_timeout=3.0)
        site.doStart()
        timers = []
        for _ in range(3):
            channel, transport = connect(site)
            channel.dataReceived(buildRequest(nginxVariables()))
            self.assertTrue(transport.value().startswith(b"Status: 200"))
            channel.connectionLost(Failure(ConnectionDone()))
            timers.append(
                # Not twisted.web's own timer, which updates the log's date.
                [
                    c
                    for c in clock.getDelayedCalls()
                    if "_updateLogDateTime" not in repr(c)
                ]
            )
        # The header deadline's and the write timeout's, made for the first
        # connection and used by the next ones.
        self.assertEqual(len(timers[0]), 2)
        self.assertEqual(timers, [timers[0]] * 3)
        site.doStop()
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_headerDeadlineFromTheQueue(self) -> None:
        """A silent connection of a started site still times out at its deadline."""
        clock = Clock()
        site = SCGISite(_page(), reactor=clock, header_timeout=3.0)
        site.doStart()
        self.addCleanup(site.doStop)
        connect(site)[0].connectionLost(Failure(ConnectionDone()))
        clock.advance(2)
        channel, transport = connect(site)
        channel.dataReceived(b"12:")
        clock.advance(2.5)
        self.assertFalse(transport.disconnecting)
        clock.advance(0.5)
        self.assertTrue(transport.value().startswith(b"Status: 408"))
