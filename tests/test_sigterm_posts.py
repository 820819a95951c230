"""SIGTERM under a load of POSTs loses none: the listen backlog is served, not reset.

nginx (``docs/deploy/nginx-upstream.conf.in``, through the machinery of
:mod:`tests.support.upstream`) balances over two ``twistd -n scgi`` backends on unix
sockets.  Client threads send POSTs with random bodies, each on a new connection;
the backend answers with the SHA-256 of the body it read, 20 ms later, and blocks its
reactor for 2 ms per request, so that new connections always wait in its listen
backlog.  The test sends SIGTERM to one backend, waits for its exit, starts it
again, and does the same with the other, for several rounds.

nginx does not retry a POST it has sent (``non_idempotent`` is not set): a connection
in the backlog that the stopping backend reset would fail its request.  With the
backlog taken before the listener closes, not one POST may fail or come back with
the wrong hash.
nginx is required: without it the test fails.
"""

from __future__ import annotations

import hashlib
import http.client
import random
import re
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from .support.upstream import DEADLINE, PREFIX, UpstreamBackend, UpstreamNginx, tail

ROUNDS = 3
"""How many times each backend is stopped and started."""

CLIENTS = 8
"""How many client threads send POSTs at once."""

APPLICATION = '''
"""The backends' application: hash the body, answer 20 ms later."""

import hashlib
import os
import time

from twisted.internet import reactor
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET


class Hash(Resource):
    isLeaf = True

    def render_POST(self, request):
        digest = hashlib.sha256(request.content.read()).hexdigest()
        # Hold the reactor a little, so that connections queue in the backlog.
        time.sleep(0.002)

        def answer():
            request.write(b"pid=%d sha=%s" % (os.getpid(), digest.encode()))
            request.finish()

        call = reactor.callLater(0.02, answer)
        request.notifyFinish().addErrback(lambda failure: call.cancel())
        return NOT_DONE_YET


root = Hash()
'''


@dataclass
class _Posts:
    """Client threads sending POSTs through nginx until stopped.

    :ivar served: how many POSTs each backend pid answered correctly.
    :ivar failures: every POST that failed or came back with a wrong hash.
    """

    port: int
    served: dict[int, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
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
        """Return how many POSTs were answered correctly."""
        with self._lock:
            return sum(self.served.values())

    def _run(self, client: int) -> None:
        """POST one random body after the other, each on a new connection."""
        rng = random.Random(client)
        sent = 0
        while not self._stop.is_set():
            body = rng.randbytes(rng.choice([1, 1000, 20000, 70000]))
            digest = hashlib.sha256(body).hexdigest()
            tag = f"{client}-{sent}"
            sent += 1
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
            try:
                connection.request(
                    "POST",
                    f"{PREFIX}/hash?n={tag}",
                    body=body,
                    headers={"Content-Type": "application/octet-stream"},
                )
                response = connection.getresponse()
                answer = response.read().decode("ascii", "replace")
                match = re.fullmatch(r"pid=(\d+) sha=([0-9a-f]+)", answer)
                if response.status != 200 or match is None or match[2] != digest:
                    self._fail(f"{tag}: {response.status} {answer[:120]!r}")
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
            self.failures.append(problem)


class SigtermPostTests(SynchronousTestCase):
    """Two backends behind nginx, each stopped and restarted under POSTs, in rounds."""

    def setUp(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="scgi-term-"))
        self.addCleanup(shutil.rmtree, self.directory, True)
        (self.directory / "scgi_failover_app.py").write_text(APPLICATION)
        self.backends = [UpstreamBackend(name, self.directory) for name in ("a", "b")]
        for backend in self.backends:
            self.addCleanup(backend.kill)

    def test_sigtermLosesNoPost(self) -> None:
        """SIGTERM and restart each backend, in rounds, under POSTs: none fails.

        Every POST comes back with the hash of the body sent; the stopped processes
        exit cleanly, without a traceback; requests are served throughout.
        """
        for backend in self.backends:
            backend.start()
        nginx = UpstreamNginx(self.directory, self.backends)
        self.addCleanup(nginx.stop)
        load = _Posts(nginx.port)
        load.start(CLIENTS)
        logs = []
        try:
            time.sleep(0.5)
            for _ in range(ROUNDS):
                for backend in self.backends:
                    before = load.total()
                    status = backend.stop()
                    log = backend.logs[-1].read_text(errors="replace")
                    logs.append(log)
                    self.assertIn(status, (0, -15), log)
                    self.assertNotIn("Traceback", log)
                    backend.start()
                    time.sleep(0.3)
                    self.assertGreater(load.total(), before, "nothing was served")
        finally:
            load.stop()
        message = "\n".join(
            [
                f"failures: {load.failures[:20]}",
                f"served: {load.served}",
                f"== nginx error.log\n{tail(self.directory / 'error.log')}",
                *(backend.output() for backend in self.backends),
            ]
        )
        self.assertEqual(load.failures, [], message)
        self.assertGreater(load.total(), 100, message)
        self.assertEqual(len(logs), 2 * ROUNDS)
