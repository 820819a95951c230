"""Running out of file descriptors: the site stops accepting before the limit.

Strategy: :class:`DescriptorGuardTests` drives the guard of a site on a ``Clock``,
with transports that report a chosen descriptor number and a descriptor count the
test sets.  :class:`BurstTests` runs ``bench/fd_exhaustion.py`` at a small scale: a
real ``twistd scgi`` with ``RLIMIT_NOFILE`` 64 and a burst of 200 connections.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from scgi_twisted import SCGISite
from scgi_twisted._descriptors import RETRY, DescriptorGuard

from .support.apps import Hello
from .support.memory import Port, PortTransport, collectLogEvents, warningsAndErrors

ROOT = Path(__file__).resolve().parent.parent


class _NumberedTransport(PortTransport):
    """A port's transport whose socket has descriptor ``fd``."""

    def __init__(self, port: Port, fd: int) -> None:
        super().__init__(port)
        self.fd = fd

    def fileno(self) -> int:
        """The descriptor."""
        return self.fd


class DescriptorGuardTests(SynchronousTestCase):
    """The guard with a limit of 64: pause at 56, refuse at 60, resume below 48."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.events = collectLogEvents(self)
        self.site = SCGISite(Hello(), reactor=self.clock)
        self.open = 20
        self.site._descriptors = DescriptorGuard(
            self.site, limit=64, count=lambda: self.open
        )
        self.port = Port()

    def connect(self, fd: int) -> Any:
        """Accept a connection whose socket got descriptor ``fd``."""
        channel = self.site.buildProtocol(None)
        if channel is None:
            return None
        channel.makeConnection(_NumberedTransport(self.port, fd))
        return channel

    def test_thresholds(self) -> None:
        """The limits follow the soft limit: an eighth (at least 8) of headroom."""
        guard = self.site._descriptors
        self.assertEqual((guard.high, guard.low, guard.edge), (56, 48, 60))
        big = DescriptorGuard(self.site, limit=1024)
        self.assertEqual((big.high, big.low, big.edge), (896, 768, 1020))
        self.assertIsNone(DescriptorGuard(self.site, limit=None).high)

    def test_pauseRefuseResume(self) -> None:
        """Accepting stops at the high mark, the last descriptors are kept, resumes.

        One warning is logged for the whole burst, and one line when accepting
        resumes; the connections taken before the pause are served.
        """
        channels = [self.connect(fd) for fd in range(50, 56)]
        self.assertTrue(self.port.reading)
        channels.append(self.connect(56))
        self.assertFalse(self.port.reading)
        self.assertEqual(len(warningsAndErrors(self.events)), 1)
        # The rest of the port's batch: served up to the edge, refused from it.
        for fd in (57, 58, 59):
            self.assertIsNotNone(self.connect(fd))
        self.assertIsNone(self.connect(60))
        self.assertEqual(self.site.connections, 10)
        # Still 50 open: a close does not resume, nor does the timer.
        self.open = 50
        channels[0].connectionLost(None)
        self.clock.advance(RETRY)
        self.assertFalse(self.port.reading)
        self.open = 40
        self.clock.advance(RETRY)
        self.assertTrue(self.port.reading)
        self.assertFalse(
            [c for c in self.clock.getDelayedCalls() if "_retry" in repr(c)],
            "no check is left pending",
        )
        self.assertEqual(len(warningsAndErrors(self.events)), 1)
        resumed = [
            event
            for event in self.events
            if "free again" in str(event.get("log_format"))
        ]
        self.assertEqual(len(resumed), 1)
        self.assertEqual(resumed[0]["refused"], 1)

    def test_closeResumes(self) -> None:
        """A connection that ends with enough descriptors free resumes accepting."""
        channel = self.connect(57)
        self.assertFalse(self.port.reading)
        self.open = 30
        channel.connectionLost(None)
        self.assertTrue(self.port.reading)

    def test_loggedOncePerMinute(self) -> None:
        """Pauses that follow within a minute are not logged again."""
        for _ in range(3):
            channel = self.connect(57)
            self.open = 30
            channel.connectionLost(None)
            self.open = 20
            self.clock.advance(1)
        self.assertEqual(len(warningsAndErrors(self.events)), 1)
        self.clock.advance(60)
        self.connect(57)
        self.assertEqual(len(warningsAndErrors(self.events)), 2)

    def test_connectionLimitKeptStopped(self) -> None:
        """Descriptors free again do not restart ports held by ``max_connections``."""
        site = SCGISite(Hello(), reactor=self.clock, max_connections=1)
        site._descriptors = DescriptorGuard(site, limit=64, count=lambda: self.open)
        self.site = site
        self.connect(57)
        self.assertFalse(self.port.reading)
        self.open = 10
        self.clock.advance(RETRY)
        self.assertFalse(self.port.reading, "still at the connection limit")


class BurstTests(SynchronousTestCase):
    """A real server with ``ulimit -n`` 64 and a burst of 200 connections."""

    def test_burst(self) -> None:
        """The server keeps serving, logs the condition at most twice, does not spin.

        Some of the burst is answered, the server's CPU time stays under half the
        burst's duration, no traceback is logged, and afterwards 20 requests are all
        answered with the descriptors back to their level.
        """
        run = subprocess.run(
            [
                sys.executable,
                str(ROOT / "bench" / "fd_exhaustion.py"),
                "--connections",
                "200",
                "--timeout",
                "30",
                "--max-log-lines",
                "2",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        result = json.loads(run.stdout)
        self.assertTrue(result["passed"], result)
        self.assertGreater(result["burst"].get("answered", 0), 40, result)
        self.assertEqual(result["fds_after"], result["fds_before"], result)
