"""Servers in subprocesses: twistd runs, supervised workers, SCGI over a socket.

:class:`Server` runs a ``twistd`` or ``twist`` command (:data:`TWISTD`,
:data:`TWIST`) with :func:`environment`, its output collected in a file;
:class:`Supervised` runs ``twistd -n scgi --workers N`` on
:data:`WORKERS_APPLICATION` and reads its log.  :func:`request` and :func:`exchange`
send one SCGI request over a socket as a frontend does, and read the whole answer.
"""

from __future__ import annotations

import contextlib
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
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from .scgi import BASE, Response, buildRequest, replace

__all__ = [
    "DEADLINE",
    "ROOT",
    "STARTED",
    "STOPPED",
    "TWIST",
    "TWISTD",
    "WORKERS_APPLICATION",
    "Address",
    "Held",
    "Server",
    "Supervised",
    "connectRetrying",
    "environment",
    "exchange",
    "isWorker",
    "request",
    "temporaryDirectory",
    "waitUntil",
]

ROOT = Path(__file__).resolve().parents[2]
"""The checkout."""

TWISTD = [
    sys.executable,
    "-c",
    "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; "
    "sys.exit(run())",
]
"""The ``twistd`` command, without relying on ``PATH``."""


TWIST = [sys.executable, "-m", "twisted"]
"""The ``twist`` command (``python -m twisted`` is ``twist``, not ``twistd``)."""


STOPPED = (0, -signal.SIGTERM)
"""The exit statuses of a server stopped cleanly by SIGTERM."""


DEADLINE = 30.0
"""Seconds to wait for a server to start or stop, or for a command to finish."""


Address = tuple[socket.AddressFamily, Any]


def environment(*paths: str) -> dict[str, str]:
    """Return the environment for a subprocess: ``paths`` and the checkout first."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("LISTEN_")
    }
    entries = [*paths, str(ROOT)]
    if env.get("PYTHONPATH"):
        entries.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(entries)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def temporaryDirectory(case: SynchronousTestCase) -> Path:
    """Make a short-named directory (unix socket paths are short), removed after."""
    path = Path(tempfile.mkdtemp(prefix="scgi-"))
    case.addCleanup(shutil.rmtree, path, True)
    return path


def connectRetrying(address: Address, deadline: float) -> socket.socket:
    """Connect to ``address``, retrying while nothing listens, until ``deadline``."""
    family, where = address
    while True:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(DEADLINE)
        try:
            sock.connect(where)
        except (ConnectionRefusedError, FileNotFoundError):
            sock.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
        else:
            return sock


def exchange(
    address: Address,
    pairs: Sequence[tuple[bytes, bytes]] = BASE,
    body: bytes = b"",
    shutdownWrite: bool = False,
) -> bytes:
    """Send one SCGI request as a frontend does and return every byte of the answer.

    Like nginx, keep sending open until the answer has been read, unless
    ``shutdownWrite``.
    """
    with connectRetrying(address, time.monotonic() + DEADLINE) as sock:
        sock.sendall(buildRequest(pairs, body))
        if shutdownWrite:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def request(address: Address, uri: bytes = b"/", body: bytes = b"") -> Response:
    """Send a GET (or a POST, with ``body``) for ``uri`` and parse the answer."""
    method = b"POST" if body else b"GET"
    pairs = replace(BASE, REQUEST_URI=uri, REQUEST_METHOD=method)
    return Response(exchange(address, pairs, body))


class Server:
    """A ``twistd``/``twist`` subprocess, its output collected in a file.

    :ivar directory: its working directory.
    :ivar process: the process.
    """

    def __init__(
        self,
        case: SynchronousTestCase,
        directory: Path,
        command: Sequence[str],
        passFds: Sequence[int] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.directory = directory
        self._output = directory / "output.txt"
        with open(self._output, "wb") as output:
            self.process = subprocess.Popen(
                list(command),
                cwd=directory,
                env=environment(str(directory)) if env is None else env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                pass_fds=tuple(passFds),
            )
        case.addCleanup(self._kill)

    def output(self) -> str:
        """Return everything the process wrote so far."""
        return self._output.read_text(encoding="utf-8", errors="replace")

    def waitFor(self, pattern: str) -> re.Match[str]:
        """Wait until the output matches ``pattern``; fail if the process ends first."""
        deadline = time.monotonic() + DEADLINE
        compiled = re.compile(pattern)
        while True:
            match = compiled.search(self.output())
            if match is not None:
                return match
            if self.process.poll() is not None:
                raise AssertionError(
                    f"the server exited ({self.process.returncode}) before "
                    f"{pattern!r}:\n{self.output()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"no {pattern!r} in time:\n{self.output()}")
            time.sleep(0.05)

    def stop(self) -> int:
        """Send SIGTERM and return the exit status.

        After an orderly shutdown, ``twistd`` and ``twist`` end by the signal that
        stopped them (status ``-SIGTERM``), as a service manager expects.
        """
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(DEADLINE)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"the server ignored SIGTERM:\n{self.output()}"
            ) from None

    def _kill(self) -> None:
        """Kill the process if a test left it running."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(DEADLINE)


WORKERS_APPLICATION = '''
"""The application the --workers tests serve: it tells which process served."""

import os
import time

from twisted.internet import reactor
from twisted.internet.task import LoopingCall
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET


class Pid(Resource):
    isLeaf = True

    def render(self, request):
        request.setHeader(b"content-type", b"text/plain")
        path = request.postpath
        pid = b"%d" % os.getpid()
        if path[:1] == [b"hold"]:
            # Blocks this worker (so it cannot accept) until the test creates the
            # file; the marker tells the test which worker is held.
            name = path[1].decode()
            with open(name + ".tmp", "wb") as marker:
                marker.write(pid)
            os.replace(name + ".tmp", name + ".pid")
            deadline = time.monotonic() + 60
            while not os.path.exists(name) and time.monotonic() < deadline:
                time.sleep(0.01)
        elif path[:1] == [b"until"]:
            name = path[1].decode()

            def check():
                if os.path.exists(name):
                    poll.stop()
                    if not request._disconnected:
                        request.write(pid)
                        request.finish()

            poll = LoopingCall(check)
            poll.start(0.02)
            return NOT_DONE_YET
        elif path[:1] == [b"delay"]:

            def answer():
                if not request._disconnected:
                    request.write(pid)
                    request.finish()

            reactor.callLater(float(path[1]), answer)
            return NOT_DONE_YET
        elif path[:1] == [b"print"]:
            print("printed by", os.getpid())
        elif path[:1] == [b"reactor"]:
            return b"%s %s" % (pid, type(reactor).__module__.encode())
        return pid


root = Pid()
'''


class Held:
    """A ``/hold/NAME`` request, sent from a thread, holding the worker that took it.

    :ivar pid: the held worker's pid.
    """

    def __init__(self, supervised: Supervised, name: str) -> None:
        """Send the request and wait until a worker holds it."""
        self._flag = supervised.directory / name
        self._result: Response | BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(supervised, f"/hold/{name}"), daemon=True
        )
        self._thread.start()
        marker = supervised.directory / f"{name}.pid"
        waitUntil(marker.exists, f"a worker holding {name}", supervised.output)
        self.pid = int(marker.read_text())

    def _run(self, supervised: Supervised, path: str) -> None:
        try:
            self._result = supervised.get(path)
        except BaseException as error:
            self._result = error

    def release(self) -> None:
        """Let the worker go; its answer must be ``200 OK`` with its pid."""
        self._flag.touch()
        self._thread.join(DEADLINE)
        result = self._result
        assert isinstance(result, Response), result
        assert result.status == b"200 OK", result.status
        assert int(result.body) == self.pid, (result.body, self.pid)


STARTED = re.compile(r"Started worker (\d+) \(pid (\d+), generation (\d+)\)")
"""The supervisor's log line for each worker it starts."""


def isWorker(pid: int) -> bool:
    """Return whether ``pid`` is a running scgi_twisted worker (not a zombie)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            command = file.read()
        with open(f"/proc/{pid}/stat", "rb") as file:
            state = file.read().rsplit(b")", 1)[1].split()[0]
    except OSError:
        return False
    return b"scgi_twisted._worker" in command and state != b"Z"


def waitUntil(
    condition: Callable[[], bool], what: str, output: Callable[[], str] = str
) -> None:
    """Poll ``condition`` until it holds; fail after :data:`DEADLINE` seconds."""
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not in {DEADLINE:g} s\n{output()}")
        time.sleep(0.05)


class Supervised:
    """A ``twistd -n scgi --workers N`` subprocess and what its log says.

    :ivar server: the subprocess.
    :ivar address: its unix socket.
    :ivar directory: its working directory.
    """

    def __init__(
        self,
        case: SynchronousTestCase,
        *arguments: str,
        workers: int = 2,
        env: dict[str, str] | None = None,
        twistd: tuple[str, ...] = (),
    ) -> None:
        """Start it and wait until every worker serves.

        ``arguments`` follow ``scgi``; ``twistd`` precede it (such as ``--reactor``).
        """
        self.directory = temporaryDirectory(case)
        (self.directory / "scgi_workers_app.py").write_text(WORKERS_APPLICATION)
        self.socketPath = self.directory / "scgi.sock"
        self.address: Address = (socket.AF_UNIX, str(self.socketPath))
        self.workers = workers
        self._holds = 0
        case.addCleanup(self.killWorkers)
        self.server = Server(
            case,
            self.directory,
            [
                *TWISTD,
                *twistd,
                "-n",
                "--pidfile=",
                "scgi",
                "--workers",
                str(workers),
                "--listen",
                f"unix:{self.socketPath}:mode=600",
                "--resource",
                "scgi_workers_app.root",
                *arguments,
            ],
            env=environment(str(self.directory)) if env is None else env,
        )
        self.waitForLog(rf"All {workers} worker\(s\) serve")

    @property
    def pid(self) -> int:
        """The supervisor's pid."""
        return self.server.process.pid

    def output(self) -> str:
        """Everything the supervisor wrote so far."""
        return self.server.output()

    def started(self, generation: int | None = None) -> dict[int, int]:
        """Return ``{slot: pid}`` of the workers started (of one generation)."""
        found: dict[int, int] = {}
        for slot, pid, gen in STARTED.findall(self.output()):
            if generation is None or int(gen) == generation:
                found[int(slot)] = int(pid)
        return found

    def allPids(self) -> set[int]:
        """Every worker pid the supervisor ever started."""
        return {int(pid) for _, pid, _ in STARTED.findall(self.output())}

    def waitForLog(self, pattern: str, count: int = 1) -> None:
        """Wait until ``pattern`` occurs ``count`` times in the supervisor's log."""
        compiled = re.compile(pattern)

        def found() -> bool:
            if self.server.process.poll() is not None:
                raise AssertionError(
                    f"the supervisor exited ({self.server.process.returncode}) "
                    f"before {pattern!r}:\n{self.output()}"
                )
            return len(compiled.findall(self.output())) >= count

        waitUntil(found, f"{pattern!r} x{count}", self.output)

    def killWorkers(self) -> None:
        """Kill every worker still running (by pid, after checking it is one)."""
        for pid in self.allPids():
            if isWorker(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def get(self, path: str) -> Response:
        """Send ``GET path`` over the unix socket."""
        return request(self.address, path.encode())

    def release(self, name: str) -> None:
        """Let the ``/until/NAME`` requests finish."""
        (self.directory / name).touch()

    def hold(self, name: str) -> Held:
        """Block one idle worker in ``render`` (``/hold/NAME``) until released.

        A held worker cannot accept, so while one is held every new connection
        goes to another: the tests choose which worker serves without racing the
        kernel's choice between idle workers.
        """
        return Held(self, name)

    def eachAlone(self) -> Iterator[int]:
        """Yield each worker's pid while that worker alone accepts.

        Every worker is held; then each in turn is released, the caller's loop body
        runs (new connections can only go to it), and it is held again (which can
        only land on it) before the next one's turn.
        """
        self._holds += 1
        prefix = f"alone-{self._holds}"
        held = [self.hold(f"{prefix}-{index}") for index in range(self.workers)]
        for index, each in enumerate(held):
            each.release()
            yield each.pid
            held[index] = self.hold(f"{prefix}-{index}-again")
            assert held[index].pid == each.pid, (held[index].pid, each.pid)
        for each in held:
            each.release()

    def servingPids(self) -> set[int]:
        """Return the pids of the workers that accept now.

        One worker after another is held: each hold can only land on a worker not
        held yet, so ``workers`` holds name every worker that accepts.
        """
        self._holds += 1
        held = [
            self.hold(f"serving-{self._holds}-{index}") for index in range(self.workers)
        ]
        pids = {each.pid for each in held}
        for each in held:
            each.release()
        return pids
