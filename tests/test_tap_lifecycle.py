"""``twistd scgi``'s limits and graceful shutdown: options, wiring, and real processes.

Strategy:

* :class:`LifecycleOptionsTests` parses real command lines for ``--header-timeout``,
  ``--max-connections``, ``--grace-period`` and ``--abort-timeout``: the defaults,
  good values, and each kind of bad value (a usage error naming the option).
* :class:`LifecycleServiceTests` builds the service with :func:`makeService` on a
  ``MemoryReactorClock``, checks that every option reaches the site and the service,
  and stops the service with a request in flight: the stop waits for the request
  within the grace period and closes it at the end of the grace period.
* :class:`GracefulShutdownTests` runs the real command, ``twistd -n scgi``, as a
  subprocess (the helpers of :mod:`tests.support.processes`), serving a slow resource
  written into a temporary directory, and sends it SIGTERM with a request in flight.
"""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from twisted.internet.error import ConnectionDone
from twisted.internet.testing import MemoryReactorClock
from twisted.python import usage
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from scgi_twisted import SCGISite
from scgi_twisted.tap import (
    DEFAULT_ABORT_TIMEOUT,
    DEFAULT_GRACE_PERIOD,
    Options,
    SCGIService,
    makeService,
)

from .support.apps import WebRequest
from .support.memory import connect
from .support.processes import DEADLINE, STOPPED, TWISTD, Server, temporaryDirectory
from .support.scgi import buildRequest, nginxVariables, parseResponse

HERE = __name__


class Slow(Resource):
    """Holds every request until the test finishes it."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.pending: list[WebRequest] = []
        self.failures: list[Failure] = []

    def render(self, request: WebRequest) -> object:
        """Keep the request."""
        self.pending.append(request)
        request.notifyFinish().addErrback(self.failures.append)
        return NOT_DONE_YET


SLOW = Slow()
"""The resource ``--resource`` names in the service tests."""


def parse(*arguments: str) -> Options:
    """Parse a ``twistd scgi`` command line."""
    options = Options()
    options.parseOptions(list(arguments))
    return options


class LifecycleOptionsTests(SynchronousTestCase):
    """The options of the limits and of the graceful shutdown."""

    def assertBadValue(self, option: str, value: str, fragment: str) -> None:
        """Assert that ``--option value`` is a usage error naming the option."""
        with self.assertRaises(usage.UsageError) as context:
            parse(f"--{option}", value)
        message = str(context.exception)
        self.assertTrue(message.startswith(f"--{option}: "), message)
        self.assertIn(fragment, message)

    def test_defaults(self) -> None:
        """No own header deadline, no connection limit, 10 s grace, 15 s abort."""
        options = parse()
        self.assertIsNone(options["header-timeout"])
        self.assertIsNone(options["max-connections"])
        self.assertEqual(options["grace-period"], 10.0)
        self.assertEqual(DEFAULT_GRACE_PERIOD, 10.0)
        self.assertEqual(options["abort-timeout"], 15.0)
        self.assertEqual(DEFAULT_ABORT_TIMEOUT, 15.0)

    def test_help(self) -> None:
        """The help lists the four options and the defaults of two of them."""
        text = " ".join(str(Options()).split())
        for name in ("header-timeout=", "max-connections=", "grace-period=", "abort-"):
            self.assertIn(f"--{name}", text)
        self.assertIn("[default: 10]", text)
        self.assertIn("[default: 15]", text)

    def test_headerTimeout(self) -> None:
        """``--header-timeout`` takes seconds, with a fraction if wanted."""
        self.assertEqual(parse("--header-timeout", "2.5")["header-timeout"], 2.5)
        self.assertEqual(parse("--header-timeout", "30")["header-timeout"], 30.0)

    def test_headerTimeoutBad(self) -> None:
        """A header deadline that is not a positive, finite number is refused."""
        self.assertBadValue("header-timeout", "soon", "'soon' is not a number")
        for value in ("0", "-1", "inf", "nan", "-inf"):
            self.assertBadValue(
                "header-timeout", value, f"{value!r} is not a positive number"
            )

    def test_maxConnections(self) -> None:
        """``--max-connections`` takes a positive whole number."""
        self.assertEqual(parse("--max-connections", "1")["max-connections"], 1)
        self.assertEqual(parse("--max-connections", "500")["max-connections"], 500)

    def test_maxConnectionsBad(self) -> None:
        """Zero, negatives, fractions and words are refused."""
        for value in ("0", "-3", "1.5", "many", "", " 5", "1e3"):
            self.assertBadValue(
                "max-connections", value, f"{value!r} is not a positive whole number"
            )

    def test_gracePeriod(self) -> None:
        """``--grace-period`` takes seconds; zero closes everything at once."""
        self.assertEqual(parse("--grace-period", "2.5")["grace-period"], 2.5)
        self.assertEqual(parse("--grace-period", "0")["grace-period"], 0.0)

    def test_gracePeriodBad(self) -> None:
        """A grace period that is negative or not a finite number is refused."""
        self.assertBadValue("grace-period", "later", "'later' is not a number")
        for value in ("-1", "inf", "nan"):
            self.assertBadValue(
                "grace-period", value, f"{value!r} is not a non-negative number"
            )

    def test_abortTimeout(self) -> None:
        """``--abort-timeout`` takes seconds; zero aborts at once."""
        self.assertEqual(parse("--abort-timeout", "0.5")["abort-timeout"], 0.5)
        self.assertEqual(parse("--abort-timeout", "0")["abort-timeout"], 0.0)

    def test_abortTimeoutBad(self) -> None:
        """An abort timeout that is negative or not a finite number is refused."""
        self.assertBadValue("abort-timeout", "never", "'never' is not a number")
        for value in ("-0.5", "inf", "nan"):
            self.assertBadValue(
                "abort-timeout", value, f"{value!r} is not a non-negative number"
            )


class LifecycleServiceTests(SynchronousTestCase):
    """:func:`makeService` wires the options, and stopping the service drains."""

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        SLOW.pending = []
        SLOW.failures = []

    def start(self, *arguments: str) -> tuple[SCGIService, SCGISite]:
        """Make and start the service; return it and its site."""
        service = makeService(
            parse("--resource", f"{HERE}.SLOW", *arguments), self.reactor
        )
        assert isinstance(service, SCGIService)
        service.startService()
        (server,) = self.reactor.tcpServers
        site = server[1]
        assert isinstance(site, SCGISite)
        return service, site

    def test_wiring(self) -> None:
        """Each option reaches the site or the service."""
        service, site = self.start(
            "--timeout",
            "30",
            "--header-timeout",
            "5",
            "--max-connections",
            "200",
            "--grace-period",
            "7.5",
            "--abort-timeout",
            "3",
        )
        self.assertEqual(site.timeOut, 30.0)
        self.assertEqual(site.config.header_timeout, 5.0)
        self.assertEqual(site.max_connections, 200)
        self.assertEqual(site.config.abort_timeout, 3.0)
        self.assertEqual(service.gracePeriod, 7.5)
        self.assertIs(service.site, site)
        service.stopService()

    def test_defaultWiring(self) -> None:
        """By default: no connection limit, the header deadline is ``--timeout``."""
        service, site = self.start()
        self.assertIsNone(site.max_connections)
        self.assertIsNone(site.config.header_timeout)
        self.assertEqual(site.timeOut, 60.0)
        self.assertEqual(site.config.abort_timeout, DEFAULT_ABORT_TIMEOUT)
        self.assertEqual(service.gracePeriod, DEFAULT_GRACE_PERIOD)
        service.stopService()

    def test_stopWaitsForRequest(self) -> None:
        """Stopping waits for a request in flight; it finishes within the grace."""
        service, site = self.start("--grace-period", "5")
        channel, transport = connect(site)
        channel.dataReceived(buildRequest(nginxVariables(b"/slow")))
        stopped = service.stopService()
        self.reactor.advance(4)
        self.assertNoResult(stopped)
        (request,) = SLOW.pending
        request.write(b"done")
        request.finish()
        channel.connectionLost(Failure(ConnectionDone()))
        self.successResultOf(stopped)
        self.assertEqual(parseResponse(transport.value()).body, b"done")
        self.assertEqual(SLOW.failures, [])

    def test_stopClosesAtGrace(self) -> None:
        """A request still running when the grace period ends is closed."""
        service, site = self.start("--grace-period", "5")
        channel, transport = connect(site)
        channel.dataReceived(buildRequest(nginxVariables(b"/slow")))
        stopped = service.stopService()
        self.reactor.advance(4.9)
        self.assertFalse(transport.disconnecting)
        self.reactor.advance(0.1)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(len(SLOW.failures), 1)
        self.assertNoResult(stopped)
        channel.connectionLost(Failure(ConnectionDone()))
        self.successResultOf(stopped)

    def test_stopWithoutConnections(self) -> None:
        """With nothing in flight the service stops at once."""
        service, _ = self.start("--grace-period", "5")
        self.successResultOf(service.stopService())


# Real processes.

APPLICATION = '''
"""The slow application of the graceful-shutdown tests."""

from twisted.internet import reactor
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET


class Slow(Resource):
    isLeaf = True

    def render_GET(self, request):
        seconds = float(request.args.get(b"seconds", [b"1"])[0])
        print("slow request started", flush=True)
        if b"stream" in request.args:
            request.write(b"first part\\n")

        def finish():
            request.write(b"finished after %g s" % seconds)
            request.finish()

        call = reactor.callLater(seconds, finish)

        def abandoned(failure):
            call.cancel()
            print("slow request abandoned", flush=True)

        request.notifyFinish().addErrback(abandoned)
        return NOT_DONE_YET


root = Slow()
'''

Address = tuple[socket.AddressFamily, Any]


def _openConnection(address: Address) -> socket.socket:
    """Connect a blocking socket with a timeout on every call."""
    family, where = address
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(DEADLINE)
    try:
        sock.connect(where)
    except BaseException:
        sock.close()
        raise
    return sock


def _ask(address: Address, uri: bytes) -> tuple[bytes, str, float]:
    """Send a GET; read until the end; return the bytes, how it ended, and when."""
    with contextlib.closing(_openConnection(address)) as sock:
        sock.sendall(buildRequest(nginxVariables(uri)))
        chunks = []
        end = "eof"
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                end = "reset"
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks), end, time.monotonic()


class GracefulShutdownTests(SynchronousTestCase):
    """SIGTERM: stop accepting, let requests finish within the grace, then close."""

    def setUp(self) -> None:
        self.pool = ThreadPoolExecutor(max_workers=4)
        self.addCleanup(self.pool.shutdown, wait=False, cancel_futures=True)

    def start(self, *arguments: str) -> tuple[Server, Address, Address]:
        """Run ``twistd -n scgi`` on a free port and a unix socket.

        :returns: the server, its TCP address and its unix address.
        """
        directory = temporaryDirectory(self)
        (directory / "scgi_lifecycle_app.py").write_text(APPLICATION)
        sock = directory / "scgi.sock"
        server = Server(
            self,
            directory,
            [
                *TWISTD,
                "-n",
                "--pidfile=",
                "scgi",
                "--listen",
                "tcp:0:interface=127.0.0.1",
                "--listen",
                f"unix:{sock}:mode=600",
                "--resource",
                "scgi_lifecycle_app.root",
                "--access-log",
                "-",
                *arguments,
            ],
        )
        port = int(server.waitFor(r"SCGISite starting on (\d+)").group(1))
        server.waitFor(re.escape(f"SCGISite starting on '{sock}'"))
        return (
            server,
            (socket.AF_INET, ("127.0.0.1", port)),
            (socket.AF_UNIX, str(sock)),
        )

    def inFlight(self, server: Server, address: Address, uri: bytes) -> Future[Any]:
        """Start a request in a thread; return once the application is running it."""
        answer = self.pool.submit(_ask, address, uri)
        server.waitFor("slow request started")
        return answer

    def assertRefused(self, address: Address) -> None:
        """Assert that ``address`` stops accepting connections within 2 seconds."""
        deadline = time.monotonic() + 2.0
        while True:
            try:
                _openConnection(address).close()
            except (ConnectionRefusedError, FileNotFoundError):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{address} still accepts connections")
            time.sleep(0.02)

    def stopped(self, server: Server) -> tuple[int, float, str]:
        """Wait for the process to exit; return its status, when, and its output."""
        status = server.process.wait(DEADLINE)
        return status, time.monotonic(), server.output()

    def assertClean(self, status: int, output: str) -> None:
        """Assert an orderly exit."""
        self.assertIn(status, STOPPED, output)
        self.assertIn("Main loop terminated.", output)
        self.assertNotIn("Traceback", output)
        self.assertNotIn("Unhandled", output)

    def test_requestFinishesWithinGrace(self) -> None:
        """A request in flight at SIGTERM is answered in full, then the process exits.

        The listeners stop at once (a new connection is refused while the request
        still runs), the access log line of the request is written, and the exit
        does not wait for the rest of the grace period.
        """
        server, tcp, unix = self.start("--grace-period", "5")
        answer = self.inFlight(server, unix, b"/slow?seconds=1")
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        self.assertRefused(tcp)
        self.assertRefused(unix)
        self.assertFalse(answer.done(), "the request ended before the listeners did")
        data, end, answered = answer.result(DEADLINE)
        status, exited, output = self.stopped(server)
        response = parseResponse(data)
        self.assertEqual((response.status, response.body), (200, b"finished after 1 s"))
        self.assertEqual(end, "eof")
        self.assertGreater(answered - signalled, 0.5)
        self.assertLess(exited - signalled, 4.0)
        self.assertClean(status, output)
        # The connections: the request's, and maybe a probe accepted before the stop.
        self.assertRegex(output, r"Waiting up to 5(\.0)? s for [12] connection\(s\)")
        self.assertEqual(output.count("Stopping factory"), 1, output)
        self.assertIn('"GET /slow?seconds=1 HTTP/1.1" 200 ', output)
        self.assertNotIn("slow request abandoned", output)
        self.assertFalse(Path(unix[1]).exists())

    def test_requestClosedAtGrace(self) -> None:
        """A request outlasting the grace period is closed at its end, then exits.

        Nothing had been answered, so the client sees a plain EOF.
        """
        server, tcp, _ = self.start("--grace-period", "1")
        answer = self.inFlight(server, tcp, b"/slow?seconds=30")
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        data, end, answered = answer.result(DEADLINE)
        status, exited, output = self.stopped(server)
        self.assertEqual((data, end), (b"", "eof"))
        self.assertGreater(answered - signalled, 0.9)
        self.assertLess(answered - signalled, 3.0)
        self.assertLess(exited - signalled, 4.0)
        self.assertClean(status, output)
        self.assertIn("Grace period over: closing 1 connection(s)", output)
        self.assertIn("slow request abandoned", output)

    def test_unfinishedAnswerAbortedAtGrace(self) -> None:
        """An answer still being written at the end of the grace period is aborted.

        Over TCP the client sees a reset after the first part, so the frontend
        cannot take the truncated answer for a complete one.
        """
        server, tcp, _ = self.start("--grace-period", "1")
        answer = self.inFlight(server, tcp, b"/slow?seconds=30&stream=1")
        server.process.send_signal(signal.SIGTERM)
        data, end, _ = answer.result(DEADLINE)
        status, _, output = self.stopped(server)
        self.assertTrue(data.endswith(b"\r\n\r\nfirst part\n"), data)
        self.assertEqual(end, "reset")
        self.assertClean(status, output)

    def test_limitOptionsInAction(self) -> None:
        """``--max-connections 1`` with ``--header-timeout 0.5`` in a real process.

        A silent connection takes the only slot; a second connection with a whole
        request waits until the header deadline closes the first, then is served.
        """
        server, tcp, _ = self.start(
            "--max-connections", "1", "--header-timeout", "0.5", "--timeout", "30"
        )
        silent = _openConnection(tcp)
        self.addCleanup(silent.close)
        time.sleep(0.2)
        started = time.monotonic()
        data, end, answered = _ask(tcp, b"/slow?seconds=0")
        self.assertEqual(parseResponse(data).body, b"finished after 0 s")
        self.assertEqual(end, "eof")
        self.assertGreater(answered - started, 0.2)
        self.assertEqual(silent.recv(100), b"")
        server.process.send_signal(signal.SIGTERM)
        status, _, output = self.stopped(server)
        self.assertClean(status, output)
        self.assertIn("Reached 1 connections: not accepting until one ends", output)
