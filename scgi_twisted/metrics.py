"""Prometheus metrics for an SCGI site (the ``scgi-twisted[metrics]`` extra).

::

    from scgi_twisted.metrics import serveMetrics

    site = SCGISite(root)
    serveMetrics(site, serverFromString(reactor, "tcp:9100:interface=127.0.0.1"))

serves ``/metrics`` over plain HTTP (twisted.web's own server) on its own endpoint,
never on the SCGI listener.  ``twistd scgi --metrics ENDPOINT`` does the same.  The
site counts its work in plain integers (:class:`scgi_twisted._metrics.Metrics`);
``prometheus_client`` reads them only when ``/metrics`` is scraped.  The metrics and
their labels are listed in the documentation's metrics page.

``prometheus_client`` is imported only when metrics are enabled, so that a server
without them neither needs the extra nor imports it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IListeningPort, IStreamServerEndpoint
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from ._metrics import DURATION_BUCKETS, Metrics, cumulative

if TYPE_CHECKING:
    from prometheus_client.core import Metric
    from prometheus_client.registry import CollectorRegistry

__all__ = [
    "Metrics",
    "MetricsPage",
    "SCGICollector",
    "collectorRegistry",
    "enableMetrics",
    "metricsSite",
    "serveMetrics",
]

_REFUSAL_REASONS = ("400", "408", "413", "431", "not_allowed", "connection_limit")
"""Refusal reasons exposed even before they happen, so that rates start at zero."""


def _prometheus() -> Any:
    """Import ``prometheus_client`` (the optional extra), once metrics are enabled.

    :raises ImportError: if the ``metrics`` extra is not installed.
    """
    import prometheus_client.core  # noqa: PLC0415 - the optional "metrics" extra
    import prometheus_client.exposition  # noqa: PLC0415

    return prometheus_client


class SCGICollector:
    """A ``prometheus_client`` collector of an SCGI site's counts.

    :param source: returns the snapshot to expose (``Metrics.snapshot``, or a
        supervisor's ``Totals.snapshot``).
    :param workers: whether the worker counters (restarts, reloads) apply.
    """

    def __init__(
        self, source: Callable[[], dict[str, Any]], workers: bool = False
    ) -> None:
        """Expose what ``source`` returns."""
        self._source = source
        self._workers = workers

    def collect(self) -> Iterator[Metric]:
        """Yield every family, from one snapshot."""
        core = _prometheus().core
        CounterMetricFamily = core.CounterMetricFamily
        GaugeMetricFamily = core.GaugeMetricFamily
        snap = self._source()
        requests = CounterMetricFamily(
            "scgi_requests",
            "Requests answered by the application, by method and status class.",
            labels=["method", "status"],
        )
        for method, status, count in snap["requests"]:
            requests.add_metric([method, status], count)
        yield requests
        buckets = cumulative(snap["buckets"])
        bounds = [f"{bound:g}" for bound in DURATION_BUCKETS] + ["+Inf"]
        yield core.HistogramMetricFamily(
            "scgi_request_duration_seconds",
            "From the complete header block to the end of the response.",
            buckets=list(zip(bounds, buckets, strict=True)),
            sum_value=snap["duration_sum"],
        )
        yield GaugeMetricFamily(
            "scgi_requests_in_flight",
            "Requests whose header block is in and whose response is not finished.",
            value=snap["in_flight"],
        )
        yield GaugeMetricFamily(
            "scgi_connections_open",
            "SCGI connections open now.",
            value=snap["connections"],
        )
        yield CounterMetricFamily(
            "scgi_request_body_bytes",
            "Request body bytes received.",
            value=snap["request_body_bytes"],
        )
        yield CounterMetricFamily(
            "scgi_response_body_bytes",
            "Response body bytes the application wrote.",
            value=snap["response_body_bytes"],
        )
        refusals = CounterMetricFamily(
            "scgi_refusals",
            "Requests answered by the server itself, or connections refused, by "
            "reason.",
            labels=["reason"],
        )
        counted = snap["refusals"]
        for reason in sorted(set(_REFUSAL_REASONS) | set(counted)):
            refusals.add_metric([reason], counted.get(reason, 0))
        yield refusals
        yield CounterMetricFamily(
            "scgi_clients_gone",
            "Requests whose client went away before the response was complete.",
            value=snap["clients_gone"],
        )
        if self._workers:
            yield CounterMetricFamily(
                "scgi_worker_restarts",
                "Workers restarted after they died.",
                value=snap["worker_restarts"],
            )
            yield CounterMetricFamily(
                "scgi_worker_reloads",
                "Graceful reloads completed (SIGHUP).",
                value=snap["worker_reloads"],
            )


def collectorRegistry(
    source: Callable[[], dict[str, Any]], workers: bool = False
) -> Any:
    """Return a new ``prometheus_client`` registry with one :class:`SCGICollector`.

    :param source: returns the snapshot to expose.
    :param workers: whether the worker counters apply.
    """
    registry = _prometheus().CollectorRegistry()
    registry.register(SCGICollector(source, workers))
    return registry


def enableMetrics(site: Any, registry: CollectorRegistry | None = None) -> Any:
    """Make ``site`` count its work, and register its collector.

    :param site: an :class:`~scgi_twisted.SCGISite`.
    :param registry: where to register (default: a new registry of its own, so that
        the process's default collectors are not mixed in; pass
        ``prometheus_client.REGISTRY`` to add them).
    :returns: the registry.
    """
    client = _prometheus()
    metrics = site.metrics
    if metrics is None:
        metrics = site.metrics = Metrics(site.reactor.seconds)
    if registry is None:
        registry = client.CollectorRegistry()
    registry.register(SCGICollector(metrics.snapshot))
    return registry


class MetricsPage(Resource):
    """``/metrics``: the registry in Prometheus's text format (or OpenMetrics).

    Rendered in the reactor thread, unlike ``prometheus_client``'s own Twisted
    resource (a WSGI application in a thread): the counts are read where they are
    written.
    """

    isLeaf = True

    def __init__(self, registry: CollectorRegistry) -> None:
        """Expose ``registry``."""
        super().__init__()  # type: ignore[no-untyped-call]
        self._registry = registry

    def render_GET(self, request: Request) -> bytes:
        """Return the exposition, in the format the scraper's ``Accept`` asks for."""
        exposition = _prometheus().exposition
        accept = request.getHeader(b"accept")
        encoder, contentType = exposition.choose_encoder(
            accept.decode("latin-1") if accept else ""
        )
        request.setHeader(  # type: ignore[no-untyped-call]
            b"Content-Type", contentType.encode("ascii")
        )
        return encoder(self._registry)  # type: ignore[no-any-return]


def metricsSite(registry: CollectorRegistry) -> Site:
    """Return a twisted.web ``Site`` serving ``registry`` at ``/metrics``."""
    root = Resource()  # type: ignore[no-untyped-call]
    root.putChild(b"metrics", MetricsPage(registry))
    site = Site(root)  # type: ignore[no-untyped-call]
    site.log = lambda request: None  # type: ignore[method-assign]
    return site


def serveMetrics(
    site: Any, endpoint: IStreamServerEndpoint
) -> Deferred[IListeningPort]:
    """Count ``site``'s work and serve it at ``/metrics`` on ``endpoint`` (HTTP).

    :param site: an :class:`~scgi_twisted.SCGISite`.
    :param endpoint: where to listen, e.g.
        ``serverFromString(reactor, "tcp:9100:interface=127.0.0.1")``.
    :returns: what ``endpoint.listen`` returns.
    """
    return endpoint.listen(metricsSite(enableMetrics(site)))
