"""Tests for ``twistd scgi --workers N`` (:mod:`scgi_twisted._workers`, ``_worker``).

Strategy:

* :class:`WorkerOptionsTests` and :class:`WorkerCommandLineTests` check, in process,
  the ``--workers`` option, the service it builds, the workers' command line and
  environment.
* :class:`WorkersTests` runs the real command, ``twistd -n scgi --workers 2``, as a
  subprocess listening on a unix socket in a temporary directory, with the
  application in :data:`WORKERS_APPLICATION`: it answers with the pid of the worker that
  served, can answer after a delay without blocking (``/delay/SECONDS``), can hold
  its worker blocked in ``render`` until the test releases it (``/hold/NAME``: a
  held worker cannot accept, so the test, not the kernel's choice between idle
  workers, decides which one serves), and can hold a request open until the test
  creates a file (``/until/NAME``), which keeps a request in flight for exactly as
  long as a test needs.  Worker pids are read from the
  supervisor's log; every pid seen is killed (if it is still a worker) when the test
  ends, after the supervisor itself.

Nothing here skips.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

from twisted.application.service import IServiceCollection
from twisted.internet.testing import MemoryReactor
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from scgi_twisted import _worker, _workers, tap

from .support.processes import (
    DEADLINE,
    STOPPED,
    Supervised,
    isWorker,
    temporaryDirectory,
    waitUntil,
)
from .support.scgi import Response


class Background:
    """Requests sent over and over from a thread, counting what failed.

    :ivar ok: how many got ``200 OK``.
    :ivar failures: a description of each that did not.
    :ivar pids: the pids that answered.
    """

    def __init__(self, send: Callable[[], Response]) -> None:
        self._send = send
        self.ok = 0
        self.failures: list[str] = []
        self.pids: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                response = self._send()
            except Exception as error:
                self.failures.append(f"{type(error).__name__}: {error}")
                continue
            if response.status == b"200 OK":
                self.ok += 1
                self.pids.add(int(response.body))
            else:
                self.failures.append(f"status {response.status!r}")

    @contextlib.contextmanager
    def running(self) -> Iterator[Background]:
        """Send requests while the block runs."""
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(DEADLINE)


class Pending:
    """One request sent from a thread, its answer collected later."""

    def __init__(self, send: Callable[[], Response]) -> None:
        self.result: Response | BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(send,), daemon=True)
        self._thread.start()

    def _run(self, send: Callable[[], Response]) -> None:
        try:
            self.result = send()
        except BaseException as error:
            self.result = error

    def done(self) -> bool:
        """Return whether the answer (or an error) came."""
        return not self._thread.is_alive()

    def response(self) -> Response:
        """Wait for the answer and return it; fail on an error."""
        self._thread.join(DEADLINE)
        result = self.result
        if not isinstance(result, Response):
            raise AssertionError(f"the request failed: {result!r}")
        return result


class WorkerOptionsTests(SynchronousTestCase):
    """``--workers`` is parsed, and selects the supervisor."""

    def parse(self, *arguments: str) -> tap.Options:
        """Parse ``twistd scgi`` options."""
        options = tap.Options()
        options.parseOptions(list(arguments))
        return options

    def test_workersValue(self) -> None:
        """``--workers N`` is a whole number; anything else is a usage error."""
        self.assertEqual(self.parse("--workers", "3")["workers"], 3)
        for bad in ("-1", "two", "1.5", ""):
            with self.assertRaises(usage.UsageError) as caught:
                self.parse("--workers", bad)
            self.assertTrue(str(caught.exception).startswith("--workers: "))

    def test_argumentsKept(self) -> None:
        """The options are kept as given, for the workers to parse again."""
        arguments = ["--workers", "2", "--listen", "unix:/tmp/x.sock", "--timeout=5"]
        self.assertEqual(self.parse(*arguments).arguments, arguments)

    def test_zeroServesInProcess(self) -> None:
        """Without ``--workers`` (or with 0) the site is served in this process."""
        for arguments in ([], ["--workers", "0"]):
            made = tap.makeService(self.parse(*arguments), MemoryReactor())
            self.assertIsInstance(made, tap.SCGIService)

    def test_supervisor(self) -> None:
        """With ``--workers N`` the service is a supervisor of N workers.

        It is given every ``--listen`` and the options as given; building it listens
        nowhere (binding waits for the service to start).
        """
        reactor = MemoryReactor()
        arguments = [
            "--workers",
            "3",
            "--listen",
            "unix:/tmp/a.sock",
            "--listen",
            "tcp:0:interface=127.0.0.1",
            "--grace-period",
            "4",
        ]
        made = tap.makeService(self.parse(*arguments), reactor)
        self.assertNotIsInstance(made, tap.SCGIService)
        (supervisor,) = list(IServiceCollection(made))
        assert isinstance(supervisor, _workers.Supervisor)
        self.assertEqual(supervisor.count, 3)
        self.assertEqual(
            supervisor.listen, ["unix:/tmp/a.sock", "tcp:0:interface=127.0.0.1"]
        )
        self.assertEqual(supervisor.arguments, arguments)
        self.assertEqual(supervisor.gracePeriod, 4.0)
        self.assertEqual(reactor.tcpServers, [])
        self.assertEqual(reactor.unixServers, [])

    def test_unparsedOptions(self) -> None:
        """Options never parsed with ``parseOptions`` cannot be passed to workers."""
        options = tap.Options()
        options["workers"] = 2
        with self.assertRaises(ValueError):
            tap.makeService(options, MemoryReactor())


class WorkerCommandLineTests(SynchronousTestCase):
    """How the supervisor describes the sockets and the options to a worker."""

    def test_socketRoundTrip(self) -> None:
        """A ``--socket`` value names the descriptor, family, backlog and endpoint."""
        for family in (socket.AF_INET, socket.AF_INET6, socket.AF_UNIX):
            inherited = _worker.InheritedSocket(5, family, 128, "unix:/a:mode=600")
            parsed = _worker.InheritedSocket.parse(inherited.argument())
            self.assertEqual(parsed, inherited)

    def test_badSocket(self) -> None:
        """A ``--socket`` value with an unknown family or no backlog is refused."""
        for bad in ("4:ipx:50:x", "4:unix", "four:unix:50:x"):
            with self.assertRaises(ValueError):
                _worker.InheritedSocket.parse(bad)

    def test_parseArguments(self) -> None:
        """The worker's own options come before ``--``, the scgi options after.

        ``--reactor`` is optional: without it the worker runs the default reactor.
        """
        number, sockets, options, reactor = _worker.parseArguments(
            [
                "--worker",
                "2",
                "--socket",
                "4:inet:50:tcp:0",
                "--reactor",
                "asyncio",
                "--",
                "--listen",
                "x",
                "--",
            ]
        )
        self.assertEqual(number, 2)
        self.assertEqual(
            sockets, [_worker.InheritedSocket(4, socket.AF_INET, 50, "tcp:0")]
        )
        self.assertEqual(options, ["--listen", "x", "--"])
        self.assertEqual(reactor, "asyncio")
        self.assertIsNone(_worker.parseArguments(["--worker", "1", "--"])[3])
        for bad in (["--worker", "1"], ["--worker", "--"], ["--what", "1", "--"]):
            with self.assertRaises(ValueError):
                _worker.parseArguments(bad)

    def test_reactorName(self) -> None:
        """The supervisor names its reactor's kind for the workers' ``--reactor``.

        A reactor no installable reactor module made (a test's memory reactor) has
        no name: the workers then run the default reactor.
        """
        from twisted.internet import asyncioreactor, epollreactor, selectreactor

        self.assertEqual(
            _workers.reactorName(object.__new__(asyncioreactor.AsyncioSelectorReactor)),
            "asyncio",
        )
        self.assertEqual(
            _workers.reactorName(object.__new__(epollreactor.EPollReactor)), "epoll"
        )
        self.assertEqual(
            _workers.reactorName(object.__new__(selectreactor.SelectReactor)),
            "select",
        )
        self.assertIsNone(_workers.reactorName(MemoryReactor()))

    def test_workerOptionsIgnoreListen(self) -> None:
        """A worker ignores ``--listen`` (even ``systemd:`` ones) and ``--workers``.

        Without systemd's variables ``twistd scgi`` refuses a ``systemd:`` endpoint;
        the worker, which is passed the socket by its supervisor, must not.
        """
        arguments = ["--listen", "systemd:domain=UNIX:index=0", "--workers", "2"]
        with self.assertRaises(usage.UsageError):
            tap.Options().parseOptions(arguments)
        options = _worker.WorkerOptions()
        options.parseOptions([*arguments, "--timeout", "7"])
        self.assertEqual(options["timeout"], 7.0)
        self.assertFalse(options.get("workers"))

    def test_environment(self) -> None:
        """Workers get our import path, and none of systemd's variables."""
        self.patch(os, "environ", dict(os.environ))
        os.environ.update(
            NOTIFY_SOCKET="/run/x",
            LISTEN_FDS="1",
            LISTEN_PID="1",
            LISTEN_FDNAMES="a",
            SCGI_TEST_KEPT="yes",
        )
        env = _workers._workerEnvironment()
        for name in ("NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):
            self.assertNotIn(name, env)
        self.assertEqual(env["SCGI_TEST_KEPT"], "yes")
        path = env["PYTHONPATH"].split(os.pathsep)
        for entry in sys.path:
            self.assertIn(os.path.abspath(entry or os.curdir), path)


class WorkersTests(SynchronousTestCase):
    """``twistd -n scgi --workers 2`` serves, survives, reloads and stops cleanly."""

    def test_twoWorkersServe(self) -> None:
        """Two worker processes serve at once, and their logs reach one log, once.

        While one worker is blocked, the other answers; the two pids are the two
        workers the supervisor started, children of the supervisor.  Each worker's
        log lines (its ``ready`` line, its "Serving ... on" line naming the socket it
        serves, an access-log line, a ``print``) appear in the supervisor's output
        exactly once, under the worker's name.
        """
        supervised = Supervised(self)
        started = supervised.started(1)
        self.assertEqual(sorted(started), [1, 2])
        self.assertEqual(supervised.servingPids(), set(started.values()))
        for pid in started.values():
            with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            self.assertEqual(parent, supervised.pid)
        served = int(supervised.get("/print/unique-path-7f3a").body)
        slot = next(s for s, pid in started.items() if pid == served)
        name = rf"\[worker {slot} pid {served}\]"
        supervised.waitForLog(name + r".*GET /print/unique-path-7f3a HTTP/1\.1")
        supervised.waitForLog(name + rf".*printed by {served}")
        output = supervised.output()
        self.assertEqual(output.count("GET /print/unique-path-7f3a"), 1, output)
        self.assertEqual(output.count(f"printed by {served}"), 1, output)
        for slot, pid in started.items():
            ready = f"[worker {slot} pid {pid}] [scgi_twisted._worker#info] Worker"
            self.assertEqual(output.count(f"{ready} {slot} (pid {pid}) ready"), 1)
            serving = (
                f"[worker {slot} pid {pid}] [scgi_twisted.tap#info] Serving the "
                "resource scgi_workers_app.root over SCGI on "
                f"unix:{supervised.socketPath}:mode=600\n"
            )
            self.assertEqual(output.count(serving), 1, output)
        self.assertIn(supervised.server.stop(), STOPPED, supervised.output())

    def test_reactor(self) -> None:
        """Under ``twistd --reactor asyncio`` every worker runs the asyncio reactor.

        Each worker answers with its pid and the module of the reactor it runs; both
        workers are seen (each answers while the other is held).
        """
        supervised = Supervised(self, twistd=("--reactor", "asyncio"))
        started = supervised.started(1)
        seen: dict[int, str] = {}
        for alone in supervised.eachAlone():
            pid, module = supervised.get("/reactor").body.decode().split()
            self.assertEqual(int(pid), alone)
            seen[alone] = module
        self.assertEqual(set(seen), set(started.values()))
        self.assertEqual(set(seen.values()), {"twisted.internet.asyncioreactor"})
        self.assertIn(supervised.server.stop(), STOPPED, supervised.output())

    def test_accessLogFile(self) -> None:
        """With ``--access-log FILE`` each request is one whole line, written once.

        Both workers append to the same file.  After logrotate's rename, ``SIGUSR1``
        to the supervisor makes every worker reopen the file: later requests go to
        the new file, earlier ones stay in the renamed one.
        """
        directory = temporaryDirectory(self)
        path = directory / "access.log"
        supervised = Supervised(self, "--access-log", str(path))
        started = supervised.started(1)

        def eachServes(prefix: str, perWorker: int) -> int:
            """Send ``perWorker`` requests to each worker alone; return how many."""
            sent = 0
            pids = set()
            for pid in supervised.eachAlone():
                pids.add(pid)
                for _ in range(perWorker):
                    response = supervised.get(f"/{prefix}/{sent}")
                    self.assertEqual(int(response.body), pid)
                    sent += 1
            self.assertEqual(pids, set(started.values()))
            return sent

        count = eachServes("before", 20)

        def lines(name: Path, prefix: str) -> list[str]:
            if not name.exists():
                return []
            return [
                line
                for line in name.read_text().splitlines()
                if f"GET /{prefix}/" in line
            ]

        waitUntil(lambda: len(lines(path, "before")) >= count, "the lines written")
        before = lines(path, "before")
        uris = sorted(int(line.split(" /before/")[1].split()[0]) for line in before)
        self.assertEqual(uris, list(range(count)))
        for line in before:
            self.assertRegex(line, r'^"203\.0\.113\.9" - - \[[^]]+\] "GET /before/')
        rotated = directory / "access.log.1"
        path.rename(rotated)
        os.kill(supervised.pid, signal.SIGUSR1)
        time.sleep(0.5)  # the signal travels supervisor -> workers
        after = eachServes("after", 10)
        waitUntil(lambda: len(lines(path, "after")) >= after, "the new file's lines")
        self.assertEqual(len(lines(path, "after")), after)
        self.assertEqual(lines(path, "before"), [])
        self.assertEqual(len(lines(rotated, "before")), count)
        self.assertEqual(lines(rotated, "after"), [])
        self.assertIn(supervised.server.stop(), STOPPED, supervised.output())
        self.assertEqual(supervised.allPids(), set(started.values()))

    def test_workerRestarted(self) -> None:
        """A worker killed with SIGKILL is replaced; the service goes on throughout.

        Of the requests sent one after another all along, only the one the killed
        worker may have had in flight can fail; every request after the kill
        succeeds (the survivor serves alone until the replacement is ready), and
        afterwards the survivor and the replacement both serve.
        """
        supervised = Supervised(self)
        started = supervised.started(1)
        victim, survivor = started[1], started[2]
        with Background(lambda: supervised.get("/")).running() as load:
            waitUntil(lambda: load.ok >= 20, "requests before the kill")
            os.kill(victim, signal.SIGKILL)
            okAtKill = load.ok
            supervised.waitForLog(
                rf"Worker 1 \(pid {victim}\) exited unexpectedly \(killed by SIGKILL\)"
            )
            supervised.waitForLog(r"Started worker 1 ", count=2)
            replacement = supervised.started()[1]
            self.assertNotEqual(replacement, victim)
            supervised.waitForLog(rf"Worker 1 \(pid {replacement}\) ready")
            failuresAtRestart = len(load.failures)
            okAfterRestart = load.ok
            waitUntil(lambda: load.ok >= okAfterRestart + 20, "requests after")
        self.assertGreater(okAfterRestart, okAtKill, "nothing served meanwhile")
        self.assertLessEqual(len(load.failures), 1, load.failures)
        self.assertEqual(len(load.failures), failuresAtRestart, load.failures)
        self.assertEqual(supervised.servingPids(), {survivor, replacement})
        self.assertIn(supervised.server.stop(), STOPPED, supervised.output())

    def test_reload(self) -> None:
        """SIGHUP: new workers serve, old ones finish their requests, nothing fails.

        A request in flight on an old worker when the reload happens completes with
        200 from that old worker after the old workers were told to stop; requests
        sent all along all succeed; then only the new generation serves, and the old
        workers exit with status 0.
        """
        supervised = Supervised(self)
        old = supervised.started(1)
        inFlight = Pending(lambda: supervised.get("/until/go-reload"))
        time.sleep(0.3)
        with Background(lambda: supervised.get("/")).running() as load:
            os.kill(supervised.pid, signal.SIGHUP)
            supervised.waitForLog(r"Reloaded: generation 2 serves")
            new = supervised.started(2)
            self.assertEqual(sorted(new), [1, 2])
            self.assertFalse(set(new.values()) & set(old.values()))
            supervised.waitForLog(r"Worker \d stopping \(received SIGTERM\)", count=2)
            self.assertFalse(inFlight.done(), "the request did not stay in flight")
            supervised.release("go-reload")
            response = inFlight.response()
            okAfterReload = load.ok
            waitUntil(
                lambda: load.ok >= okAfterReload + 20,
                "requests after",
                lambda: f"{load.ok} {load.failures}\n{supervised.output()}",
            )
        self.assertEqual(response.status, b"200 OK")
        self.assertIn(int(response.body), old.values())
        self.assertEqual(load.failures, [])
        for slot, pid in old.items():
            supervised.waitForLog(
                rf"Worker {slot} \(pid {pid}, generation 1\) stopped: exit status 0"
            )
        self.assertEqual(supervised.servingPids(), set(new.values()))
        self.assertIn(supervised.server.stop(), STOPPED, supervised.output())
        self.assertNotIn("Traceback", supervised.output())

    def test_failedReload(self) -> None:
        """A reload whose new workers cannot start leaves the old workers serving.

        The new workers' error (here a syntax error in the application) is in the
        supervisor's log.
        """
        supervised = Supervised(self)
        old = supervised.started(1)
        (supervised.directory / "scgi_workers_app.py").write_text("root = (\n")
        os.kill(supervised.pid, signal.SIGHUP)
        supervised.waitForLog(r"Reload failed, worker \d \(pid \d+\) of the new")
        supervised.waitForLog(r"\[worker \d pid \d+\] .*could not load the application")
        supervised.waitForLog(r"\[worker \d pid \d+\] .*SyntaxError")
        self.assertEqual(supervised.servingPids(), set(old.values()))
        self.assertIn(supervised.server.stop(), STOPPED, supervised.output())

    def test_stop(self) -> None:
        """SIGTERM: in-flight requests complete, then every process exits cleanly.

        The workers stop accepting at once (the socket file is removed) but the
        request in flight gets its answer; the supervisor exits as ``twistd`` does
        after a clean stop, and no worker is left.
        """
        supervised = Supervised(self, "--grace-period", "20")
        workers = supervised.started(1)
        inFlight = Pending(lambda: supervised.get("/until/go-stop"))
        time.sleep(0.3)
        supervised.server.process.send_signal(signal.SIGTERM)
        supervised.waitForLog(r"Worker \d stopping \(received SIGTERM\)", count=2)
        waitUntil(lambda: not supervised.socketPath.exists(), "socket removed")
        self.assertFalse(inFlight.done(), "the request did not stay in flight")
        supervised.release("go-stop")
        self.assertEqual(inFlight.response().status, b"200 OK")
        status = supervised.server.process.wait(DEADLINE)
        output = supervised.output()
        self.assertIn(status, STOPPED, output)
        self.assertIn("Main loop terminated.", output)
        self.assertNotIn("Traceback", output)
        self.assertNotIn("killing it", output)
        for pid in workers.values():
            self.assertFalse(isWorker(pid), f"worker {pid} outlived the supervisor")

    def test_orphanedWorkersStop(self) -> None:
        """Workers whose supervisor was killed (SIGKILL) stop by themselves."""
        supervised = Supervised(self)
        workers = supervised.started(1)
        supervised.server.process.kill()
        supervised.server.process.wait(DEADLINE)
        for pid in workers.values():
            waitUntil(partial(lambda p: not isWorker(p), pid), f"worker {pid} to exit")

    def test_socketModeKept(self) -> None:
        """The workers keep the unix socket's ``mode=``: they do not reset it."""
        supervised = Supervised(self)
        supervised.servingPids()
        self.assertEqual(Path(supervised.socketPath).stat().st_mode & 0o777, 0o600)
        self.assertIn(supervised.server.stop(), STOPPED, supervised.output())
