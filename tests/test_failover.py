"""Restarting a backend behind nginx under load loses no request.

nginx (its site rendered from ``docs/deploy/nginx-upstream.conf.in``) balances over
two ``twistd -n scgi`` backends on unix sockets.  Client threads keep sending GETs
through nginx, each on a new connection, to a resource that sends half its answer at
once and the rest 50 ms later (so that every backend always has requests in flight,
and a request dropped midway shows as half an answer: nginx cannot hide it by trying
the other backend).  Meanwhile the test sends SIGTERM
to one backend, waits for it to exit, starts it again, and does the same with the
other.  Not one request may fail: the stopping backend finishes what it is running
(its listener closed at once), and nginx passes requests for the stopped one to the
other (``scgi_next_upstream error``).

The test runs its own nginx with a minimal main configuration written here around the
template (the shared fixture in :mod:`tests.support.frontends` runs one backend per
stack).
nginx is required: without it the test fails, saying what to install.
"""

from __future__ import annotations

import http.client
import re
import shutil
import signal
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from .support.upstream import DEADLINE, PREFIX, UpstreamBackend, UpstreamNginx, tail

CLIENTS = 8
"""How many client threads send requests at once."""

APPLICATION = '''
"""The backends' application: begin the answer, finish it 50 ms later.

The first half goes out at once, so a backend that dropped the request midway could
not be hidden by nginx trying the other backend: the client would get half an answer.
"""

import os

from twisted.internet import reactor
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET


class Work(Resource):
    isLeaf = True

    def render_GET(self, request):
        tag = request.args.get(b"n", [b"-"])[0]
        request.setHeader(b"content-type", b"text/plain")
        request.write(b"pid=%d " % os.getpid())

        def answer():
            request.write(b"n=%s" % tag)
            request.finish()

        call = reactor.callLater(0.05, answer)
        request.notifyFinish().addErrback(lambda failure: call.cancel())
        return NOT_DONE_YET


root = Work()
'''


@dataclass
class _Load:
    """Client threads sending GETs through nginx until stopped.

    :ivar served: how many requests each backend pid answered.
    :ivar failures: ``(time, what)`` for every request that did not get its answer.
    """

    port: int
    served: dict[int, int] = field(default_factory=dict)
    failures: list[tuple[float, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self, clients: int) -> None:
        """Start ``clients`` threads."""
        for index in range(clients):
            thread = threading.Thread(target=self._run, args=(index,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def stop(self) -> None:
        """Stop the threads and wait for them."""
        self._stop.set()
        for thread in self._threads:
            thread.join(DEADLINE)

    def total(self) -> int:
        """Return how many requests were answered."""
        with self._lock:
            return sum(self.served.values())

    def _run(self, client: int) -> None:
        """Send one request after the other, each on a new connection."""
        sent = 0
        while not self._stop.is_set():
            tag = f"{client}-{sent}"
            sent += 1
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
            try:
                connection.request("GET", f"{PREFIX}/work?n={tag}")
                response = connection.getresponse()
                body = response.read().decode("ascii", "replace")
                match = re.fullmatch(r"pid=(\d+) n=(\S+)", body)
                if response.status != 200 or match is None or match[2] != tag:
                    problem = f"{tag}: {response.status} {body[:200]!r}"
                    self._fail(problem)
                    continue
                with self._lock:
                    pid = int(match[1])
                    self.served[pid] = self.served.get(pid, 0) + 1
            except (OSError, http.client.HTTPException) as error:
                self._fail(f"{tag}: {type(error).__name__}: {error}")
            finally:
                connection.close()

    def _fail(self, problem: str) -> None:
        with self._lock:
            self.failures.append((time.monotonic(), problem))


class FailoverTests(SynchronousTestCase):
    """Two backends behind nginx, restarted one after the other under load."""

    def setUp(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="scgi-fo-"))
        self.addCleanup(shutil.rmtree, self.directory, True)
        (self.directory / "scgi_failover_app.py").write_text(APPLICATION)
        self.backends = [UpstreamBackend(name, self.directory) for name in ("a", "b")]
        for backend in self.backends:
            self.addCleanup(backend.kill)

    def diagnostics(self, load: _Load) -> str:
        """Return what went wrong and the logs."""
        parts = [f"failures: {load.failures[:20]}", f"served: {load.served}"]
        parts.append(f"== nginx error.log\n{tail(self.directory / 'error.log')}")
        parts += [backend.output() for backend in self.backends]
        return "\n".join(parts)

    def restart(self, backend: UpstreamBackend, load: _Load) -> str:
        """SIGTERM ``backend`` under load, wait for its exit, start it again.

        :returns: the stopped generation's log.
        """
        before = load.total()
        status = backend.stop()
        log = backend.logs[-1].read_text(errors="replace")
        self.assertIn(status, (0, -signal.SIGTERM), log)
        self.assertIn("Main loop terminated.", log)
        self.assertNotIn("Traceback", log)
        self.assertFalse(backend.socket.exists())
        time.sleep(0.5)  # down for a while: nginx must pass its share on
        backend.start()
        time.sleep(1.0)  # the new process takes its share again
        self.assertGreater(load.total(), before, "no request was served meanwhile")
        return log

    def test_restartEachBackendUnderLoad(self) -> None:
        """SIGTERM and restart each backend in turn under load: no request fails.

        Both stopped processes had requests in flight when the signal came (they
        logged the drain), and both restarted processes served requests afterwards.
        """
        for backend in self.backends:
            backend.start()
        nginx = UpstreamNginx(self.directory, self.backends)
        self.addCleanup(nginx.stop)
        load = _Load(nginx.port)
        load.start(CLIENTS)
        try:
            time.sleep(1.0)
            logs = [self.restart(backend, load) for backend in self.backends]
            time.sleep(0.5)
        finally:
            load.stop()
        message = self.diagnostics(load)
        self.assertEqual(load.failures, [], message)
        self.assertGreater(load.total(), 200, message)
        for backend in self.backends:
            first, second = backend.generations
            self.assertGreater(load.served.get(first, 0), 0, message)
            self.assertGreater(load.served.get(second, 0), 0, message)
        for log in logs:
            self.assertRegex(log, r"Waiting up to \S+ s for \d+ connection", message)
            self.assertNotIn("Grace period over", log)
