"""nginx spreading SCGI over several scgi_twisted hosts: failover under load.

Strategy: three ``twistd -n scgi`` backends (the "hosts") listen on loopback ports,
and one nginx, configured from ``docs/deploy/nginx-upstream-hosts.conf.in`` (the file
the documentation shows), balances over them.  Threads send requests through nginx
all along, each answered after a short non-blocking delay so that requests are in
flight on every backend at any moment; the answer names the pid that served it.
Then, under that load:

1. the heaviest backend is killed with ``SIGKILL``: GETs in flight on it are retried
   on another host (none fails), and at most the POSTs in flight at that moment fail
   (nginx does not retry a non-idempotent request that reached a dead host);
2. another backend is stopped with ``SIGTERM`` (it refuses new connections at once
   and finishes its requests in flight) and restarted on the same port: no request
   fails at all, and the restarted backend is back in the rotation once nginx's
   ``fail_timeout`` has passed.

nginx is required: without it the test fails (it never skips).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from .support.frontends import (
    DEPLOY,
    HTTPResult,
    Nginx,
    freePort,
    httpRequest,
    renderTemplate,
)
from .support.processes import (
    STOPPED,
    TWISTD,
    WORKERS_APPLICATION,
    Server,
    environment,
    temporaryDirectory,
)

TEMPLATE = "nginx-upstream-hosts.conf.in"
"""The site template, in ``docs/deploy/``."""

DEADLINE = 30.0
"""Seconds to wait for anything a test waits for."""

FAIL_TIMEOUT = 10.0
"""The template's ``fail_timeout``: how long nginx leaves a failed host out."""

DELAY = "0.03"
"""How long each backend takes to answer, in seconds (without blocking)."""


class UpstreamNginx:
    """nginx with the upstream template over several backends, stopped by pid.

    :ivar port: the port it listens on.
    :ivar directory: its private directory (configuration, logs, pid file).
    """

    def __init__(self, case: SynchronousTestCase, backends: list[str]) -> None:
        """Start nginx in front of ``backends`` (``HOST:PORT`` each) and wait for it.

        :raises FrontendError: if nginx is not installed (the test then fails).
        """
        binary = Nginx.findBinary()
        self.directory = temporaryDirectory(case)
        self.port = freePort()
        config = self._writeConfig(binary, backends)
        with open(self.directory / "nginx.out", "wb") as output:
            self.process = subprocess.Popen(
                [binary, "-p", f"{self.directory}/", "-c", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        case.addCleanup(self.stop)
        deadline = time.monotonic() + DEADLINE
        while not self._accepts():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"nginx did not start:\n{self.diagnostics()}")
            time.sleep(0.05)

    def _writeConfig(self, binary: str, backends: list[str]) -> Path:
        """Render ``nginx-test.conf.in`` around the upstream template."""
        directory = self.directory
        params = Nginx._scgiParams(binary)
        (directory / "scgi_params").write_bytes(params.read_bytes())
        values = {"LISTEN": f"127.0.0.1:{self.port}"}
        for name, backend in zip("ABC", backends, strict=True):
            values[f"BACKEND_{name}"] = backend
        site = directory / "site.conf"
        site.write_text(renderTemplate(DEPLOY / TEMPLATE, values))
        config = directory / "nginx.conf"
        config.write_text(
            renderTemplate(
                DEPLOY / "nginx-test.conf.in",
                {
                    "TMPDIR": str(directory),
                    "USER_DIRECTIVE": "user root;" if os.geteuid() == 0 else "",
                    "SITE": str(site),
                },
            )
        )
        return config

    def _accepts(self) -> bool:
        """Return whether nginx accepts connections on its port."""
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.settimeout(1.0)
            return probe.connect_ex(("127.0.0.1", self.port)) == 0

    def errorLog(self) -> str:
        """Return the error log of nginx."""
        path = self.directory / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def diagnostics(self) -> str:
        """Return the output and error log of nginx, for failure messages."""
        output = (self.directory / "nginx.out").read_text(errors="replace")
        return f"{output}\n{self.errorLog()}"

    def stop(self) -> None:
        """SIGTERM nginx's master, then SIGKILL its process group if it lingers."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(DEADLINE)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(DEADLINE)


class Host:
    """One backend: ``twistd -n scgi`` on a fixed loopback port, restartable."""

    def __init__(self, case: SynchronousTestCase, port: int) -> None:
        self._case = case
        self.directory = temporaryDirectory(case)
        (self.directory / "scgi_workers_app.py").write_text(WORKERS_APPLICATION)
        self.port = port
        self.address = f"127.0.0.1:{port}"
        self.server = self.start()

    def start(self) -> Server:
        """Start the backend and wait until it listens."""
        server = Server(
            self._case,
            self.directory,
            [
                *TWISTD,
                "-n",
                "--pidfile=",
                "scgi",
                "--listen",
                f"tcp:{self.port}:interface=127.0.0.1",
                "--resource",
                "scgi_workers_app.root",
                "--access-log",
                os.devnull,
            ],
            env=environment(str(self.directory)),
        )
        server.waitFor(rf"SCGISite starting on {self.port}\b")
        self.server = server
        return server

    @property
    def pid(self) -> int:
        """The backend's pid."""
        return self.server.process.pid


class Load:
    """Threads sending requests through nginx until stopped.

    :ivar served: how many requests each pid answered.
    :ivar failures: ``(method, phase, what)`` for every request that did not get a
        200 with a pid, ``phase`` being the phase when it ended.
    :ivar inFlight: requests sent and not yet answered, now.
    :ivar phase: a label stamped on failures (changed by the test).
    """

    def __init__(self, port: int, getters: int = 4, posters: int = 2) -> None:
        self._port = port
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.served: Counter[int] = Counter()
        self.failures: list[tuple[str, str, str]] = []
        self.inFlight = 0
        self.phase = "start"
        self._threads = [
            threading.Thread(target=self._run, args=(method,), daemon=True)
            for method in ["GET"] * getters + ["POST"] * posters
        ]

    def _run(self, method: str) -> None:
        body = b"x" * 100 if method == "POST" else None
        while not self._stop.is_set():
            with self._lock:
                self.inFlight += 1
            try:
                result: HTTPResult | None = httpRequest(
                    self._port, method, f"/delay/{DELAY}", body=body, timeout=DEADLINE
                )
                problem = ""
            except Exception as error:
                result = None
                problem = f"{type(error).__name__}: {error}"
            with self._lock:
                self.inFlight -= 1
                if result is not None and result.status == 200:
                    self.served[int(result.body)] += 1
                else:
                    if result is not None:
                        problem = f"{result.status} {result.body[:80]!r}"
                    self.failures.append((method, self.phase, problem))

    def start(self) -> None:
        """Start sending."""
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop sending; wait for the last answers."""
        self._stop.set()
        for thread in self._threads:
            thread.join(DEADLINE)

    def total(self) -> int:
        """How many requests succeeded so far."""
        with self._lock:
            return sum(self.served.values())

    def waitUntil(self, condition: Any, what: str) -> None:
        """Wait until ``condition()`` holds, while the load runs."""
        deadline = time.monotonic() + DEADLINE
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{what}: not in {DEADLINE:g} s (served {dict(self.served)}, "
                    f"failures {self.failures[:5]})"
                )
            time.sleep(0.05)


class UpstreamFailoverTests(SynchronousTestCase):
    """Several scgi_twisted hosts behind one nginx ``upstream``."""

    def test_failover(self) -> None:
        """A host killed or restarted under load costs at most its POSTs in flight.

        Killing a host (SIGKILL) fails no GET (nginx retries them elsewhere) and at
        most the POSTs in flight at that moment; stopping a host with SIGTERM and
        restarting it fails nothing; requests are spread by weight before the kill,
        and the restarted host serves again once its ``fail_timeout`` is over.
        """
        hosts = [Host(self, freePort()) for _ in range(3)]
        self.assertEqual(len({host.port for host in hosts}), 3)
        nginx = UpstreamNginx(self, [host.address for host in hosts])
        heavy, restarted, steady = hosts

        load = Load(nginx.port)
        self.addCleanup(load.stop)
        load.start()
        load.waitUntil(
            lambda: all(load.served[host.pid] >= 40 for host in hosts),
            "every host serves",
        )
        before = dict(load.served)
        self.assertGreater(before[heavy.pid], before[restarted.pid])
        self.assertGreater(before[heavy.pid], before[steady.pid])
        self.assertEqual(load.failures, [])

        # 1. SIGKILL the host with weight 2.
        load.phase = "kill"
        inFlightAtKill = load.inFlight
        os.kill(heavy.pid, signal.SIGKILL)
        heavy.server.process.wait(DEADLINE)
        mark = load.total()
        load.waitUntil(lambda: load.total() >= mark + 100, "serving after the kill")

        # 2. SIGTERM another host, and start it again on the same port.
        load.phase = "restart"
        old = restarted.pid
        self.assertIn(restarted.server.stop(), STOPPED, restarted.server.output())
        self.assertNotIn("Traceback", restarted.server.output())
        restarted.start()
        self.assertNotEqual(restarted.pid, old)
        mark = load.total()
        load.waitUntil(lambda: load.total() >= mark + 100, "serving after restart")
        deadline = time.monotonic() + FAIL_TIMEOUT + DEADLINE
        while load.served[restarted.pid] < 5:
            self.assertLess(
                time.monotonic(), deadline, "the restarted host got no requests"
            )
            time.sleep(0.1)
        load.stop()

        kill = [f for f in load.failures if f[1] == "kill"]
        restart = [f for f in load.failures if f[1] == "restart"]
        self.assertEqual([f for f in kill if f[0] == "GET"], [], "GETs failed")
        self.assertLessEqual(len(kill), inFlightAtKill, kill)
        self.assertEqual(restart, [], "requests failed across the restart")
        self.assertRegex(nginx.errorLog(), re.escape(heavy.address))
