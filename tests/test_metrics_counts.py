"""Tests for ``scgi_twisted._metrics``: the counts, their labels, and their sums.

The exposition over HTTP and the counts a real site keeps under traffic are in
``test_metrics.py``; these pin the arithmetic on a ``Clock``.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from scgi_twisted import _metrics
from scgi_twisted._metrics import (
    DURATION_BUCKETS,
    Metrics,
    Totals,
    cumulative,
    methodLabel,
    statusLabel,
)


class LabelTests(SynchronousTestCase):
    """Labels have few values: never the path, never an arbitrary method."""

    def test_standardMethods(self) -> None:
        """The standard methods are their own label; anything else is ``other``."""
        self.assertEqual(methodLabel(b"GET"), "GET")
        self.assertEqual(methodLabel(b"PATCH"), "PATCH")
        self.assertEqual(methodLabel(b"get"), "other")
        self.assertEqual(methodLabel(b"PROPFIND"), "other")

    def test_statusClasses(self) -> None:
        """A status is counted by its class; an impossible one is ``other``."""
        self.assertEqual(
            [statusLabel(c) for c in (101, 200, 302, 404, 599)],
            ["1xx", "2xx", "3xx", "4xx", "5xx"],
        )
        self.assertEqual(statusLabel(99), "other")
        self.assertEqual(statusLabel(600), "other")


class MetricsTests(SynchronousTestCase):
    """A :class:`Metrics` counts what it is told, timing on its clock."""

    def setUp(self) -> None:
        """A fresh count on a ``Clock``."""
        self.clock = Clock()
        self.metrics = Metrics(self.clock.seconds)

    def test_requestTimedIntoItsBucket(self) -> None:
        """A request's duration lands in the first bucket whose bound holds it."""
        started = self.metrics.requestStarted()
        self.assertEqual(self.metrics.in_flight, 1)
        self.clock.advance(0.02)
        self.metrics.requestFinished(started, b"POST", 201, received=7, sent=11)
        snap = self.metrics.snapshot()
        self.assertEqual(snap["in_flight"], 0)
        self.assertEqual(snap["requests"], [["POST", "2xx", 1]])
        index = DURATION_BUCKETS.index(0.025)
        self.assertEqual(snap["buckets"][index], 1)
        self.assertEqual(sum(snap["buckets"]), 1)
        self.assertAlmostEqual(snap["duration_sum"], 0.02)
        self.assertEqual(snap["request_body_bytes"], 7)
        self.assertEqual(snap["response_body_bytes"], 11)

    def test_boundaryIsInclusive(self) -> None:
        """A duration equal to a bound counts in that bucket (``le``, not ``lt``)."""
        started = self.metrics.requestStarted()
        self.clock.advance(0.5)
        self.metrics.requestFinished(started, b"GET", 200, 0, 0)
        self.assertEqual(self.metrics.buckets[DURATION_BUCKETS.index(0.5)], 1)

    def test_slowRequestInInf(self) -> None:
        """A duration past the last bound counts in ``+Inf``."""
        started = self.metrics.requestStarted()
        self.clock.advance(60)
        self.metrics.requestFinished(started, b"GET", 200, 0, 0)
        self.assertEqual(self.metrics.buckets[-1], 1)

    def test_abandoned(self) -> None:
        """An abandoned request leaves the in-flight count; a client gone is counted.

        A request the server ended (a timeout, a shutdown) is not a client gone.
        """
        self.metrics.requestStarted()
        self.metrics.requestAbandoned(received=3, sent=0, gone=True)
        self.assertEqual(self.metrics.in_flight, 0)
        self.assertEqual(self.metrics.clients_gone, 1)
        self.metrics.requestStarted()
        self.metrics.requestAbandoned(received=0, sent=0, gone=False)
        self.assertEqual(self.metrics.in_flight, 0)
        self.assertEqual(self.metrics.clients_gone, 1)
        self.assertEqual(self.metrics.request_body_bytes, 3)
        self.assertEqual(self.metrics.requests, {})

    def test_refusals(self) -> None:
        """Refusals are counted by reason."""
        for reason in ("400", "413", "400", "not_allowed"):
            self.metrics.refused(reason)
        self.assertEqual(
            self.metrics.snapshot()["refusals"],
            {"400": 2, "413": 1, "not_allowed": 1},
        )

    def test_labelCacheBounded(self) -> None:
        """Whatever codes an application sets, the label cache stays bounded.

        Codes outside 100-599 and non-standard methods are counted (as ``other``)
        but never cached, so an application that sets status codes from its input
        cannot grow the process's memory through the metrics.
        """
        before = set(_metrics._KEYS)
        for code in range(1000, 3000):
            started = self.metrics.requestStarted()
            self.metrics.requestFinished(started, b"GET", code, 0, 0)
            started = self.metrics.requestStarted()
            self.metrics.requestFinished(started, b"BREW", 200 + code % 100, 0, 0)
        self.assertEqual(set(_metrics._KEYS), before)
        self.assertEqual(
            self.metrics.requests, {("GET", "other"): 2000, ("other", "2xx"): 2000}
        )
        started = self.metrics.requestStarted()
        self.metrics.requestFinished(started, b"GET", 599, 0, 0)
        self.assertIn((b"GET", 599), _metrics._KEYS)
        self.assertEqual(self.metrics.requests["GET", "5xx"], 1)

    def test_cumulative(self) -> None:
        """Per-bucket counts become Prometheus's cumulative ``le`` counts."""
        self.assertEqual(cumulative([1, 0, 2, 3]), [1, 1, 3, 6])


class TotalsTests(SynchronousTestCase):
    """A supervisor adds its workers' snapshots to its own counts."""

    def setUp(self) -> None:
        """A supervisor's count and two workers' counts."""
        clock = Clock()
        self.own = Metrics(clock.seconds)
        self.totals = Totals(self.own)
        self.workers = [Metrics(clock.seconds), Metrics(clock.seconds)]
        for worker in self.workers:
            worker.connections = 2
            worker.refused("408")
            worker.requestFinished(worker.requestStarted(), b"GET", 200, 1, 10)

    def test_sum(self) -> None:
        """Counters and gauges of live workers add up; the supervisor's too."""
        self.own.worker_restarts = 1
        for pid, worker in enumerate(self.workers):
            self.totals.update(pid, worker.snapshot())
        snap = self.totals.snapshot()
        self.assertEqual(snap["requests"], [["GET", "2xx", 2]])
        self.assertEqual(snap["connections"], 4)
        self.assertEqual(snap["refusals"], {"408": 2})
        self.assertEqual(snap["response_body_bytes"], 20)
        self.assertEqual(snap["worker_restarts"], 1)
        self.assertEqual(sum(snap["buckets"]), 2)

    def test_latestSnapshotReplaces(self) -> None:
        """A worker's new snapshot replaces its old one; it is not added to it."""
        worker = self.workers[0]
        self.totals.update(1, worker.snapshot())
        worker.requestFinished(worker.requestStarted(), b"GET", 500, 0, 0)
        self.totals.update(1, worker.snapshot())
        self.assertEqual(
            self.totals.snapshot()["requests"],
            [["GET", "2xx", 1], ["GET", "5xx", 1]],
        )

    def test_endedWorkerKeepsCounters(self) -> None:
        """When a worker ends its counters stay in the sum, its gauges leave it."""
        self.totals.update(1, self.workers[0].snapshot())
        self.totals.update(2, self.workers[1].snapshot())
        self.totals.ended(1)
        snap = self.totals.snapshot()
        self.assertEqual(snap["requests"], [["GET", "2xx", 2]])
        self.assertEqual(snap["connections"], 2)
        self.totals.ended(2)
        self.totals.ended(3)  # never reported: nothing to keep
        snap = self.totals.snapshot()
        self.assertEqual(snap["requests"], [["GET", "2xx", 2]])
        self.assertEqual(snap["connections"], 0)
        self.assertEqual(snap["refusals"], {"408": 2})
