"""Run a real HTTP frontend in front of a real scgi_twisted backend, for tests.

A *stack* is one backend process (``python -m tests.e2e_app``) and one frontend
process (nginx today; Apache and lighttpd are meant to follow) configured from the
templates in ``docs/deploy/``, so that the deployment documentation and the tests share
one source.  Everything a stack writes (configuration, pid file, logs, temporary files,
the unix socket) lives in one private temporary directory, removed when the stack
stops (set ``SCGI_E2E_KEEP=1`` to keep it).

Rules the fixture follows:

* **No fixed ports.**  The backend listens on ``tcp:0`` and reports the bound port in
  its ready file; the frontend gets a free loopback port and is restarted on another
  one if that port was taken in the meantime.
* **A missing frontend fails the test**, with a message naming the package to install;
  it never skips.
* **Processes are stopped by pid**: ``SIGTERM``, a wait, then ``SIGKILL`` to the
  process group the fixture created for it.
* **Logs are kept**: :meth:`Stack.diagnostics` returns the tail of every log, and
  :class:`FrontendTestMixin` prints it when a test fails.

Adding a frontend means subclassing :class:`Frontend`: name its executable, its main
template, and write :meth:`Frontend.writeConfig` and :meth:`Frontend.command`.
Tests then describe what they need with a :class:`StackSpec` and mix
:class:`FrontendTestMixin` into a ``SynchronousTestCase``::

    class NginxTCPTests(NginxTestsMixin, SynchronousTestCase):
        stackSpec = StackSpec(Nginx, "nginx-scgi.conf.in", BackendSpec("tcp"))

Stacks start lazily on a test's ``setUp`` and are shared by every test of a class.
Only one runs at a time: starting a stack stops the others (trial has no
``tearDownClass``; pytest's stops the class's stack early).  An ``atexit`` hook stops
whatever is still running.
"""

from __future__ import annotations

import abc
import atexit
import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from zope.interface import directlyProvides, providedBy

if TYPE_CHECKING:
    from twisted.trial.unittest import SynchronousTestCase

    _MixinBase = SynchronousTestCase
else:
    _MixinBase = object

__all__ = [
    "DEPLOY",
    "REPOSITORY",
    "Backend",
    "BackendSpec",
    "Frontend",
    "FrontendError",
    "FrontendTestMixin",
    "HTTPResult",
    "Nginx",
    "Stack",
    "StackSpec",
    "acquireStack",
    "freePort",
    "httpRequest",
    "httpResponse",
    "releaseStack",
    "renderTemplate",
]

REPOSITORY = Path(__file__).resolve().parent.parent
"""The root of the source tree."""

DEPLOY = REPOSITORY / "docs" / "deploy"
"""Where the configuration templates live."""

START_TIMEOUT = 30.0
"""How long a process may take to become ready, in seconds."""

STOP_TIMEOUT = 10.0
"""How long a process may take to exit after ``SIGTERM``, in seconds."""

_LOG_TAIL = 60
_PLACEHOLDER = re.compile(r"@([A-Z][A-Z0-9_]*)@")


class FrontendError(Exception):
    """A stack could not be started or stopped working; the message says why."""


# Small helpers.


def renderTemplate(template: Path, values: Mapping[str, str]) -> str:
    """Return ``template`` with every ``@NAME@`` placeholder replaced.

    Placeholders in comments are replaced too when ``values`` has them, and left
    alone otherwise.

    :param template: the template file.
    :param values: the replacement for each placeholder name.
    :raises FrontendError: if a line that is not a comment holds a placeholder
        ``values`` lacks.
    """
    text = template.read_text(encoding="utf-8")
    code = "\n".join(
        line for line in text.splitlines() if not line.lstrip().startswith("#")
    )
    missing = sorted(set(_PLACEHOLDER.findall(code)) - set(values))
    if missing:
        raise FrontendError(f"{template}: no value for the placeholders {missing}")
    return _PLACEHOLDER.sub(
        lambda match: values.get(match.group(1), match.group(0)), text
    )


def freePort() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _tail(path: Path, lines: int = _LOG_TAIL) -> str:
    """Return the last ``lines`` lines of a log file, or a note that it is missing."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        return f"({error.strerror})"
    kept = text.splitlines()[-lines:]
    return "\n".join(kept) if kept else "(empty)"


def _waitFor(
    condition: Callable[[], bool],
    what: str,
    process: _Process,
    timeout: float = START_TIMEOUT,
) -> None:
    """Poll ``condition`` until it holds; fail if ``process`` exits or time runs out.

    :raises FrontendError: on exit or timeout.
    """
    deadline = time.monotonic() + timeout
    delay = 0.005
    while not condition():
        if not process.alive():
            raise FrontendError(
                f"{process.name} exited with status {process.returncode} while "
                f"waiting for {what}"
            )
        if time.monotonic() > deadline:
            raise FrontendError(f"{process.name}: {what} took over {timeout:.0f} s")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def _accepts(port: int) -> bool:
    """Return whether something accepts TCP connections on 127.0.0.1:``port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        return probe.connect_ex(("127.0.0.1", port)) == 0


class _Process:
    """A child process in its own process group, its output going to a log file.

    :ivar name: a label for messages.
    :ivar log: the file receiving stdout and stderr.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log: Path,
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """Start the process."""
        self.name = name
        self.log = log
        self.argv = list(argv)
        with log.open("ab") as output:
            self._popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=None if env is None else dict(env),
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        """The process id (also its process group id)."""
        return self._popen.pid

    @property
    def returncode(self) -> int | None:
        """The exit status, or ``None`` while it runs."""
        return self._popen.poll()

    def alive(self) -> bool:
        """Return whether the process is still running."""
        return self._popen.poll() is None

    def stop(self) -> None:
        """Stop the process: ``SIGTERM``, wait, then ``SIGKILL`` its process group.

        The group is killed only while its leader is still unreaped, so that the
        group id cannot belong to anything else; a leader that exits on ``SIGTERM``
        (nginx's master) has stopped its workers itself.
        """
        if self._popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self._popen.send_signal(signal.SIGTERM)
        try:
            self._popen.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            sys.stderr.write(f"{self.name} (pid {self.pid}) ignored SIGTERM; killing\n")
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
            self._popen.wait()


# HTTP client.


@dataclass(frozen=True)
class HTTPResult:
    """A response as an HTTP client saw it.

    :ivar status: the status code.
    :ivar reason: the reason phrase.
    :ivar headers: every header line as ``(name, value)``, in order.
    :ivar body: the decoded (de-chunked) body.
    """

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def values(self, name: str) -> list[str]:
        """Return every value of the header ``name`` (any case), in order."""
        wanted = name.lower()
        return [value for key, value in self.headers if key.lower() == wanted]

    def header(self, name: str) -> str | None:
        """Return the last value of the header ``name``, or ``None`` if absent."""
        found = self.values(name)
        return found[-1] if found else None

    def json(self) -> Any:
        """Return the body parsed as JSON."""
        return json.loads(self.body)


@contextlib.contextmanager
def httpResponse(
    port: int,
    method: str,
    target: str,
    *,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes | None = None,
    timeout: float = 30.0,
) -> Iterator[http.client.HTTPResponse]:
    """Send one request to 127.0.0.1:``port`` and yield the unread response.

    ``Host`` is sent as ``127.0.0.1:<port>`` unless ``headers`` hold one; a header
    given twice is sent twice.
    """
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        extra = list(headers)
        skipHost = any(name.lower() == "host" for name, _ in extra)
        connection.putrequest(
            method, target, skip_host=skipHost, skip_accept_encoding=True
        )
        for name, value in extra:
            connection.putheader(name, value)
        if body is not None:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        yield connection.getresponse()
    finally:
        connection.close()


def httpRequest(
    port: int,
    method: str,
    target: str,
    *,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes | None = None,
    timeout: float = 30.0,
) -> HTTPResult:
    """Send one request to 127.0.0.1:``port`` and read the whole response.

    See :func:`httpResponse` for the parameters.
    """
    with httpResponse(
        port, method, target, headers=headers, body=body, timeout=timeout
    ) as response:
        data = response.read()
        return HTTPResult(
            response.status, response.reason, tuple(response.getheaders()), data
        )


# The backend.


@dataclass(frozen=True)
class BackendSpec:
    """How to run the backend.

    :ivar transport: listen on ``"tcp"`` (127.0.0.1, a free port) or ``"unix"``.
    :ivar mount: ``--mount``, for frontends that send no ``SCRIPT_NAME``.
    :ivar maxBodySize: ``--max-body-size``.
    """

    transport: Literal["tcp", "unix"]
    mount: str | None = None
    maxBodySize: int | None = None


class Backend:
    """A running ``python -m tests.e2e_app``.

    :ivar host: the TCP host, for a ``"tcp"`` backend.
    :ivar port: the bound TCP port, for a ``"tcp"`` backend.
    :ivar socketPath: the socket, for a ``"unix"`` backend.
    """

    host: str | None = None
    port: int | None = None
    socketPath: Path | None = None

    def __init__(self, spec: BackendSpec, directory: Path) -> None:
        """Start the backend and wait until it listens.

        :raises FrontendError: if it does not start.
        """
        self.spec = spec
        self.log = directory / "backend.log"
        ready = directory / "backend-ready.json"
        if spec.transport == "tcp":
            listen = "tcp:0:interface=127.0.0.1"
        else:
            socketPath = directory / "scgi.sock"
            if len(os.fsencode(socketPath)) > 100:
                raise FrontendError(f"the socket path is too long: {socketPath}")
            listen = f"unix:{socketPath}"
        argv = [sys.executable, "-m", "tests.e2e_app", "--listen", listen]
        argv += ["--ready-file", str(ready), "--data-dir", str(directory)]
        if spec.mount is not None:
            argv += ["--mount", spec.mount]
        if spec.maxBodySize is not None:
            argv += ["--max-body-size", str(spec.maxBodySize)]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(REPOSITORY), *filter(None, [env.get("PYTHONPATH")])]
        )
        env["PYTHONUNBUFFERED"] = "1"
        self.process = _Process("the backend", argv, self.log, cwd=REPOSITORY, env=env)
        try:
            _waitFor(ready.exists, "its ready file", self.process)
            info = json.loads(ready.read_text())
            if spec.transport == "tcp":
                self.host, self.port = info["tcp"][0]["host"], info["tcp"][0]["port"]
            else:
                self.socketPath = Path(info["unix"][0])
        except BaseException as error:
            self.process.stop()
            if isinstance(error, FrontendError):
                raise FrontendError(
                    f"{error}\n== {self.log}\n{_tail(self.log)}"
                ) from None
            raise

    def stop(self) -> None:
        """Stop the backend."""
        self.process.stop()

    def describe(self) -> str:
        """Return where the backend listens, for messages."""
        if self.socketPath is not None:
            return f"unix:{self.socketPath}"
        return f"{self.host}:{self.port}"


# Frontends.


class Frontend(abc.ABC):
    """One HTTP frontend process, configured from templates in ``docs/deploy/``.

    Subclasses name the executable and the main template and write the configuration
    and the command line; the base class finds the binary, picks a free port, starts
    the process, waits until it serves, and stops it.

    :cvar executable: the program's name, looked up on ``PATH`` and in ``/usr/sbin``.
    :cvar install: how to install it, for the message when it is missing.
    :cvar mainTemplate: the template of the main configuration file, in ``DEPLOY``.

    :ivar directory: the private directory of this frontend.
    :ivar siteTemplate: the site template, in ``DEPLOY``.
    :ivar backend: the backend the frontend passes requests to.
    :ivar prefix: the mount point, e.g. ``/app``.
    :ivar port: the port it listens on, once started.
    """

    executable: ClassVar[str]
    install: ClassVar[str]
    mainTemplate: ClassVar[str]

    port: int = 0
    _process: _Process | None = None

    def __init__(
        self, siteTemplate: str, backend: Backend, directory: Path, prefix: str
    ) -> None:
        """Prepare the frontend; :meth:`start` runs it."""
        self.siteTemplate = siteTemplate
        self.backend = backend
        self.directory = directory
        self.prefix = prefix

    @classmethod
    def findBinary(cls) -> str:
        """Return the path of the executable.

        :raises FrontendError: if it is not installed.
        """
        found = shutil.which(cls.executable)
        if found is None and os.access(f"/usr/sbin/{cls.executable}", os.X_OK):
            found = f"/usr/sbin/{cls.executable}"
        if found is None:
            raise FrontendError(
                f"{cls.executable} is not installed, and the end-to-end tests need it: "
                f"{cls.install} (it was looked for on PATH and in /usr/sbin)"
            )
        return found

    @property
    @abc.abstractmethod
    def logs(self) -> list[Path]:
        """The frontend's log files, for diagnostics."""

    @property
    @abc.abstractmethod
    def pidFile(self) -> Path:
        """The file the frontend writes its pid to once its sockets are bound."""

    @abc.abstractmethod
    def writeConfig(self, binary: str, port: int) -> Path:
        """Render the templates for listening on ``port``; return the main file."""

    @abc.abstractmethod
    def command(self, binary: str, config: Path) -> list[str]:
        """Return the command line running the frontend in the foreground."""

    def _logSizes(self) -> dict[Path, int]:
        """Return the current size of each log file (0 if missing)."""
        return {log: log.stat().st_size if log.exists() else 0 for log in self.logs}

    def addressInUse(self, since: Mapping[Path, int]) -> bool:
        """Return whether the logs, past ``since``, say the port was taken."""
        for log, offset in since.items():
            with contextlib.suppress(OSError), log.open("rb") as file:
                file.seek(offset)
                if b"Address already in use" in file.read():
                    return True
        return False

    def start(self, attempts: int = 5) -> None:
        """Start on a free loopback port and wait until it accepts connections.

        :raises FrontendError: if it does not start.
        """
        binary = self.findBinary()
        for _ in range(attempts):
            self.port = freePort()
            config = self.writeConfig(binary, self.port)
            self.pidFile.unlink(missing_ok=True)
            sizes = self._logSizes()
            self._process = process = _Process(
                self.executable,
                self.command(binary, config),
                self.directory / f"{self.executable}.out",
            )
            try:
                _waitFor(self.pidFile.exists, "its pid file", process)
                _waitFor(lambda: _accepts(self.port), "its port to accept", process)
            except FrontendError:
                process.stop()
                if self.addressInUse(sizes):
                    continue
                raise
            return
        raise FrontendError(f"{self.executable}: no free port after {attempts} tries")

    def alive(self) -> bool:
        """Return whether the frontend process is running."""
        return self._process is not None and self._process.alive()

    def stop(self) -> None:
        """Stop the frontend."""
        if self._process is not None:
            self._process.stop()

    def describe(self) -> str:
        """Return the command line, for messages."""
        if self._process is None:
            return f"{self.executable} (not started)"
        return " ".join(self._process.argv)


class Nginx(Frontend):
    """nginx, run with ``-p``/``-c``/``-e`` and ``daemon off``.

    The main template is ``nginx-test.conf.in``; the site template gets
    ``@LISTEN@``, ``@BACKEND@`` and ``@PREFIX@``.  The distribution's ``scgi_params``
    (next to the ``--conf-path`` nginx was built with) is copied into the private
    directory, where ``include scgi_params`` looks for it.  As root, the workers run
    as root (``user root;``) so that they can use the private directory.
    """

    executable = "nginx"
    install = "apt-get install nginx-light (Debian/Ubuntu), or put nginx on PATH"
    mainTemplate = "nginx-test.conf.in"

    @property
    def logs(self) -> list[Path]:
        """``error.log``, ``access.log`` and nginx's own output."""
        return [
            self.directory / "error.log",
            self.directory / "access.log",
            self.directory / "nginx.out",
        ]

    @property
    def pidFile(self) -> Path:
        """``nginx.pid`` in the private directory."""
        return self.directory / "nginx.pid"

    @staticmethod
    def _scgiParams(binary: str) -> Path:
        """Find the distribution's ``scgi_params``."""
        build = subprocess.run(
            [binary, "-V"], capture_output=True, text=True, check=False, timeout=30
        )
        match = re.search(r"--conf-path=(\S+)", build.stderr + build.stdout)
        candidates = [Path("/etc/nginx/scgi_params")]
        if match:
            candidates.insert(0, Path(match.group(1)).parent / "scgi_params")
        for candidate in candidates:
            if candidate.is_file():
                return candidate
        raise FrontendError(
            f"nginx's scgi_params was not found (looked at {candidates}); the "
            f"end-to-end tests use the distribution's file: {Nginx.install}"
        )

    def writeConfig(self, binary: str, port: int) -> Path:
        """Render ``nginx-test.conf.in`` around the site template."""
        directory = self.directory
        shutil.copyfile(self._scgiParams(binary), directory / "scgi_params")
        backend = self.backend
        if backend.socketPath is not None:
            address = f"unix:{backend.socketPath}"
        else:
            address = f"{backend.host}:{backend.port}"
        site = directory / "site.conf"
        site.write_text(
            renderTemplate(
                DEPLOY / self.siteTemplate,
                {
                    "LISTEN": f"127.0.0.1:{port}",
                    "BACKEND": address,
                    "PREFIX": self.prefix,
                },
            )
        )
        config = directory / "nginx.conf"
        config.write_text(
            renderTemplate(
                DEPLOY / self.mainTemplate,
                {
                    "TMPDIR": str(directory),
                    "USER_DIRECTIVE": "user root;" if os.geteuid() == 0 else "",
                    "SITE": str(site),
                },
            )
        )
        return config

    def command(self, binary: str, config: Path) -> list[str]:
        """``nginx -p DIR -c CONFIG -e DIR/error.log``."""
        directory = str(self.directory)
        errorLog = str(self.directory / "error.log")
        return [binary, "-p", directory + "/", "-c", str(config), "-e", errorLog]


# Stacks.


@dataclass(frozen=True)
class StackSpec:
    """What a test class needs: a frontend, its site template, and a backend.

    :ivar frontend: the :class:`Frontend` subclass.
    :ivar site: the site template's file name in ``docs/deploy/``.
    :ivar backend: how to run the backend.
    :ivar prefix: the mount point the site template is rendered with.
    """

    frontend: type[Frontend]
    site: str
    backend: BackendSpec
    prefix: str = "/app"


class Stack:
    """A running backend and frontend, sharing one private directory.

    :ivar spec: what was started.
    :ivar directory: the private directory.
    :ivar backend: the backend, once started.
    :ivar frontend: the frontend, once started.
    """

    backend: Backend | None = None
    frontend: Frontend | None = None

    def __init__(self, spec: StackSpec) -> None:
        """Start the backend, then the frontend, then check a request gets through.

        :raises FrontendError: if anything does not start; what was started is
            stopped again, and the message holds the logs.
        """
        self.spec = spec
        spec.frontend.findBinary()
        name = spec.frontend.executable
        self.directory = Path(tempfile.mkdtemp(prefix=f"scgi-e2e-{name}-"))
        try:
            self.backend = Backend(spec.backend, self.directory)
            self.frontend = spec.frontend(
                spec.site, self.backend, self.directory, spec.prefix
            )
            self.frontend.start()
            self._probe()
        except BaseException as error:
            message = f"{error}\n{self.diagnostics()}"
            self.stop()
            if isinstance(error, FrontendError):
                raise FrontendError(message) from None
            raise

    @property
    def port(self) -> int:
        """The frontend's port."""
        assert self.frontend is not None
        return self.frontend.port

    def _probe(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until ``GET <prefix>/echo`` gets through the frontend to the backend."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                status = httpRequest(
                    self.port, "GET", self.spec.prefix + "/echo"
                ).status
            except OSError as error:
                problem = f"{type(error).__name__}: {error}"
            else:
                if status == 200:
                    return
                problem = f"status {status}"
            if time.monotonic() > deadline or not self.alive():
                raise FrontendError(
                    f"GET {self.spec.prefix}/echo does not reach the backend through "
                    f"{self.spec.frontend.executable}: {problem}"
                )
            time.sleep(0.05)

    def alive(self) -> bool:
        """Return whether both processes still run."""
        return (
            self.backend is not None
            and self.backend.process.alive()
            and self.frontend is not None
            and self.frontend.alive()
        )

    def url(self, path: str) -> str:
        """Return the client-side URL of ``path`` (which starts with ``/``)."""
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        """Stop both processes and remove the private directory (unless kept)."""
        for part in (self.frontend, self.backend):
            if part is not None:
                part.stop()
        if os.environ.get("SCGI_E2E_KEEP"):
            sys.stderr.write(f"kept {self.directory}\n")
        else:
            shutil.rmtree(self.directory, ignore_errors=True)

    def diagnostics(self) -> str:
        """Return what the stack is and the tail of every log."""
        lines = [f"== stack {self.spec}", f"== directory {self.directory}"]
        if self.backend is not None:
            process = self.backend.process
            lines.append(
                f"== backend {self.backend.describe()} pid {process.pid} "
                f"status {process.returncode}"
            )
            lines += [f"== {self.backend.log}", _tail(self.backend.log)]
        if self.frontend is not None:
            lines.append(f"== frontend {self.frontend.describe()}")
            for log in self.frontend.logs:
                lines += [f"== {log}", _tail(log)]
        return "\n".join(lines)


_stacks: dict[StackSpec, Stack] = {}
_failures: dict[StackSpec, str] = {}


def _stopAll() -> None:
    """Stop every running stack (the ``atexit`` hook)."""
    while _stacks:
        _stacks.popitem()[1].stop()


atexit.register(_stopAll)


def acquireStack(spec: StackSpec) -> Stack:
    """Return the running stack for ``spec``, starting it (and stopping others).

    A stack that failed to start is not retried: every later test of it fails with
    the same message, at once.

    :raises FrontendError: if the stack does not start or has died.
    """
    failure = _failures.get(spec)
    if failure is not None:
        raise FrontendError(f"(as for an earlier test) {failure}")
    stack = _stacks.get(spec)
    if stack is not None:
        if stack.alive():
            return stack
        message = f"a process of the stack died\n{stack.diagnostics()}"
        releaseStack(spec)
        raise FrontendError(message)
    for other in list(_stacks):
        releaseStack(other)
    try:
        stack = Stack(spec)
    except FrontendError as error:
        _failures[spec] = str(error)
        raise
    _stacks[spec] = stack
    return stack


def releaseStack(spec: StackSpec) -> None:
    """Stop the stack for ``spec``, if it runs."""
    stack = _stacks.pop(spec, None)
    if stack is not None:
        stack.stop()


class _DiagnosingResult:
    """A test result that prints the stack's logs before a failure or error."""

    def __init__(self, result: object, diagnostics: Callable[[], str]) -> None:
        self._result = result
        self._diagnostics = diagnostics
        # Provide what the result provides (trial's IReporter), so that trial uses
        # this object as it would have used the result itself.
        directlyProvides(self, providedBy(result))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._result, name)

    def _report(self) -> None:
        diagnostics = self._diagnostics()
        if diagnostics:
            sys.stderr.write(f"\n{diagnostics}\n")
            sys.stderr.flush()

    def addFailure(self, test: object, error: object) -> None:
        """Print the logs, then record the failure."""
        self._report()
        self._result.addFailure(test, error)  # type: ignore[attr-defined]

    def addError(self, test: object, error: object) -> None:
        """Print the logs, then record the error."""
        self._report()
        self._result.addError(test, error)  # type: ignore[attr-defined]


class FrontendTestMixin(_MixinBase):
    """Give a ``SynchronousTestCase`` a running stack as ``self.stack``.

    :cvar stackSpec: the stack the class's tests run against.
    """

    stackSpec: ClassVar[StackSpec]
    stack: Stack

    def setUp(self) -> None:
        """Start the class's stack, or reuse it; fail if it cannot run."""
        super().setUp()
        try:
            self.stack = acquireStack(self.stackSpec)
        except FrontendError as error:
            message = str(error)
        else:
            return
        self.fail(message)

    @classmethod
    def tearDownClass(cls) -> None:
        """Stop the class's stack (pytest only: trial never calls this)."""
        releaseStack(cls.stackSpec)
        super().tearDownClass()

    def run(self, result: Any = None) -> Any:
        """Run the test; if it fails, print the stack's logs first."""
        if result is not None:
            result = _DiagnosingResult(result, self._diagnostics)
        return super().run(result)

    def _diagnostics(self) -> str:
        """Return the logs of this class's stack, or ``""`` if none runs."""
        stack = _stacks.get(self.stackSpec)
        return "" if stack is None else stack.diagnostics()

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes | None = None,
    ) -> HTTPResult:
        """Send one request to the frontend and read the whole response."""
        return httpRequest(self.stack.port, method, path, headers=headers, body=body)
