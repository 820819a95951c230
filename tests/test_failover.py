"""Restarting a backend behind nginx under load loses no request.

nginx (its site rendered from ``docs/deploy/nginx-upstream.conf.in``) balances over
two ``twistd -n scgi`` backends on unix sockets.  Client threads keep sending GETs
through nginx, each on a new connection, to a resource that sends half its answer at
once and the rest 50 ms later (so that every backend always has requests in flight,
and a request dropped midway shows as half an answer: nginx cannot hide it by trying
the other backend).  Meanwhile the test sends SIGTERM
to one backend, waits for it to exit, starts it again, and does the same with the
other.  Not one request may fail: the stopping backend finishes what it is running
(its listener closed at once), and nginx passes requests for the stopped one to the
other (``scgi_next_upstream error``).

The test runs its own nginx with a minimal main configuration written here around the
template (the shared fixture in :mod:`tests.frontends` runs one backend per stack).
nginx is required: without it the test fails, saying what to install.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from twisted.trial.unittest import SynchronousTestCase

from .frontends import DEPLOY, FrontendError, Nginx, freePort, renderTemplate

TEMPLATE = DEPLOY / "nginx-upstream.conf.in"
"""The site template under test."""

PREFIX = "/app"

ROOT = Path(__file__).resolve().parent.parent

DEADLINE = 30.0
"""Seconds a process may take to start or to stop."""

GRACE = 5.0
"""The backends' ``--grace-period``."""

CLIENTS = 8
"""How many client threads send requests at once."""

APPLICATION = '''
"""The backends' application: begin the answer, finish it 50 ms later.

The first half goes out at once, so a backend that dropped the request midway could
not be hidden by nginx trying the other backend: the client would get half an answer.
"""

import os

from twisted.internet import reactor
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET


class Work(Resource):
    isLeaf = True

    def render_GET(self, request):
        tag = request.args.get(b"n", [b"-"])[0]
        request.setHeader(b"content-type", b"text/plain")
        request.write(b"pid=%d " % os.getpid())

        def answer():
            request.write(b"n=%s" % tag)
            request.finish()

        call = reactor.callLater(0.05, answer)
        request.notifyFinish().addErrback(lambda failure: call.cancel())
        return NOT_DONE_YET


root = Work()
'''

MAIN_CONFIG = """
daemon off;
master_process on;
worker_processes 1;
{user}
pid {directory}/nginx.pid;
error_log {directory}/error.log info;

events {{
    worker_connections 512;
}}

http {{
    access_log {directory}/access.log;
    client_body_temp_path {directory}/client_body_temp;
    scgi_temp_path {directory}/scgi_temp;
    proxy_temp_path {directory}/proxy_temp;
    fastcgi_temp_path {directory}/fastcgi_temp;
    uwsgi_temp_path {directory}/uwsgi_temp;

    include {site};
}}
"""


def _scgiParams(binary: str) -> Path:
    """Find the distribution's ``scgi_params`` (next to nginx's ``--conf-path``)."""
    build = subprocess.run(
        [binary, "-V"], capture_output=True, text=True, check=False, timeout=30
    )
    candidates = [Path("/etc/nginx/scgi_params")]
    match = re.search(r"--conf-path=(\S+)", build.stderr + build.stdout)
    if match:
        candidates.insert(0, Path(match.group(1)).parent / "scgi_params")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise AssertionError(f"nginx's scgi_params was not found at {candidates}")


def _tail(path: Path, lines: int = 40) -> str:
    """Return the last lines of a log file."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        return f"({error.strerror})"
    return "\n".join(text.splitlines()[-lines:])


def _wait(condition: object, what: str, process: subprocess.Popen[bytes]) -> None:
    """Poll ``condition()`` until true; fail if ``process`` exits or time runs out."""
    assert callable(condition)
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"exited ({process.returncode}) waiting for {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class _Backend:
    """One ``twistd -n scgi`` backend on a unix socket; restartable.

    :ivar generations: the pid of every process started, in order.
    """

    def __init__(self, name: str, directory: Path) -> None:
        self.name = name
        self.directory = directory
        self.socket = directory / f"{name}.sock"
        self.logs: list[Path] = []
        self.generations: list[int] = []
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start a new process and wait until it listens."""
        log = self.directory / f"{self.name}-{len(self.logs)}.log"
        self.logs.append(log)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(self.directory), str(ROOT), *filter(None, [env.get("PYTHONPATH")])]
        )
        argv = [sys.executable, "-c"]
        argv += [
            "import sys; from twisted.scripts.twistd import run; "
            "sys.argv[0] = 'twistd'; sys.exit(run())"
        ]
        argv += ["-n", "--pidfile=", "scgi", "--listen", f"unix:{self.socket}:mode=600"]
        argv += ["--resource", "scgi_failover_app.root", "--grace-period", str(GRACE)]
        with log.open("wb") as output:
            self.process = subprocess.Popen(
                argv,
                cwd=self.directory,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        self.generations.append(self.process.pid)
        pattern = f"SCGISite starting on '{self.socket}'"
        _wait(
            lambda: pattern in log.read_text(), f"{self.name} to listen", self.process
        )

    def stop(self) -> int:
        """Send SIGTERM and wait for the exit; return the exit status."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(DEADLINE)

    def kill(self) -> None:
        """Kill the process if it still runs."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(DEADLINE)

    def output(self) -> str:
        """Return every generation's log."""
        return "\n".join(
            f"== {log}\n{log.read_text(errors='replace')}" for log in self.logs
        )


class _Frontend:
    """nginx with the upstream template, in the foreground, in a private directory."""

    startsFrontend: ClassVar[bool] = True
    """Starts a real frontend: tests that use it are marked ``frontend``."""

    def __init__(self, directory: Path, backends: list[_Backend]) -> None:
        try:
            binary = Nginx.findBinary()
        except FrontendError as error:
            raise AssertionError(str(error)) from None
        self.directory = directory
        self.port = freePort()
        shutil.copyfile(_scgiParams(binary), directory / "scgi_params")
        site = directory / "site.conf"
        site.write_text(
            renderTemplate(
                TEMPLATE,
                {
                    "LISTEN": f"127.0.0.1:{self.port}",
                    "BACKEND_A": f"unix:{backends[0].socket}",
                    "BACKEND_B": f"unix:{backends[1].socket}",
                    "PREFIX": PREFIX,
                },
            )
        )
        config = directory / "nginx.conf"
        config.write_text(
            MAIN_CONFIG.format(
                user="user root;" if os.geteuid() == 0 else "",
                directory=directory,
                site=site,
            )
        )
        self.errorLog = directory / "error.log"
        with (directory / "nginx.out").open("wb") as output:
            self.process = subprocess.Popen(
                [binary, "-p", f"{directory}/", "-c", str(config), "-e", self.errorLog],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _wait(self._accepts, "nginx to accept", self.process)

    def _accepts(self) -> bool:
        """Return whether nginx accepts connections."""
        with socket.socket() as probe:
            probe.settimeout(1.0)
            return probe.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self) -> None:
        """Stop nginx (SIGTERM, then SIGKILL to its process group)."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@dataclass
class _Load:
    """Client threads sending GETs through nginx until stopped.

    :ivar served: how many requests each backend pid answered.
    :ivar failures: ``(time, what)`` for every request that did not get its answer.
    """

    port: int
    served: dict[int, int] = field(default_factory=dict)
    failures: list[tuple[float, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self, clients: int) -> None:
        """Start ``clients`` threads."""
        for index in range(clients):
            thread = threading.Thread(target=self._run, args=(index,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def stop(self) -> None:
        """Stop the threads and wait for them."""
        self._stop.set()
        for thread in self._threads:
            thread.join(DEADLINE)

    def total(self) -> int:
        """Return how many requests were answered."""
        with self._lock:
            return sum(self.served.values())

    def _run(self, client: int) -> None:
        """Send one request after the other, each on a new connection."""
        sent = 0
        while not self._stop.is_set():
            tag = f"{client}-{sent}"
            sent += 1
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
            try:
                connection.request("GET", f"{PREFIX}/work?n={tag}")
                response = connection.getresponse()
                body = response.read().decode("ascii", "replace")
                match = re.fullmatch(r"pid=(\d+) n=(\S+)", body)
                if response.status != 200 or match is None or match[2] != tag:
                    problem = f"{tag}: {response.status} {body[:200]!r}"
                    self._fail(problem)
                    continue
                with self._lock:
                    pid = int(match[1])
                    self.served[pid] = self.served.get(pid, 0) + 1
            except (OSError, http.client.HTTPException) as error:
                self._fail(f"{tag}: {type(error).__name__}: {error}")
            finally:
                connection.close()

    def _fail(self, problem: str) -> None:
        with self._lock:
            self.failures.append((time.monotonic(), problem))


class FailoverTests(SynchronousTestCase):
    """Two backends behind nginx, restarted one after the other under load."""

    def setUp(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="scgi-fo-"))
        self.addCleanup(shutil.rmtree, self.directory, True)
        (self.directory / "scgi_failover_app.py").write_text(APPLICATION)
        self.backends = [_Backend(name, self.directory) for name in ("a", "b")]
        for backend in self.backends:
            self.addCleanup(backend.kill)

    def diagnostics(self, load: _Load) -> str:
        """Return what went wrong and the logs."""
        parts = [f"failures: {load.failures[:20]}", f"served: {load.served}"]
        parts.append(f"== nginx error.log\n{_tail(self.directory / 'error.log')}")
        parts += [backend.output() for backend in self.backends]
        return "\n".join(parts)

    def restart(self, backend: _Backend, load: _Load) -> str:
        """SIGTERM ``backend`` under load, wait for its exit, start it again.

        :returns: the stopped generation's log.
        """
        before = load.total()
        status = backend.stop()
        log = backend.logs[-1].read_text(errors="replace")
        self.assertIn(status, (0, -signal.SIGTERM), log)
        self.assertIn("Main loop terminated.", log)
        self.assertNotIn("Traceback", log)
        self.assertFalse(backend.socket.exists())
        time.sleep(0.5)  # down for a while: nginx must pass its share on
        backend.start()
        time.sleep(1.0)  # the new process takes its share again
        self.assertGreater(load.total(), before, "no request was served meanwhile")
        return log

    def test_restartEachBackendUnderLoad(self) -> None:
        """SIGTERM and restart each backend in turn under load: no request fails.

        Both stopped processes had requests in flight when the signal came (they
        logged the drain), and both restarted processes served requests afterwards.
        """
        for backend in self.backends:
            backend.start()
        nginx = _Frontend(self.directory, self.backends)
        self.addCleanup(nginx.stop)
        load = _Load(nginx.port)
        load.start(CLIENTS)
        try:
            time.sleep(1.0)
            logs = [self.restart(backend, load) for backend in self.backends]
            time.sleep(0.5)
        finally:
            load.stop()
        message = self.diagnostics(load)
        self.assertEqual(load.failures, [], message)
        self.assertGreater(load.total(), 200, message)
        for backend in self.backends:
            first, second = backend.generations
            self.assertGreater(load.served.get(first, 0), 0, message)
            self.assertGreater(load.served.get(second, 0), 0, message)
        for log in logs:
            self.assertRegex(log, r"Waiting up to \S+ s for \d+ connection", message)
            self.assertNotIn("Grace period over", log)
