"""What a server counts about its work, in plain integers, for Prometheus to read.

A :class:`Metrics` is updated by the site and its channels on every connection and
request.  Its updates are additions to plain attributes and one bisection for the
duration histogram: no lock (a site lives in the reactor thread) and no
``prometheus_client`` call on the request path.  The exposition
(:mod:`scgi_twisted.metrics`) turns a :meth:`Metrics.snapshot` into Prometheus
families only when ``/metrics`` is scraped.

With ``--workers``, each worker keeps its own :class:`Metrics` and sends snapshots to
the supervisor, which adds them up with :class:`Totals`: counters of workers that
have ended are kept, so that no counter ever goes down.

This module imports neither Twisted nor ``prometheus_client``.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = [
    "DURATION_BUCKETS",
    "METHODS",
    "Metrics",
    "Totals",
    "methodLabel",
    "statusLabel",
]

METHODS = frozenset(
    (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS", b"TRACE")
)
"""The methods counted under their own name; any other is counted as ``other``."""

DURATION_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""The upper bounds of the request duration histogram, in seconds (``+Inf`` after)."""

_METHOD_LABELS = {method: method.decode("ascii") for method in METHODS}

_STATUS_LABELS = {digit: f"{digit}xx" for digit in range(1, 6)}

# The label pair of each (method, status) a request can end with, filled as they
# come.  Only standard methods and status codes 100-599 are kept, so that the cache
# stays bounded whatever methods clients send and whatever codes an application
# sets; any other pair is labelled afresh each time.
_KEYS: dict[tuple[bytes, int], tuple[str, str]] = {}


def methodLabel(method: bytes) -> str:
    """Return the ``method`` label of a request: its method if standard, else other.

    :param method: the request method, as the frontend sent it.
    """
    return _METHOD_LABELS.get(method, "other")


def statusLabel(code: int) -> str:
    """Return the ``status`` label of a response: its class, ``2xx`` to ``5xx``.

    :param code: the response's status code; one outside 100-599 is ``other``.
    """
    return _STATUS_LABELS.get(code // 100, "other")


_COUNTERS = (
    "request_body_bytes",
    "response_body_bytes",
    "clients_gone",
    "worker_restarts",
    "worker_reloads",
)
_GAUGES = ("connections", "in_flight")


class Metrics:
    """The counts of one process's SCGI site, updated as it works.

    :param clock: returns the time in seconds (the site's ``reactor.seconds``).

    :ivar requests: finished requests by ``(method, status class)`` label values.
    :ivar refusals: requests the server answered itself or connections it refused,
        by reason: the status it answered (``"400"``, ``"408"``, ``"413"``,
        ``"431"``, ``"500"``), ``"not_allowed"`` (a peer outside ``allow=``) or
        ``"connection_limit"`` (a connection that waited for a free slot).
    :ivar buckets: request durations counted per bucket of
        :data:`DURATION_BUCKETS` (not cumulative; the last one is ``+Inf``).
    :ivar duration_sum: the sum of the request durations, in seconds.
    :ivar connections: the connections open now.
    :ivar in_flight: the requests whose header block is in and whose response is
        not finished.
    :ivar request_body_bytes: request body bytes received.
    :ivar response_body_bytes: response body bytes the application wrote.
    :ivar clients_gone: requests whose client went away before the response was
        complete.
    :ivar worker_restarts: workers restarted after they died (the supervisor's).
    :ivar worker_reloads: reloads completed (the supervisor's).
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        """Start every count at zero."""
        self.clock = clock
        self.requests: dict[tuple[str, str], int] = {}
        self.refusals: dict[str, int] = {}
        self.buckets = [0] * (len(DURATION_BUCKETS) + 1)
        self.duration_sum = 0.0
        self.connections = 0
        self.in_flight = 0
        self.request_body_bytes = 0
        self.response_body_bytes = 0
        self.clients_gone = 0
        self.worker_restarts = 0
        self.worker_reloads = 0

    def requestStarted(self) -> float:
        """A request's header block is in: count it in flight.

        :returns: the time it started, to give back to :meth:`requestFinished`.
        """
        self.in_flight += 1
        return self.clock()

    def requestFinished(
        self, started: float, method: bytes, code: int, received: int, sent: int
    ) -> None:
        """A response is complete.

        :param started: what :meth:`requestStarted` returned.
        :param method: the request method.
        :param code: the response's status code.
        :param received: the request body's length, in bytes.
        :param sent: the response body's length as written, in bytes.
        """
        self.in_flight -= 1
        key = _KEYS.get((method, code))
        if key is None:
            key = (methodLabel(method), statusLabel(code))
            if method in METHODS and 100 <= code < 600:
                _KEYS[method, code] = key
        requests = self.requests
        requests[key] = requests.get(key, 0) + 1
        duration = self.clock() - started
        self.duration_sum += duration
        self.buckets[bisect.bisect_left(DURATION_BUCKETS, duration)] += 1
        self.request_body_bytes += received
        self.response_body_bytes += sent

    def requestAbandoned(self, received: int, sent: int, gone: bool) -> None:
        """A request ended before its response was complete.

        :param received: the request body bytes that had arrived.
        :param sent: the response body bytes written before it ended.
        :param gone: whether the client went away (rather than the server ending
            the request: a timeout, a shutdown).
        """
        self.in_flight -= 1
        self.clients_gone += gone
        self.request_body_bytes += received
        self.response_body_bytes += sent

    def refused(self, reason: str) -> None:
        """The server refused a request or a connection; see :attr:`refusals`."""
        self.refusals[reason] = self.refusals.get(reason, 0) + 1

    def snapshot(self) -> dict[str, Any]:
        """Return every count as plain JSON-able data (see :meth:`Totals.update`)."""
        return {
            "requests": [[m, s, n] for (m, s), n in sorted(self.requests.items())],
            "refusals": dict(sorted(self.refusals.items())),
            "buckets": list(self.buckets),
            "duration_sum": self.duration_sum,
            **{name: getattr(self, name) for name in _COUNTERS + _GAUGES},
        }


def _add(total: dict[str, Any], part: Mapping[str, Any], gauges: bool) -> None:
    """Add the counts of snapshot ``part`` to snapshot ``total`` in place."""
    requests = {(m, s): n for m, s, n in total["requests"]}
    for method, status, count in part["requests"]:
        requests[method, status] = requests.get((method, status), 0) + count
    total["requests"] = [[m, s, n] for (m, s), n in sorted(requests.items())]
    refusals = total["refusals"]
    for reason, count in part["refusals"].items():
        refusals[reason] = refusals.get(reason, 0) + count
    total["buckets"] = [
        a + b for a, b in zip(total["buckets"], part["buckets"], strict=True)
    ]
    total["duration_sum"] += part["duration_sum"]
    for name in _COUNTERS + (_GAUGES if gauges else ()):
        total[name] += part[name]


class Totals:
    """The counts of several processes added up: a supervisor's and its workers'.

    Each worker's latest snapshot replaces its previous one; when a worker ends, its
    counters move into the totals of the ended (its gauges do not: what it had open
    is closed).
    """

    def __init__(self, own: Metrics) -> None:
        """Add the workers' snapshots to ``own`` (the supervisor's counts)."""
        self.own = own
        self._live: dict[int, dict[str, Any]] = {}
        self._ended = Metrics(own.clock).snapshot()

    def update(self, worker: int, snapshot: Mapping[str, Any]) -> None:
        """Keep the latest snapshot of worker ``worker`` (its pid, say)."""
        self._live[worker] = dict(snapshot)

    def ended(self, worker: int) -> None:
        """Worker ``worker`` is gone: keep its counters, drop its gauges."""
        last = self._live.pop(worker, None)
        if last is not None:
            _add(self._ended, last, gauges=False)

    def snapshot(self) -> dict[str, Any]:
        """Return the sum of the supervisor's, the live workers' and the ended's."""
        total = self.own.snapshot()
        _add(total, self._ended, gauges=False)
        for snapshot in self._live.values():
            _add(total, snapshot, gauges=True)
        return total


def cumulative(buckets: Iterable[int]) -> list[int]:
    """Return per-bucket counts as Prometheus's cumulative ``le`` counts."""
    running = 0
    result = []
    for count in buckets:
        running += count
        result.append(running)
    return result
