"""A worker killed under load behind nginx costs no GET.

``twistd -n scgi --workers 2`` (:class:`tests.support.processes.Supervised`) listens
on a unix socket; nginx (``docs/deploy/nginx-upstream.conf.in`` through the machinery of
:mod:`tests.support.upstream`) has that socket as both entries of its upstream, so that
``scgi_next_upstream error`` sends a request that failed on one connection to the
same socket again, where the other worker (or the replacement) takes it.  Client
threads send GETs through nginx, each answered 30 ms later (so each worker always has
requests in flight).  The test kills each worker in turn with SIGKILL and waits until
the supervisor has started its replacement and it serves.

Not one GET may fail: the requests the killed worker had in flight end with a reset
or an early close, which nginx retries; the supervisor restarts the worker.  nginx is
required: without it the test fails.
"""

from __future__ import annotations

import http.client
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from .support.processes import DEADLINE, Supervised, waitUntil
from .support.upstream import PREFIX, UpstreamNginx, tail

CLIENTS = 6
"""How many client threads send GETs at once."""


@dataclass
class _Socket:
    """What :class:`tests.support.upstream.UpstreamNginx` needs of a backend."""

    socket: Path


@dataclass
class _Gets:
    """Threads sending ``GET /app/delay/0.03`` through nginx until stopped."""

    port: int
    served: dict[int, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self, clients: int) -> None:
        """Start ``clients`` threads."""
        for _ in range(clients):
            thread = threading.Thread(target=self._run, daemon=True)
            self._threads.append(thread)
            thread.start()

    def stop(self) -> None:
        """Stop the threads and wait for them."""
        self._stop.set()
        for thread in self._threads:
            thread.join(DEADLINE)

    def total(self) -> int:
        """Return how many GETs were answered."""
        with self._lock:
            return sum(self.served.values())

    def _run(self) -> None:
        while not self._stop.is_set():
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
            try:
                connection.request("GET", f"{PREFIX}/delay/0.03")
                response = connection.getresponse()
                body = response.read()
                if response.status != 200 or not body.isdigit():
                    problem = f"{response.status} {body[:100]!r}"
                    with self._lock:
                        self.failures.append(problem)
                    continue
                with self._lock:
                    pid = int(body)
                    self.served[pid] = self.served.get(pid, 0) + 1
            except (OSError, http.client.HTTPException) as error:
                with self._lock:
                    self.failures.append(f"{type(error).__name__}: {error}")
            finally:
                connection.close()


class WorkerCrashTests(SynchronousTestCase):
    """``--workers 2`` behind nginx; each worker SIGKILLed in turn under GETs."""

    def test_killedWorkersCostNoGet(self) -> None:
        """SIGKILL each worker under load: it is restarted and no GET fails.

        Both replacements serve requests afterwards.
        """
        supervised = Supervised(self)
        directory = supervised.directory
        backend = _Socket(supervised.socketPath)
        nginx = UpstreamNginx(directory, [backend, backend])  # type: ignore[list-item]
        self.addCleanup(nginx.stop)
        load = _Gets(nginx.port)
        load.start(CLIENTS)
        replacements = []
        try:
            waitUntil(lambda: load.total() >= 50, "GETs before the kills", str)
            for slot, count in ((1, 2), (2, 2)):
                victim = supervised.started()[slot]
                before = load.total()
                os.kill(victim, signal.SIGKILL)
                supervised.waitForLog(rf"Started worker {slot} ", count=count)
                replacement = supervised.started()[slot]
                self.assertNotEqual(replacement, victim)
                supervised.waitForLog(rf"Worker {slot} \(pid {replacement}\) ready")
                replacements.append(replacement)
                target = before + 50

                def servedAfter(target: int = target) -> bool:
                    return load.total() >= target

                waitUntil(servedAfter, "GETs after", str)
            mark = time.monotonic()
            waitUntil(
                lambda: (
                    all(load.served.get(pid, 0) > 0 for pid in replacements)
                    or time.monotonic() > mark + 10
                ),
                "the replacements serve",
                str,
            )
        finally:
            load.stop()
        message = (
            f"failures: {load.failures[:20]}\nserved: {load.served}\n"
            f"== nginx error.log\n{tail(directory / 'error.log')}\n"
            f"== supervisor\n{supervised.output()[-4000:]}"
        )
        self.assertEqual(load.failures, [], message)
        for pid in replacements:
            self.assertGreater(load.served.get(pid, 0), 0, message)
        self.assertRegex(
            tail(directory / "error.log", 400),
            r"upstream prematurely closed|reset by peer",
            message,
        )
