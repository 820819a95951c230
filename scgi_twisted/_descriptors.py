"""Running out of file descriptors: stop accepting before the process has none left.

A process at its ``RLIMIT_NOFILE`` cannot ``accept()``.  Twisted's listening ports
then take and close every queued connection, and log a line for each, so a burst of
connections against a low limit turns into hundreds of unanswered connections and
hundreds of log lines.  :class:`DescriptorGuard` acts earlier, with the descriptor
number of each new connection (the kernel hands out the lowest free one, so a high
number means the table is nearly full):

* at :attr:`~DescriptorGuard.high` (the soft limit minus an eighth of it, at least 8)
  the site's ports stop accepting: new connections wait in the listen backlog, and
  one line is logged (at most once a minute);
* connections the port had already taken in the same batch are served; once the
  descriptor numbers reach :attr:`~DescriptorGuard.edge` (4 below the limit) the rest
  of that batch is closed at once, unanswered, to keep the last descriptors for the
  connections being served (their request bodies may need a file);
* the ports accept again once fewer than :attr:`~DescriptorGuard.low` descriptors
  (two eighths below the limit) are open: checked when a connection ends and every
  :data:`RETRY` seconds (descriptors may be held by something other than
  connections).  A port's next batch is then cut to the descriptors left (its
  ``numberAccepts``, which it raises again by itself while batches come full).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper

__all__ = ["RETRY", "DescriptorGuard", "openDescriptors", "softLimit"]

_log = Logger()

RETRY = 0.5
"""Seconds between two checks for free descriptors while not accepting."""

LOG_INTERVAL = 60.0
"""The condition is logged at most once in this many seconds."""


def softLimit() -> int | None:
    """Return the soft ``RLIMIT_NOFILE``, or ``None`` if unlimited or unknown."""
    try:
        import resource  # noqa: PLC0415 - POSIX only

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, OSError, ValueError):
        return None
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return None
    return int(soft)


def openDescriptors() -> int:
    """Return how many descriptors this process has open (about, without ``/proc``)."""
    try:
        # The listing itself holds one descriptor while it runs.
        return len(os.listdir("/proc/self/fd")) - 1
    except OSError:
        pass
    try:
        probe = os.open(os.devnull, os.O_RDONLY)
    except OSError:
        return 1 << 30  # none free
    os.close(probe)
    return probe  # the lowest free descriptor: the table holds at least this many


class DescriptorGuard:
    """Pause a site's accepting while its process is short of descriptors.

    :param site: the :class:`~scgi_twisted.SCGISite`; it provides ``reactor``,
        ``_ports``, ``_notePort``, ``_accepting`` and ``_resumeAccepting``.
    :param limit: the soft descriptor limit; by default the process's.
    :param count: returns how many descriptors are open.

    :ivar high: pause at a connection with a descriptor this high (``None``: never).
    :ivar low: accept again below this many open descriptors.
    :ivar edge: while paused, refuse a connection that would take a descriptor
        this high.
    :ivar paused: whether accepting is paused for descriptors now.
    """

    paused = False
    high: int | None = None
    low = 0
    edge = 0

    def __init__(
        self,
        site: Any,
        limit: int | None = -1,
        count: Callable[[], int] = openDescriptors,
    ) -> None:
        """Watch ``site``; see the class docstring for the parameters."""
        self._site = site
        self._count = count
        if limit == -1:
            limit = softLimit()
        if limit is not None:
            headroom = max(8, limit // 8)
            self.high = limit - headroom
            self.low = limit - 2 * headroom
            self.edge = limit - 4
        self.limit = limit
        self._lastFd = -1
        self._raw = False
        self._refused = 0
        self._call: IDelayedCall | None = None
        self._loggedAt: float | None = None
        self._logged = False

    def opened(self, channel: Any) -> None:
        """A connection opened: pause accepting if its descriptor is high."""
        high = self.high
        if high is None:
            return
        fileno = getattr(channel.transport, "fileno", None)
        if fileno is None:
            return
        try:
            fd = int(fileno())
        except Exception:
            return
        self._lastFd = fd
        self._raw = not isinstance(channel.transport, ProtocolWrapper)
        if fd >= high:
            site = self._site
            site._notePort(channel)
            if not self.paused:
                self._pause(fd)
            else:
                for port in site._ports.values():
                    port.stopReading()

    def exhausted(self) -> bool:
        """Return whether a connection being accepted must be refused.

        Only while paused, and only if it would take one of the last descriptors:
        within a batch the new descriptors follow the last one seen.  Never behind
        a wrapping factory (TLS), which cannot take a refusal (``None``).
        """
        if not self.paused or not self._raw or self._lastFd + 1 < self.edge:
            return False
        self._refused += 1
        return True

    def closed(self) -> None:
        """A connection ended: accept again if enough descriptors are free."""
        if self.paused:
            self._resumeIfFree()

    def _pause(self, fd: int) -> None:
        """Stop every port of the site; log (once a minute); check again later."""
        self.paused = True
        site = self._site
        for port in site._ports.values():
            port.stopReading()
        now = site.reactor.seconds()
        self._logged = self._loggedAt is None or now - self._loggedAt >= LOG_INTERVAL
        if self._logged:
            self._loggedAt = now
            _log.warn(
                "Running out of file descriptors (a new connection got descriptor "
                "{fd}, the limit is {limit}): not accepting until some are free",
                fd=fd,
                limit=self.limit,
            )
        self._schedule()

    def _schedule(self) -> None:
        """Check for free descriptors in :data:`RETRY` seconds."""
        self._call = self._site.reactor.callLater(RETRY, self._retry)

    def _retry(self) -> None:
        """The periodic check while paused."""
        self._call = None
        if self.paused and not self._resumeIfFree():
            self._schedule()

    def _resumeIfFree(self) -> bool:
        """Accept again if fewer than :attr:`low` descriptors are open."""
        count = self._count()
        if count >= self.low:
            return False
        self.paused = False
        call, self._call = self._call, None
        if call is not None and call.active():
            call.cancel()
        if self._logged:
            _log.info(
                "File descriptors free again ({count} open): accepting; "
                "{refused} connection(s) closed unanswered meanwhile",
                count=count,
                refused=self._refused,
            )
        self._refused = 0
        site = self._site
        high = self.high
        assert high is not None
        for port in site._ports.values():
            # A port takes up to numberAccepts connections each time it is readable
            # (more after a full batch): no more than the descriptors left.
            if isinstance(getattr(port, "numberAccepts", None), int):
                port.numberAccepts = max(1, min(port.numberAccepts, high - count))
        if site._accepting():
            site._resumeAccepting()
        return True
