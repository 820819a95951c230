"""How ``bench/run.py`` turns runs into the ratios its targets are judged on.

Strategy: the benchmark's own module is loaded from ``bench/`` and given cells of
made-up runs (no server is started): the figures are chosen so that the ratio of
the medians and the median of the per-run ratios differ, which shows which one a
target uses.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from .support.scgi import rawRequest

ROOT = Path(__file__).resolve().parent.parent


def loadBenchmark() -> ModuleType:
    """Import ``bench/run.py`` as a module of its own name."""
    spec = importlib.util.spec_from_file_location(
        "scgi_bench_run", ROOT / "bench" / "run.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


run = loadBenchmark()


def fakeRun(rps: float, cpu: float) -> dict[str, Any]:
    """Return a run of ``rps`` requests per second at ``cpu`` µs per request."""
    return {
        "rps": rps,
        "server_cpu_us_per_req": cpu,
        "latency_ms": {"p50": 1.0, "p99": 2.0},
        "server_core_busy": 0.5,
        "client_core_busy": 0.2,
        "server_core_other": 0.0,
        "server_core_steal": 0.0,
        "peak_rss_mib": 50.0,
    }


def cells(together: bool) -> dict[tuple[str, str, str], Any]:
    """Metrics off and on, three runs each, the machine's speed changing run by run.

    Within the runs, metrics on serves 0.96, 0.97 and 0.90 of metrics off (median
    0.96); the medians of each server's runs alone, 1800 and 2000, give 0.90.
    """
    off = run.Cell("hello-c32", "unix", "scgi_twisted", together=together)
    on = run.Cell("hello-c32", "unix", "scgi_twisted_metrics", together=together)
    for rps, share in ((3000, 0.96), (1000, 0.97), (2000, 0.90)):
        off.runs.append(fakeRun(rps, 300_000 / rps))
        on.runs.append(fakeRun(rps * share, 300_000 / rps / share))
    for cell in (off, on):
        run._summarize(cell)
    return {(c.scenario, c.transport, c.server): c for c in (off, on)}


class PairedTests(SynchronousTestCase):
    """``--together``: the ratios are medians of the ratios within each run."""

    def test_pairedMedian(self) -> None:
        """Runs pair up by position; the median of their ratios is returned.

        Both orientations follow :func:`ratio` and :func:`cpu_ratio`: the subject
        (here metrics on) over the reference for req/s, the reference's CPU per
        request over the subject's.
        """
        measured = cells(together=True)
        key = ("hello-c32", "unix", "scgi_twisted")
        rps, cpu, count = run.paired(measured, key, "scgi_twisted_metrics")
        self.assertAlmostEqual(rps, 0.96)
        self.assertAlmostEqual(cpu, 0.96)
        self.assertEqual(count, 3)

    def test_targetUsesPairs(self) -> None:
        """The metrics target passes on the paired ratio, and says both ratios."""
        measured = cells(together=True)
        [result] = [
            r
            for r in run.evaluate_targets(measured, ["unix"])
            if r["reference"] == "scgi_twisted"
        ]
        self.assertTrue(result["pass"])
        self.assertAlmostEqual(result["value"], 0.96)
        self.assertIn("0.96x, the median of 3 runs together", result["shown"])
        self.assertIn("ratio of the medians 0.90x", result["shown"])

    def test_separateRunsNotPaired(self) -> None:
        """Cells measured one after the other are compared by their medians."""
        measured = cells(together=False)
        key = ("hello-c32", "unix", "scgi_twisted")
        self.assertIsNone(run.paired(measured, key, "scgi_twisted_metrics"))
        [result] = [
            r
            for r in run.evaluate_targets(measured, ["unix"])
            if r["reference"] == "scgi_twisted"
        ]
        self.assertAlmostEqual(result["value"], 0.90)
        self.assertFalse(result["pass"])
        self.assertNotIn("together", result["shown"])


def loadFloor() -> ModuleType:
    """Import ``bench/servers/stock_request.py``, the floors' launcher."""
    servers = str(ROOT / "bench" / "servers")
    if servers not in sys.path:
        sys.path.insert(0, servers)
    return importlib.import_module("stock_request")


class FloorTests(SynchronousTestCase):
    """The floors answer the benchmark's requests as scgi_twisted does."""

    def answer(self, requestFactory: Any) -> bytes:
        """Serve ``GET /hello`` through the floor's channel; return the answer.

        The ``Date`` line is dropped: ``SCGIRequest`` reads the site's clock.
        """
        floor = loadFloor()
        twisted_tree = importlib.import_module("twisted_tree")
        from twisted.internet.task import Clock
        from twisted.internet.testing import StringTransport

        site = floor.StockRequestSite(twisted_tree.root(), reactor=Clock())
        if requestFactory is not None:
            site.requestFactory = requestFactory
        channel = site.buildProtocol(None)
        transport = StringTransport()
        channel.makeConnection(transport)
        channel.dataReceived(
            rawRequest(
                [
                    (b"CONTENT_LENGTH", b"0"),
                    (b"SCGI", b"1"),
                    (b"REQUEST_METHOD", b"GET"),
                    (b"REQUEST_URI", b"/hello"),
                    (b"SERVER_PROTOCOL", b"HTTP/1.1"),
                    (b"HTTP_HOST", b"localhost"),
                ]
            )
        )
        self.assertTrue(transport.disconnecting)
        return b"\r\n".join(
            line
            for line in transport.value().split(b"\r\n")
            if not line.startswith(b"Date: ")
        )

    def test_scgiRequestFloorAnswersAsStockFloor(self) -> None:
        """The SCGIRequest floor writes the very bytes of the stock floor.

        ``bench/run.py`` compares their costs: they must do the same work.
        """
        from scgi_twisted import SCGIRequest

        stock = self.answer(None)
        self.assertTrue(stock.startswith(b"Status: 200 OK\r\n"), stock)
        self.assertTrue(stock.endswith(b"\r\n\r\nHello, world!"), stock)
        self.assertEqual(self.answer(SCGIRequest), stock)
