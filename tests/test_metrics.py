"""Tests for ``scgi_twisted.metrics``: a site's counts, scraped after known traffic.

Requests go through the real channel in memory (:class:`SCGITestClient`), or as raw
bytes on a ``StringTransport`` where a test needs input no client would send; time
is a ``Clock``.  Each test scrapes ``/metrics`` as Prometheus would (the page is
rendered by twisted.web's own ``Site``, over an in-memory HTTP connection) and reads
the exposition with ``prometheus_client``'s own parser, then checks each value
exactly.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from scgi_twisted import SCGISite
from scgi_twisted._options import Options
from scgi_twisted.metrics import enableMetrics, metricsSite
from scgi_twisted.testing import SCGITestClient

from .support.metrics import Samples, parseSamples


class _Hello(Resource):
    """``GET`` answers ``hello``; ``POST`` answers 201 with the body's length."""

    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        """Answer ``hello``."""
        return b"hello"

    def render_POST(self, request: Request) -> bytes:
        """Answer 201 with the length of the body."""
        request.setResponseCode(201)
        content = request.content
        assert content is not None
        return b"%d" % len(content.read())


class _Slow(Resource):
    """Answers after 0.2 s of the site's clock."""

    isLeaf = True

    def __init__(self, clock: Clock) -> None:
        """Answer on ``clock``."""
        super().__init__()
        self.clock = clock

    def render_GET(self, request: Request) -> object:
        """Finish later."""

        def finish() -> None:
            if not request.finished and not request._disconnected:
                request.write(b"slow")
                request.finish()

        self.clock.callLater(0.2, finish)
        return NOT_DONE_YET


def _root(clock: Clock) -> Resource:
    """Return a tree with ``/hello`` and ``/slow``; anything else is 404."""
    root = Resource()
    root.putChild(b"hello", _Hello())
    root.putChild(b"slow", _Slow(clock))
    return root


def scrape(registry: Any) -> Samples:
    """Scrape ``/metrics`` of ``metricsSite(registry)`` over in-memory HTTP.

    :returns: every sample, by name and sorted labels.
    """
    site = metricsSite(registry)
    channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 9100))
    transport = StringTransport()
    channel.makeConnection(transport)
    channel.dataReceived(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
    head, _, body = transport.value().partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200 "), head
    assert b"content-type: text/plain; version=0.0.4; charset=utf-8" in head.lower()
    return parseSamples(body.decode("utf-8"))


def value(samples: Samples, name: str, **labels: str) -> float:
    """Return one sample's value; a missing sample fails the test."""
    return samples[name, tuple(sorted(labels.items()))]


class ScrapeTests(SynchronousTestCase):
    """Known traffic, then one scrape: every value as the traffic makes it."""

    def setUp(self) -> None:
        """A site with metrics, behind a test client, on a ``Clock``."""
        self.clock = Clock()
        self.site = SCGISite(
            _root(self.clock),
            reactor=self.clock,
            max_body_size=100,
            timeout=30,
            allow=["127.0.0.1", "10.0.0.0/8"],
        )
        self.registry = enableMetrics(self.site)
        self.client = SCGITestClient(self.site, clock=self.clock)

    def raw(self, data: bytes, peer: str = "127.0.0.1") -> StringTransport:
        """Send raw bytes on a new connection from ``peer``; return its transport."""
        channel = self.site.buildProtocol(IPv4Address("TCP", peer, 40000))
        assert channel is not None
        transport = StringTransport(peerAddress=IPv4Address("TCP", peer, 40000))
        channel.makeConnection(transport)
        if data:
            channel.dataReceived(data)
        return transport

    def test_nothingYet(self) -> None:
        """Before any traffic every family is there, at zero."""
        samples = scrape(self.registry)
        self.assertEqual(value(samples, "scgi_requests_in_flight"), 0)
        self.assertEqual(value(samples, "scgi_connections_open"), 0)
        self.assertEqual(value(samples, "scgi_request_duration_seconds_count"), 0)
        self.assertEqual(value(samples, "scgi_refusals_total", reason="413"), 0)
        self.assertEqual(value(samples, "scgi_clients_gone_total"), 0)
        self.assertNotIn(
            ("scgi_worker_restarts_total", ()), samples, "single process: no workers"
        )

    def test_answeredRequests(self) -> None:
        """Requests are counted by method and status class, with their bytes."""
        for _ in range(3):
            self.assertEqual(self.client.get("/hello").status, 200)
        self.assertEqual(self.client.post("/hello", body=b"12345").status, 201)
        self.assertEqual(self.client.get("/missing").status, 404)
        samples = scrape(self.registry)
        self.assertEqual(
            value(samples, "scgi_requests_total", method="GET", status="2xx"), 3
        )
        self.assertEqual(
            value(samples, "scgi_requests_total", method="POST", status="2xx"), 1
        )
        self.assertEqual(
            value(samples, "scgi_requests_total", method="GET", status="4xx"), 1
        )
        self.assertEqual(value(samples, "scgi_request_body_bytes_total"), 5)
        notFound = len(self.client.get("/missing").body)
        self.assertEqual(
            value(scrape(self.registry), "scgi_response_body_bytes_total"),
            3 * 5 + 1 + 2 * notFound,
        )
        self.assertEqual(value(samples, "scgi_requests_in_flight"), 0)
        self.assertEqual(value(samples, "scgi_connections_open"), 0)

    def test_durationHistogram(self) -> None:
        """A request's duration runs from its header block to its end, on the clock."""
        pending = self.client.start("GET", "/slow")
        samples = scrape(self.registry)
        self.assertEqual(value(samples, "scgi_requests_in_flight"), 1)
        self.assertEqual(value(samples, "scgi_connections_open"), 1)
        self.clock.advance(0.2)
        self.assertEqual(pending.result().body, b"slow")
        self.client.get("/hello")  # no time passes: 0 s
        samples = scrape(self.registry)
        self.assertEqual(value(samples, "scgi_requests_in_flight"), 0)
        self.assertEqual(value(samples, "scgi_request_duration_seconds_count"), 2)
        self.assertAlmostEqual(value(samples, "scgi_request_duration_seconds_sum"), 0.2)
        bucket = "scgi_request_duration_seconds_bucket"
        self.assertEqual(value(samples, bucket, le="0.001"), 1)
        self.assertEqual(value(samples, bucket, le="0.1"), 1)
        self.assertEqual(value(samples, bucket, le="0.25"), 2)
        self.assertEqual(value(samples, bucket, le="+Inf"), 2)

    def test_clientGone(self) -> None:
        """A frontend that goes away before the answer: a client gone, not a request."""
        pending = self.client.start("GET", "/slow")
        pending.disconnect()
        self.clock.advance(1)
        samples = scrape(self.registry)
        self.assertEqual(value(samples, "scgi_clients_gone_total"), 1)
        self.assertEqual(value(samples, "scgi_requests_in_flight"), 0)
        self.assertEqual(value(samples, "scgi_connections_open"), 0)
        self.assertNotIn(
            ("scgi_requests_total", (("method", "GET"), ("status", "2xx"))), samples
        )

    def test_refusals(self) -> None:
        """Each kind of refusal is counted under its reason."""
        self.raw(b"01:x,")  # a length with a leading zero: 400
        self.raw(b"GET / HTTP/1.1\r\n")  # HTTP on the SCGI port: 400, in HTTP
        big = b"CONTENT_LENGTH\x00500\x00SCGI\x001\x00REQUEST_METHOD\x00POST\x00"
        self.raw(b"%d:%s," % (len(big), big))  # over max_body_size: 413
        self.raw(b"70:CONTENT_LEN")  # stalls: 408 once the timeout passes
        self.clock.advance(30)
        self.raw(b"", peer="192.0.2.1")  # not in allow=
        samples = scrape(self.registry)
        self.assertEqual(value(samples, "scgi_refusals_total", reason="400"), 2)
        self.assertEqual(value(samples, "scgi_refusals_total", reason="413"), 1)
        self.assertEqual(value(samples, "scgi_refusals_total", reason="408"), 1)
        self.assertEqual(value(samples, "scgi_refusals_total", reason="431"), 0)
        self.assertEqual(value(samples, "scgi_refusals_total", reason="not_allowed"), 1)
        self.assertEqual(value(samples, "scgi_requests_in_flight"), 0)

    def test_headersTooLarge(self) -> None:
        """A header block over the limit is a 431 refusal."""
        self.raw(b"99999:")
        samples = scrape(self.registry)
        self.assertEqual(value(samples, "scgi_refusals_total", reason="431"), 1)


class ConnectionLimitTests(SynchronousTestCase):
    """Connections that wait for a slot are counted as such."""

    def test_waited(self) -> None:
        """Past ``max_connections`` a connection waits: a ``connection_limit``."""
        clock = Clock()
        site = SCGISite(Resource(), reactor=clock, max_connections=1)
        registry = enableMetrics(site)
        for port in (1, 2):
            channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", port))
            assert channel is not None
            channel.makeConnection(StringTransport())
        samples = scrape(registry)
        self.assertEqual(
            value(samples, "scgi_refusals_total", reason="connection_limit"), 1
        )
        self.assertEqual(value(samples, "scgi_connections_open"), 2)


class OptionalTests(SynchronousTestCase):
    """Without metrics nothing imports ``prometheus_client``."""

    def test_notImported(self) -> None:
        """Serving a request without metrics leaves ``prometheus_client`` unimported."""
        code = (
            "import sys\n"
            "from twisted.web.resource import Resource\n"
            "from scgi_twisted.testing import SCGITestClient\n"
            "import scgi_twisted, scgi_twisted.tap, scgi_twisted.metrics\n"
            "assert SCGITestClient(Resource()).get('/').status == 404\n"
            "print('prometheus_client' in sys.modules)\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        self.assertEqual(result.stdout.strip(), "False", result.stderr)

    def test_siteWithoutMetrics(self) -> None:
        """A site without metrics counts nothing and serves as before."""
        site = SCGISite(_root(Clock()))
        self.assertIsNone(site.metrics)
        self.assertEqual(SCGITestClient(site).get("/hello").body, b"hello")
        self.assertIsNone(site.metrics)

    def test_plainSiteServesMetricsOnly(self) -> None:
        """The metrics site answers 404 off ``/metrics``: it serves nothing else."""
        site = metricsSite(enableMetrics(SCGISite(Resource())))
        self.assertIsInstance(site, Site)
        channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 9100))
        transport = StringTransport()
        channel.makeConnection(transport)
        channel.dataReceived(b"GET / HTTP/1.0\r\n\r\n")
        self.assertTrue(transport.value().startswith(b"HTTP/1.0 404 "))


class DashboardTests(SynchronousTestCase):
    """The Grafana dashboard and the scrape configuration in ``docs/metrics/``."""

    def test_dashboardNamesExposedMetrics(self) -> None:
        """Every metric a dashboard query names is one a site exposes.

        The dashboard has the four panels the metrics page describes.
        """
        docs = Path(__file__).resolve().parent.parent / "docs" / "metrics"
        dashboard = json.loads((docs / "grafana-dashboard.json").read_text("utf-8"))
        titles = [panel["title"] for panel in dashboard["panels"]]
        self.assertEqual(len(titles), 4, titles)
        for word in ("rate", "Error", "Latency", "flight"):
            self.assertTrue(any(word in title for title in titles), (word, titles))
        site = SCGISite(Resource())
        registry = enableMetrics(site)
        SCGITestClient(site).get("/")  # a labelled family shows once it counted
        exposed = {name for name, _ in scrape(registry)}
        named = set()
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                named.update(re.findall(r"\bscgi_[a-z_]+", target["expr"]))
        self.assertTrue(named)
        self.assertLessEqual(named, exposed)
        config = (docs / "prometheus.yml").read_text("utf-8")
        self.assertIn("metrics_path: /metrics", config)


class OptionTests(SynchronousTestCase):
    """``--metrics`` on the command line."""

    def test_endpointKept(self) -> None:
        """The endpoint is kept as given; without the option there are no metrics."""
        config = Options()
        config.parseOptions(["--metrics", "tcp:9100:interface=127.0.0.1"])
        self.assertEqual(config["metrics"], "tcp:9100:interface=127.0.0.1")
        config = Options()
        config.parseOptions([])
        self.assertIsNone(config["metrics"])

    def test_extraMissing(self) -> None:
        """Without ``prometheus_client`` the option says which extra to install."""
        self.patch(importlib.util, "find_spec", lambda name: None)
        with self.assertRaises(UsageError) as raised:
            Options().parseOptions(["--metrics", "tcp:9100"])
        self.assertIn("pip install 'scgi-twisted[metrics]'", str(raised.exception))
        self.assertTrue(str(raised.exception).startswith("--metrics: "))
