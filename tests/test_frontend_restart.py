"""nginx reloaded and restarted with uploads and streamed answers in flight.

One ``twistd -n scgi`` backend on a unix socket
(:class:`tests.support.upstream.UpstreamBackend`) serves, behind nginx
(``docs/deploy/nginx-upstream.conf.in`` through
:class:`tests.support.upstream.UpstreamNginx`, both entries on that socket):

* ``POST /app/upload``: a 1 MiB body, answered with its SHA-256;
* ``GET /app/stream``: 40 pieces of 16 KiB, one every 50 ms (2 s in all).

Client threads keep both going.  The test reloads nginx (``SIGHUP``, as
``nginx -s reload``: the old workers finish what they serve), then stops it
(``SIGTERM``, a fast shutdown that cuts every connection) and starts it again, each
time with requests in flight.  The clients' own failures during the restart are
expected; what is checked is the backend:

* every request it saw ended: its ``notifyFinish()`` fired (the application counts
  them, and answers the counts on ``/stats``, asked over SCGI directly), and some of
  them ended with an error (the restart cut them);
* it logged no traceback;
* its memory returned to its level: the RSS after the load, once idle, is within
  16 MiB of the RSS after a warm-up of the same load.

nginx is required: without it the test fails.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import tempfile
import threading
import time
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from .support.scgi import buildRequest, nginxVariables, parseResponse
from .support.sockets import readToEnd
from .support.upstream import DEADLINE, PREFIX, UpstreamBackend, UpstreamNginx, tail

APPLICATION = '''
"""Uploads hashed, streamed answers, and the count of requests seen and ended."""

import hashlib
import json

from twisted.internet import reactor
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

COUNTS = {"started": 0, "finished": 0, "failed": 0}


def track(request):
    COUNTS["started"] += 1

    def ended(result, key):
        COUNTS[key] += 1
        if key == "failed":
            COUNTS["finished"] += 1

    request.notifyFinish().addCallbacks(
        ended, ended, callbackArgs=("finished",), errbackArgs=("failed",)
    )


class Upload(Resource):
    isLeaf = True

    def render_POST(self, request):
        track(request)
        return hashlib.sha256(request.content.read()).hexdigest().encode()


class Stream(Resource):
    isLeaf = True

    def render_GET(self, request):
        track(request)
        state = {"left": 40, "call": None}

        def step():
            if state["left"] == 0:
                request.finish()
                return
            state["left"] -= 1
            request.write(b"s" * 16384)
            state["call"] = reactor.callLater(0.05, step)

        def stop(failure):
            if state["call"] is not None and state["call"].active():
                state["call"].cancel()

        request.notifyFinish().addErrback(stop)
        step()
        return NOT_DONE_YET


class Stats(Resource):
    isLeaf = True

    def render_GET(self, request):
        return json.dumps(COUNTS).encode()


root = Resource()
root.putChild(b"upload", Upload())
root.putChild(b"stream", Stream())
root.putChild(b"stats", Stats())
'''

BODY = os.urandom(1024 * 1024)
DIGEST = hashlib.sha256(BODY).hexdigest()


class _Traffic:
    """Threads sending uploads and streams through nginx until stopped."""

    def __init__(self) -> None:
        self.port = 0
        self.ok = 0
        self.failed = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(kind,), daemon=True)
            for kind in ["upload"] * 3 + ["stream"] * 3
        ]

    def start(self) -> None:
        """Start sending."""
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop and wait."""
        self._stop.set()
        for thread in self._threads:
            thread.join(DEADLINE)

    def _run(self, kind: str) -> None:
        while not self._stop.is_set():
            if not self.port:
                time.sleep(0.05)
                continue
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                if kind == "upload":
                    connection.request("POST", f"{PREFIX}/upload", body=BODY)
                    expected: object = DIGEST.encode()
                else:
                    connection.request("GET", f"{PREFIX}/stream")
                    expected = 40 * 16384
                response = connection.getresponse()
                body = response.read()
                good = response.status == 200 and (
                    body == expected if kind == "upload" else len(body) == expected
                )
            except (OSError, http.client.HTTPException):
                good = False
            finally:
                connection.close()
            with self._lock:
                if good:
                    self.ok += 1
                else:
                    self.failed += 1


def _rss(pid: int) -> int:
    """Return the RSS of ``pid``, in bytes."""
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert match is not None
    return int(match[1]) * 1024


class FrontendRestartTests(SynchronousTestCase):
    """The backend through an nginx reload and restart under load."""

    def setUp(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="scgi-fr-"))
        self.addCleanup(shutil.rmtree, self.directory, True)
        (self.directory / "scgi_failover_app.py").write_text(APPLICATION)
        self.backend = UpstreamBackend("a", self.directory)
        self.addCleanup(self.backend.kill)

    def stats(self) -> dict[str, int]:
        """Ask the backend, over SCGI, how many requests started and ended."""
        with contextlib.closing(socket.socket(socket.AF_UNIX)) as client:
            client.settimeout(DEADLINE)
            client.connect(str(self.backend.socket))
            client.sendall(buildRequest(nginxVariables(b"/stats")))
            data, _ = readToEnd(client)
        return dict(json.loads(parseResponse(data).body))

    def settled(self) -> dict[str, int]:
        """Wait until every request the backend saw has ended; return the counts."""
        deadline = time.monotonic() + DEADLINE
        while True:
            counts = self.stats()
            if counts["started"] == counts["finished"]:
                return counts
            if time.monotonic() > deadline:
                raise AssertionError(f"requests never ended: {counts}")
            time.sleep(0.1)

    def test_reloadAndRestart(self) -> None:
        """Reload and restart nginx mid-request: every request ends, no traceback.

        The backend's memory returns to within 16 MiB of its level after warm-up.
        """
        backend = self.backend
        backend.start()
        assert backend.process is not None
        pid = backend.process.pid
        nginx = UpstreamNginx(self.directory, [backend, backend])
        self.addCleanup(lambda: nginx.stop())  # noqa: PLW0108 - rebound later
        traffic = _Traffic()
        traffic.port = nginx.port
        traffic.start()
        try:
            deadline = time.monotonic() + DEADLINE
            while traffic.ok < 12 and time.monotonic() < deadline:
                time.sleep(0.1)
            self.assertGreaterEqual(traffic.ok, 12, "no warm-up")
            baseline = _rss(pid)
            # nginx -s reload: the old workers finish their requests.
            nginx.process.send_signal(signal.SIGHUP)
            time.sleep(1.5)
            # A restart: SIGTERM cuts every connection; then a new nginx.
            nginx.stop()
            time.sleep(0.3)
            nginx = UpstreamNginx(self.directory, [backend, backend])
            traffic.port = nginx.port
            okAtRestart = traffic.ok
            deadline = time.monotonic() + DEADLINE
            while traffic.ok < okAtRestart + 12 and time.monotonic() < deadline:
                time.sleep(0.1)
            self.assertGreaterEqual(traffic.ok, okAtRestart + 12, "none served after")
        finally:
            traffic.stop()
        counts = self.settled()
        time.sleep(0.5)
        rss = _rss(pid)
        status = backend.stop()
        log = backend.output()
        message = (
            f"counts {counts}, rss {baseline} -> {rss}\n"
            f"== nginx\n{tail(self.directory / 'error.log')}\n{log[-4000:]}"
        )
        self.assertGreater(counts["failed"], 0, "no request was cut: " + message)
        self.assertNotIn("Traceback", log, message)
        self.assertNotIn("Unhandled", log, message)
        self.assertIn(status, (0, -signal.SIGTERM), message)
        self.assertLess(rss - baseline, 16 * 1024 * 1024, message)
