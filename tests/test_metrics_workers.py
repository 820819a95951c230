"""Tests for ``twistd scgi --metrics``: one process, and ``--workers`` summed.

The real command runs as a subprocess (``tests.support.processes``); the test
scrapes ``/metrics`` over HTTP as Prometheus would and reads the exposition with
``prometheus_client``'s parser.  Workers report their counts every half second, so
each check waits (at most the harness's deadline) until the scrape shows exactly the
expected value; a wrong value never becomes right by waiting longer.
"""

from __future__ import annotations

import os
import signal
import socket
import urllib.request
from collections.abc import Callable

from twisted.trial.unittest import SynchronousTestCase

from .support.frontends import freePort
from .support.metrics import SampleKey, Samples, parseSamples
from .support.processes import (
    STOPPED,
    TWISTD,
    Server,
    Supervised,
    request,
    temporaryDirectory,
    waitUntil,
)

GET_2XX = ("scgi_requests_total", (("method", "GET"), ("status", "2xx")))


def scrape(port: int) -> Samples:
    """Scrape ``http://127.0.0.1:PORT/metrics``; return every sample."""
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode("utf-8")
    return parseSamples(text)


def waitForSample(port: int, key: SampleKey, expected: float) -> Samples:
    """Scrape until sample ``key`` equals ``expected``; return that scrape.

    :raises AssertionError: if it never does within the deadline (the last value
        seen is in the message).
    """
    seen: list[Samples] = []

    def equal() -> bool:
        seen[:] = [scrape(port)]
        return seen[0].get(key) == expected

    waitUntil(equal, f"{key} == {expected}", lambda: f"last: {seen[0].get(key)}")
    return seen[0]


def get(supervised: Supervised, count: int) -> Callable[[], None]:
    """Return a function that sends ``count`` GETs that must answer 200."""

    def send() -> None:
        for _ in range(count):
            assert supervised.get("/").status == b"200 OK"

    return send


class WorkerMetricsTests(SynchronousTestCase):
    """With ``--workers 2``, the supervisor serves the sum of its workers' counts."""

    def test_summedAcrossRestartAndReload(self) -> None:
        """Counts add up across workers, a worker's death, and a reload.

        Twelve requests, spread over both workers, count twelve.  After a worker is
        killed (once its counts reached the supervisor) the twelve stay, and the
        restart is counted; after a reload the old workers' counts stay too.
        Open connections and requests in flight come back to zero.
        """
        port = freePort()
        supervised = Supervised(self, "--metrics", f"tcp:{port}:interface=127.0.0.1")
        samples = scrape(port)
        self.assertEqual(samples["scgi_worker_restarts_total", ()], 0)
        self.assertEqual(samples["scgi_worker_reloads_total", ()], 0)
        pids = supervised.servingPids()  # two requests, one on each worker
        self.assertEqual(len(pids), 2)
        get(supervised, 10)()
        samples = waitForSample(port, GET_2XX, 12)
        self.assertEqual(samples["scgi_connections_open", ()], 0)
        self.assertEqual(samples["scgi_requests_in_flight", ()], 0)
        self.assertEqual(samples["scgi_request_duration_seconds_count", ()], 12)
        victim = supervised.started(1)[1]
        os.kill(victim, signal.SIGKILL)
        supervised.waitForLog(rf"Worker 1 \(pid {victim}\) exited unexpectedly")
        samples = waitForSample(port, ("scgi_worker_restarts_total", ()), 1)
        self.assertEqual(samples[GET_2XX], 12)
        supervised.waitForLog(r"Worker 1 \(pid \d+\) ready", count=2)
        get(supervised, 3)()
        waitForSample(port, GET_2XX, 15)
        os.kill(supervised.pid, signal.SIGHUP)
        supervised.waitForLog(r"Reloaded: generation 2 serves")
        supervised.waitForLog(r"\(pid \d+, generation 1\) stopped", count=2)
        samples = waitForSample(port, ("scgi_worker_reloads_total", ()), 1)
        self.assertEqual(samples[GET_2XX], 15)
        self.assertEqual(samples["scgi_connections_open", ()], 0)
        self.assertIn(supervised.server.stop(), STOPPED, supervised.output())

    def test_refusalsAndOneProcess(self) -> None:
        """A worker's refusal reaches the sum; the worker's own port serves no page.

        The metrics port is the supervisor's: the workers never listen on it (a
        second listener would fail to bind and the worker would not start).
        """
        port = freePort()
        supervised = Supervised(self, "--metrics", f"tcp:{port}:interface=127.0.0.1")
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(str(supervised.socketPath))
            client.sendall(b"01:x,")
            answer = client.recv(100)
        self.assertTrue(answer.startswith(b"Status: 400"), answer)
        waitForSample(port, ("scgi_refusals_total", (("reason", "400"),)), 1)
        self.assertNotIn("Traceback", supervised.output())
        self.assertIn(supervised.server.stop(), STOPPED, supervised.output())


class SingleProcessMetricsTests(SynchronousTestCase):
    """``twistd -n scgi --metrics`` in one process: the site's own counts."""

    def test_countsAndNoWorkerFamilies(self) -> None:
        """A request is counted at once; there are no worker counters to show.

        The built-in page answers every ``GET`` with 200.
        """
        port = freePort()
        directory = temporaryDirectory(self)
        socketPath = directory / "scgi.sock"
        server = Server(
            self,
            directory,
            [
                *TWISTD,
                "-n",
                "--pidfile=",
                "scgi",
                "--listen",
                f"unix:{socketPath}",
                "--metrics",
                f"tcp:{port}:interface=127.0.0.1",
            ],
        )
        server.waitFor(r"Serving .* over SCGI on")
        server.waitFor(rf"Site starting on {port}")
        address = (socket.AF_UNIX, str(socketPath))
        self.assertEqual(request(address, b"/").status, b"200 OK")
        self.assertEqual(request(address, b"/other").status, b"200 OK")
        samples = scrape(port)
        self.assertEqual(samples[GET_2XX], 2)
        self.assertEqual(samples["scgi_connections_open", ()], 0)
        self.assertNotIn(("scgi_worker_restarts_total", ()), samples)
        self.assertIn(server.stop(), STOPPED, server.output())
