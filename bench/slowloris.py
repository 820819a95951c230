#!/usr/bin/env python3
"""Normal-request latency of scgi_twisted while hundreds of clients trickle headers.

A slowloris client opens many connections and sends each one header byte at a time,
slowly, so that a server that gives every connection a thread (or waits for whole
headers before doing anything else) runs out of room.  This script::

    python bench/slowloris.py                          # 500 connections, 15 s phases
    python bench/slowloris.py --connections 1000 --duration 30 --transport tcp

1. starts ``twistd -n scgi`` (default options but ``--listen``, on a unix socket in a
   temporary directory or on a free port of 127.0.0.1) serving a resource that
   answers ``hello``;
2. after a one-second warm-up, measures normal requests, one after the other, for
   ``--duration`` seconds: the latency of each from ``connect()`` to the server's
   close;
3. opens ``--connections`` connections that each send one byte of a valid (but long)
   SCGI header every ``--interval`` seconds, spread evenly, and measures normal
   requests again for ``--duration`` seconds while they trickle;
4. prints both phases side by side, and how many trickling connections the server
   still held at the end (with the default 60 s header deadline, all of them: the
   phases are shorter than that).

Everything stays on loopback.  The trickle runs at most ``--duration`` seconds plus the
time to open the connections.  The soft limit on open files is raised to the hard
limit if the connections need it.  Exit status: 0 if every normal request got a 200,
1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

APPLICATION = """
from twisted.web.resource import Resource


class Hello(Resource):
    isLeaf = True

    def render_GET(self, request):
        request.setHeader(b"content-type", b"text/plain")
        return b"hello"


root = Hello()
"""


def netstring_request(uri: bytes) -> bytes:
    """Return a GET for ``uri`` framed as nginx frames it (``CONTENT_LENGTH`` first)."""
    pairs = [
        (b"CONTENT_LENGTH", b"0"),
        (b"SCGI", b"1"),
        (b"REQUEST_METHOD", b"GET"),
        (b"REQUEST_URI", uri),
        (b"QUERY_STRING", b""),
        (b"SERVER_PROTOCOL", b"HTTP/1.1"),
        (b"REMOTE_ADDR", b"127.0.0.1"),
        (b"REMOTE_PORT", b"50000"),
        (b"SERVER_NAME", b"localhost"),
        (b"SERVER_PORT", b"80"),
        (b"HTTP_HOST", b"localhost"),
    ]
    block = b"".join(name + b"\0" + value + b"\0" for name, value in pairs)
    return b"%d:%s," % (len(block), block)


@dataclass
class Phase:
    """The normal requests of one phase: their latencies (s) and errors."""

    name: str
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def percentile(self, fraction: float) -> float:
        """Return a latency percentile (nearest rank), in milliseconds."""
        ordered = sorted(self.latencies)
        if not ordered:
            return math.nan
        rank = max(1, math.ceil(fraction * len(ordered)))
        return ordered[rank - 1] * 1000


class Server:
    """``twistd -n scgi`` in a temporary directory, stopped with SIGTERM."""

    def __init__(self, directory: str, transport: str) -> None:
        with open(os.path.join(directory, "bench_slowloris_app.py"), "w") as file:
            file.write(APPLICATION)
        if transport == "unix":
            self.path = os.path.join(directory, "scgi.sock")
            listen = f"unix:{self.path}:mode=600"
            self.family, self.address = socket.AF_UNIX, self.path
        else:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
            listen = f"tcp:{port}:interface=127.0.0.1"
            self.family, self.address = socket.AF_INET, ("127.0.0.1", port)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [directory, REPO, *filter(None, [env.get("PYTHONPATH")])]
        )
        self.log = os.path.join(directory, "twistd.log")
        command = [
            sys.executable,
            "-c",
            "import sys; from twisted.scripts.twistd import run; "
            "sys.argv[0] = 'twistd'; sys.exit(run())",
            "-n",
            "--pidfile=",
            f"--logfile={self.log}",
            "scgi",
            "--listen",
            listen,
            "--resource",
            "bench_slowloris_app.root",
        ]
        self.command = " ".join(["twistd", *command[3:]])
        self.process = subprocess.Popen(
            command, cwd=directory, env=env, stdin=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                latency = one_request(self.family, self.address, b"/warm-up")
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    message = f"the server did not start; see {self.log}"
                    raise SystemExit(message) from None
                time.sleep(0.05)
            else:
                del latency
                return

    def stop(self) -> None:
        """Stop the server."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def one_request(family: socket.AddressFamily, address: object, uri: bytes) -> float:
    """Send one GET; read the answer to the server's close; return the latency.

    :raises OSError: on a connection problem, ValueError on a wrong answer.
    """
    started = time.perf_counter()
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(address)
        sock.sendall(netstring_request(uri))
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    elapsed = time.perf_counter() - started
    answer = b"".join(chunks)
    if not answer.startswith(b"Status: 200") or not answer.endswith(b"hello"):
        raise ValueError(f"unexpected answer {answer[:80]!r}")
    return elapsed


def measure(server: Server, name: str, seconds: float) -> Phase:
    """Send normal requests one after the other for ``seconds``."""
    phase = Phase(name)
    started = time.monotonic()
    index = 0
    while time.monotonic() - started < seconds:
        index += 1
        try:
            phase.latencies.append(
                one_request(server.family, server.address, b"/normal/%d" % index)
            )
        except (OSError, ValueError) as error:
            phase.errors.append(f"{type(error).__name__}: {error}")
    phase.seconds = time.monotonic() - started
    return phase


class Trickler:
    """Connections each sending one header byte every ``interval`` seconds."""

    def __init__(self, server: Server, count: int, interval: float) -> None:
        self.server = server
        self.count = count
        self.interval = interval
        # A valid request whose header block is far longer than will ever be sent.
        self.payload = netstring_request(b"/" + b"s" * 8000)
        self.sockets: list[socket.socket] = []
        self.sendErrors = 0
        self.bytesSent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def open(self) -> float:
        """Open the connections (sending nothing yet); return how long it took."""
        started = time.monotonic()
        for _ in range(self.count):
            sock = socket.socket(self.server.family, socket.SOCK_STREAM)
            # Blocking: a unix socket refuses a non-blocking connect (EAGAIN) while
            # the listen backlog is full, instead of waiting for the accept.
            sock.connect(self.server.address)
            self.sockets.append(sock)
        return time.monotonic() - started

    def start(self) -> None:
        """Start trickling in a thread."""
        self._thread.start()

    def _run(self) -> None:
        """Send byte ``i`` on every connection during second ``i``, evenly spread."""
        gap = self.interval / max(1, len(self.sockets))
        index = 0
        next_send = time.monotonic()
        while not self._stop.is_set() and index < len(self.payload):
            byte = self.payload[index : index + 1]
            for sock in self.sockets:
                delay = next_send - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    return
                try:
                    sock.send(byte)
                    self.bytesSent += 1
                except OSError:
                    self.sendErrors += 1
                next_send += gap
            index += 1

    def stillOpen(self) -> int:
        """Return how many connections the server has not closed."""
        open_count = 0
        for sock in self.sockets:
            sock.setblocking(False)
            try:
                data = sock.recv(1)
            except BlockingIOError:
                open_count += 1
            except OSError:
                pass
            else:
                if data:
                    open_count += 1
        return open_count

    def stop(self) -> None:
        """Stop trickling and close the connections."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
        for sock in self.sockets:
            sock.close()


def raise_file_limit(needed: int) -> None:
    """Raise the soft limit on open files to the hard limit if ``needed`` exceeds it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = hard if hard == resource.RLIM_INFINITY else min(hard, needed * 2)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        if target < needed:
            raise SystemExit(f"the open-file limit ({hard}) is below {needed}")


def table(phases: list[Phase]) -> Iterator[str]:
    """Yield the lines of the results table."""
    yield (
        f"{'load':<30} {'requests':>8} {'req/s':>7} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'max ms':>7} {'errors':>6}"
    )
    for phase in phases:
        count = len(phase.latencies)
        rate = count / phase.seconds if phase.seconds else 0.0
        worst = max(phase.latencies, default=math.nan) * 1000
        yield (
            f"{phase.name:<30} {count:>8} {rate:>7.0f} {phase.percentile(0.5):>7.2f} "
            f"{phase.percentile(0.99):>7.2f} {worst:>7.2f} {len(phase.errors):>6}"
        )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=500)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds per byte")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds/phase")
    parser.add_argument("--transport", choices=("unix", "tcp"), default="unix")
    options = parser.parse_args(argv)
    raise_file_limit(options.connections + 64)
    directory = tempfile.mkdtemp(prefix="scgi-slowloris-")
    server = None
    try:
        server = Server(directory, options.transport)
        print(f"server: {server.command}")
        print(
            f"normal requests: one at a time, {options.duration:g} s per phase",
            flush=True,
        )
        measure(server, "warm-up", 1.0)
        quiet = measure(server, "no trickle", options.duration)
        trickler = Trickler(server, options.connections, options.interval)
        try:
            opened = trickler.open()
            trickler.start()
            time.sleep(min(2.0, options.interval * 2))
            loaded = measure(
                server,
                f"{options.connections} trickling 1 B/{options.interval:g}s",
                options.duration,
            )
            held = trickler.stillOpen()
            sent = trickler.bytesSent
        finally:
            trickler.stop()
        print(
            f"trickle: {options.connections} connections opened in {opened:.2f} s, "
            f"{sent} header bytes sent, {trickler.sendErrors} send errors, "
            f"{held} still open at the end"
        )
        print()
        for line in table([quiet, loaded]):
            print(line)
        errors = quiet.errors + loaded.errors
        for error in errors[:10]:
            print(f"error: {error}")
        if quiet.latencies and loaded.latencies:
            ratio = statistics.median(loaded.latencies) / statistics.median(
                quiet.latencies
            )
            print(f"\nmedian latency under trickle / without: {ratio:.2f}x")
        return 1 if errors else 0
    finally:
        if server is not None:
            server.stop()
        with contextlib.suppress(OSError):
            shutil.rmtree(directory)


if __name__ == "__main__":
    sys.exit(main())
