"""Run a real HTTP frontend in front of a real scgi_twisted backend, for tests.

A *stack* is one backend process (``python -m tests.e2e_app``) and one frontend
process (:class:`Nginx`, :class:`Apache` or :class:`Lighttpd`) configured from the
templates in ``docs/deploy/``, so that the deployment documentation and the tests share
one source.  Everything a stack writes (configuration, pid file, logs, temporary files,
the unix socket, a self-signed TLS certificate) lives in one private temporary
directory, removed when the stack stops (set ``SCGI_E2E_KEEP=1`` to keep it).

Every frontend listens on two loopback ports: plain HTTP (:attr:`Stack.port`) and TLS
(:attr:`Stack.tlsPort`, with a certificate for ``localhost`` made by ``openssl``;
clients do not verify it).

Rules the fixture follows:

* **No fixed ports.**  The backend listens on ``tcp:0`` and reports the bound port in
  its ready file; the frontend gets two free loopback ports and is restarted on others
  if one was taken in the meantime.
* **A missing frontend fails the test**, with a message naming the package to install;
  it never skips.
* **Workers run as the distribution intends.**  Apache and lighttpd started as root
  run their workers as ``www-data`` (Debian's apache2 refuses root workers), so the
  private directory is made traversable (mode 711) for them; the backend's unix socket
  (mode 666) and the offloaded files (644) are then reachable exactly as the
  deployment guides require.  nginx, started as root, keeps ``user root;``.
* **Processes are stopped by pid**: ``SIGTERM``, a wait, then ``SIGKILL`` to the
  process group the fixture created for it.
* **Logs are kept**: :meth:`Stack.diagnostics` returns the tail of every log, and
  :class:`FrontendTestMixin` prints it when a test fails.

Adding a frontend means subclassing :class:`Frontend`: name its executable, its main
template, and write :meth:`Frontend.writeConfig` and :meth:`Frontend.command`.
Tests then describe what they need with a :class:`StackSpec` and mix
:class:`FrontendTestMixin` (or the shared cases of
:mod:`tests.support.frontend_cases`, which build on it) into a ``SynchronousTestCase``::

    class NginxTCPPrefixTests(_NginxCases, SynchronousTestCase):
        stackSpec = StackSpec(Nginx, "nginx-scgi.conf.in", BackendSpec("tcp"))
        mount = "/app"

Stacks start lazily on a test's ``setUp`` and are shared by every test of a class.
Only one runs at a time: starting a stack stops the others (trial has no
``tearDownClass``; pytest's stops the class's stack early).  An ``atexit`` hook stops
whatever is still running.
"""

from __future__ import annotations

import abc
import atexit
import contextlib
import functools
import grp
import http.client
import json
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
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
    "Apache",
    "Backend",
    "BackendSpec",
    "Frontend",
    "FrontendError",
    "FrontendTestMixin",
    "HTTPResult",
    "Lighttpd",
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

REPOSITORY = Path(__file__).resolve().parents[2]
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

    Placeholders in comments are replaced too when ``values`` has them and the value
    is one line (a multi-line value would turn a comment into code), and left alone
    otherwise.

    :param template: the template file.
    :param values: the replacement for each placeholder name.
    :raises FrontendError: if a line that is not a comment holds a placeholder
        ``values`` lacks.
    """
    text = template.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    code = "".join(line for line in lines if not line.lstrip().startswith("#"))
    missing = sorted(set(_PLACEHOLDER.findall(code)) - set(values))
    if missing:
        raise FrontendError(f"{template}: no value for the placeholders {missing}")

    def replace(line: str) -> str:
        comment = line.lstrip().startswith("#")

        def value(match: re.Match[str]) -> str:
            found = values.get(match.group(1))
            if found is None or (comment and "\n" in found):
                return match.group(0)
            return found

        return _PLACEHOLDER.sub(value, line)

    return "".join(replace(line) for line in lines)


def freePort() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def workerUser() -> tuple[str, str] | None:
    """Return the ``(user, group)`` a frontend started as root gives its workers.

    :returns: ``www-data`` (else ``nobody``) and its primary group, or ``None`` when
        the tests do not run as root (the frontend then runs as the current user).
    :raises FrontendError: as root, if neither user exists.
    """
    if os.geteuid() != 0:
        return None
    for name in ("www-data", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return entry.pw_name, grp.getgrgid(entry.pw_gid).gr_name
    raise FrontendError("neither www-data nor nobody exists to run workers as")


_certificateCache: list[tuple[bytes, bytes]] = []


def _certificate() -> tuple[bytes, bytes]:
    """Return a self-signed certificate for ``localhost`` and its key, as PEM.

    Made once per process with ``openssl req -x509``.

    :raises FrontendError: if ``openssl`` is missing or fails.
    """
    if _certificateCache:
        return _certificateCache[0]
    openssl = shutil.which("openssl")
    if openssl is None:
        raise FrontendError(
            "openssl is not installed, and the end-to-end tests need it for a TLS "
            "certificate: apt-get install openssl"
        )
    with tempfile.TemporaryDirectory(prefix="scgi-e2e-cert-") as directory:
        cert, key = Path(directory) / "cert.pem", Path(directory) / "key.pem"
        argv = [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes"]
        argv += ["-subj", "/CN=localhost", "-days", "2", "-keyout", str(key)]
        argv += ["-out", str(cert), "-addext", "basicConstraints=critical,CA:FALSE"]
        argv += ["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"]
        result = subprocess.run(
            argv, capture_output=True, text=True, check=False, timeout=60
        )
        if result.returncode != 0:
            raise FrontendError(f"{' '.join(argv)} failed:\n{result.stderr}")
        _certificateCache.append((cert.read_bytes(), key.read_bytes()))
    return _certificateCache[0]


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


def clientTLSContext() -> ssl.SSLContext:
    """Return a client TLS context accepting the fixture's self-signed certificate."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@contextlib.contextmanager
def httpResponse(
    port: int,
    method: str,
    target: str,
    *,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes | None = None,
    timeout: float = 30.0,
    tls: bool = False,
    chunked: bool = False,
) -> Iterator[http.client.HTTPResponse]:
    """Send one request to 127.0.0.1:``port`` and yield the unread response.

    ``Host`` is sent as ``127.0.0.1:<port>`` unless ``headers`` hold one; a header
    given twice is sent twice.

    :param tls: connect with TLS (the certificate is not verified).
    :param chunked: send ``body`` with ``Transfer-Encoding: chunked`` (in chunks of
        up to 64 KiB) instead of a ``Content-Length``.
    """
    connection: http.client.HTTPConnection
    if tls:
        connection = http.client.HTTPSConnection(
            "127.0.0.1", port, timeout=timeout, context=clientTLSContext()
        )
    else:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        extra = list(headers)
        skipHost = any(name.lower() == "host" for name, _ in extra)
        connection.putrequest(
            method, target, skip_host=skipHost, skip_accept_encoding=True
        )
        for name, value in extra:
            connection.putheader(name, value)
        if body is not None and chunked:
            connection.putheader("Transfer-Encoding", "chunked")
            chunks = [body[i : i + 65536] for i in range(0, len(body), 65536)]
            connection.endheaders(iter(chunks), encode_chunked=True)
        else:
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
    tls: bool = False,
    chunked: bool = False,
) -> HTTPResult:
    """Send one request to 127.0.0.1:``port`` and read the whole response.

    See :func:`httpResponse` for the parameters.
    """
    with httpResponse(
        port,
        method,
        target,
        headers=headers,
        body=body,
        timeout=timeout,
        tls=tls,
        chunked=chunked,
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
    :ivar httpPort: where twisted.web's own HTTP server serves the twin tree.
    """

    host: str | None = None
    port: int | None = None
    socketPath: Path | None = None
    httpPort: int = 0

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
        argv += ["--twin-http", "tcp:0:interface=127.0.0.1"]
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
            self.httpPort = info["http"]
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
    and the command line; the base class finds the binary, picks two free ports
    (plain HTTP and TLS), starts the process, waits until it serves, and stops it.

    :cvar executable: the program's name, looked up on ``PATH`` and in ``/usr/sbin``.
    :cvar install: how to install it, for the message when it is missing.
    :cvar mainTemplate: the template of the main configuration file, in ``DEPLOY``.
    :cvar dropsPrivileges: whether, started as root, its workers run as
        :func:`workerUser` (the stack then opens its private directory to them).

    :ivar directory: the private directory of this frontend.
    :ivar siteTemplate: the site template, in ``DEPLOY``.
    :ivar backend: the backend the frontend passes requests to.
    :ivar prefix: the mount point, e.g. ``/app``.
    :ivar certificate: the TLS certificate (PEM) in the private directory.
    :ivar key: its private key (PEM).
    :ivar files: the directory the backend offloads files from.
    :ivar port: the plain HTTP port, once started.
    :ivar tlsPort: the TLS port, once started.
    """

    startsFrontend: ClassVar[bool] = True
    """Starts a real frontend: tests that use it are marked ``frontend``."""

    executable: ClassVar[str]
    install: ClassVar[str]
    mainTemplate: ClassVar[str]
    dropsPrivileges: ClassVar[bool] = False

    port: int = 0
    tlsPort: int = 0
    _process: _Process | None = None

    def __init__(
        self, siteTemplate: str, backend: Backend, directory: Path, prefix: str
    ) -> None:
        """Prepare the frontend; :meth:`start` runs it."""
        self.siteTemplate = siteTemplate
        self.backend = backend
        self.directory = directory
        self.prefix = prefix
        self.certificate = directory / "cert.pem"
        self.key = directory / "key.pem"
        self.files = directory / "files"

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
    def writeConfig(self, binary: str, port: int, tlsPort: int) -> Path:
        """Render the templates for listening on the two ports; return the main file."""

    @abc.abstractmethod
    def command(self, binary: str, config: Path) -> list[str]:
        """Return the command line running the frontend in the foreground."""

    def siteValues(self, port: int, tlsPort: int) -> dict[str, str]:
        """Return the placeholders every site template shares.

        ``LISTEN``/``TLS_LISTEN`` (``127.0.0.1:<port>``), ``PREFIX``, ``CERT``,
        ``KEY`` and ``FILES``; subclasses add ``BACKEND`` in their own syntax.
        """
        return {
            "LISTEN": f"127.0.0.1:{port}",
            "TLS_LISTEN": f"127.0.0.1:{tlsPort}",
            "PREFIX": self.prefix,
            "CERT": str(self.certificate),
            "KEY": str(self.key),
            "FILES": str(self.files),
        }

    def _logSizes(self) -> dict[Path, int]:
        """Return the current size of each log file (0 if missing)."""
        return {log: log.stat().st_size if log.exists() else 0 for log in self.logs}

    def addressInUse(self, since: Mapping[Path, int]) -> bool:
        """Return whether the logs, past ``since``, say a port was taken."""
        for log, offset in since.items():
            with contextlib.suppress(OSError), log.open("rb") as file:
                file.seek(offset)
                if b"Address already in use" in file.read():
                    return True
        return False

    def start(self, attempts: int = 5) -> None:
        """Start on two free loopback ports and wait until both accept connections.

        :raises FrontendError: if it does not start.
        """
        binary = self.findBinary()
        for _ in range(attempts):
            self.port = freePort()
            self.tlsPort = freePort()
            if self.tlsPort == self.port:
                continue
            config = self.writeConfig(binary, self.port, self.tlsPort)
            self.pidFile.unlink(missing_ok=True)
            sizes = self._logSizes()
            self._process = process = _Process(
                self.executable,
                self.command(binary, config),
                self.directory / f"{self.executable}.out",
            )
            try:
                _waitFor(self.pidFile.exists, "its pid file", process)
                for port in (self.port, self.tlsPort):
                    accepts = functools.partial(_accepts, port)
                    _waitFor(accepts, f"port {port} to accept", process)
            except FrontendError:
                process.stop()
                if self.addressInUse(sizes):
                    continue
                raise
            return
        raise FrontendError(f"{self.executable}: no free ports after {attempts} tries")

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
    ``@LISTEN@``, ``@TLS_LISTEN@``, ``@BACKEND@`` (``127.0.0.1:4000`` or
    ``unix:/path``), ``@PREFIX@``, ``@CERT@``, ``@KEY@`` and ``@FILES@``.  The
    distribution's ``scgi_params`` (next to the ``--conf-path`` nginx was built with)
    is copied into the private directory, where ``include scgi_params`` looks for it.
    As root, the workers run as root (``user root;``) so that they can use the
    private directory.
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

    def writeConfig(self, binary: str, port: int, tlsPort: int) -> Path:
        """Render ``nginx-test.conf.in`` around the site template."""
        directory = self.directory
        shutil.copyfile(self._scgiParams(binary), directory / "scgi_params")
        backend = self.backend
        if backend.socketPath is not None:
            address = f"unix:{backend.socketPath}"
        else:
            address = f"{backend.host}:{backend.port}"
        site = directory / "site.conf"
        values = self.siteValues(port, tlsPort)
        values["BACKEND"] = address
        site.write_text(renderTemplate(DEPLOY / self.siteTemplate, values))
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


class Apache(Frontend):
    """Apache httpd, run as ``apache2 -f CONFIG -DFOREGROUND`` (mpm_event).

    The main template is ``apache-test.conf.in``, a self-contained configuration
    that loads its modules from :attr:`modules` and keeps its pid file, logs, mutexes
    and runtime files in the private directory.  The site template gets the shared
    placeholders (:meth:`Frontend.siteValues`) and ``@BACKEND@``
    (``scgi://127.0.0.1:4000`` or ``unix:/path|scgi://localhost``).  Started as
    root, the workers run as ``www-data`` (Debian's apache2 is not built to run them
    as root).
    """

    executable = "apache2"
    install = (
        "apt-get install apache2 (Debian/Ubuntu; mod_proxy_scgi is in apache2-bin)"
    )
    mainTemplate = "apache-test.conf.in"
    dropsPrivileges = True

    modules = Path("/usr/lib/apache2/modules")
    """Where Debian's apache2 keeps its modules."""

    requiredModules = (
        "mod_mpm_event.so",
        "mod_authz_core.so",
        "mod_setenvif.so",
        "mod_proxy.so",
        "mod_proxy_scgi.so",
        "mod_ssl.so",
    )
    """The modules ``apache-test.conf.in`` loads."""

    @property
    def logs(self) -> list[Path]:
        """``error.log``, ``access.log`` and apache2's own output."""
        return [
            self.directory / "error.log",
            self.directory / "access.log",
            self.directory / "apache2.out",
        ]

    @property
    def pidFile(self) -> Path:
        """``apache2.pid`` in the private directory."""
        return self.directory / "apache2.pid"

    def writeConfig(self, binary: str, port: int, tlsPort: int) -> Path:
        """Render ``apache-test.conf.in`` around the site template.

        :raises FrontendError: if a module it loads is missing.
        """
        missing = [m for m in self.requiredModules if not (self.modules / m).exists()]
        if missing:
            raise FrontendError(
                f"Apache modules {missing} are missing from {self.modules}: "
                f"{self.install}"
            )
        directory = self.directory
        backend = self.backend
        if backend.socketPath is not None:
            address = f"unix:{backend.socketPath}|scgi://localhost"
        else:
            address = f"scgi://{backend.host}:{backend.port}"
        values = self.siteValues(port, tlsPort)
        values["BACKEND"] = address
        site = directory / "site.conf"
        site.write_text(renderTemplate(DEPLOY / self.siteTemplate, values))
        user = workerUser()
        config = directory / "apache2.conf"
        config.write_text(
            renderTemplate(
                DEPLOY / self.mainTemplate,
                {
                    "TMPDIR": str(directory),
                    "MODULES": str(self.modules),
                    "LISTEN": values["LISTEN"],
                    "TLS_LISTEN": values["TLS_LISTEN"],
                    "USER_DIRECTIVES": ""
                    if user is None
                    else f"User {user[0]}\nGroup {user[1]}",
                    "SITE": str(site),
                },
            )
        )
        return config

    def command(self, binary: str, config: Path) -> list[str]:
        """``apache2 -f CONFIG -DFOREGROUND``."""
        return [binary, "-f", str(config), "-DFOREGROUND"]


class Lighttpd(Frontend):
    """lighttpd, run as ``lighttpd -D -f CONFIG`` (its error log is its stderr).

    The main template is ``lighttpd-test.conf.in``; the site template gets the shared
    placeholders (:meth:`Frontend.siteValues`) and ``@BACKEND@`` (``"host" =>
    "127.0.0.1", "port" => 4000`` or ``"socket" => "/path"``).  Started as root,
    lighttpd runs as ``www-data`` (``server.username``), with a work directory it
    owns for buffered request bodies.
    """

    executable = "lighttpd"
    install = "apt-get install lighttpd lighttpd-mod-openssl (Debian/Ubuntu)"
    mainTemplate = "lighttpd-test.conf.in"
    dropsPrivileges = True

    openssl = Path("/usr/lib/lighttpd/mod_openssl.so")
    """The TLS module of lighttpd (Debian: lighttpd-mod-openssl, only recommended)."""

    @property
    def logs(self) -> list[Path]:
        """The output of lighttpd, which holds its error log."""
        return [self.directory / "lighttpd.out"]

    @property
    def pidFile(self) -> Path:
        """``lighttpd.pid`` in the private directory."""
        return self.directory / "lighttpd.pid"

    def writeConfig(self, binary: str, port: int, tlsPort: int) -> Path:
        """Render ``lighttpd-test.conf.in`` around the site template.

        :raises FrontendError: if the TLS module is missing.
        """
        if self.openssl.parent.is_dir() and not self.openssl.exists():
            raise FrontendError(
                f"lighttpd's TLS module {self.openssl} is missing: apt-get install "
                "lighttpd-mod-openssl"
            )
        directory = self.directory
        work = directory / "lighttpd-work"
        work.mkdir(exist_ok=True)
        user = workerUser()
        if user is not None:
            shutil.chown(work, user[0], user[1])
        backend = self.backend
        if backend.socketPath is not None:
            address = f'"socket" => "{backend.socketPath}"'
        else:
            address = f'"host" => "{backend.host}", "port" => {backend.port}'
        values = self.siteValues(port, tlsPort)
        values["BACKEND"] = address
        site = directory / "site.conf"
        site.write_text(renderTemplate(DEPLOY / self.siteTemplate, values))
        config = directory / "lighttpd.conf"
        config.write_text(
            renderTemplate(
                DEPLOY / self.mainTemplate,
                {
                    "TMPDIR": str(directory),
                    "WORKDIR": str(work),
                    "BIND": "127.0.0.1",
                    "PORT": str(port),
                    "USER_DIRECTIVES": ""
                    if user is None
                    else f'server.username = "{user[0]}"\n'
                    f'server.groupname = "{user[1]}"',
                    "SITE": str(site),
                },
            )
        )
        return config

    def command(self, binary: str, config: Path) -> list[str]:
        """``lighttpd -D -f CONFIG``."""
        return [binary, "-D", "-f", str(config)]


# Stacks.


@dataclass(frozen=True)
class StackSpec:
    """What a test class needs: a frontend, its site template, and a backend.

    :ivar frontend: the :class:`Frontend` subclass.
    :ivar site: the site template's file name in ``docs/deploy/``.
    :ivar backend: how to run the backend.
    :ivar prefix: the mount point the site template is rendered with.
    """

    startsFrontend: ClassVar[bool] = True
    """Starts a real frontend: tests that use it are marked ``frontend``."""

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

    startsFrontend: ClassVar[bool] = True
    """Starts a real frontend: tests that use it are marked ``frontend``."""

    backend: Backend | None = None
    frontend: Frontend | None = None

    def __init__(self, spec: StackSpec) -> None:
        """Start the backend, then the frontend, then check a request gets through.

        :raises FrontendError: if anything does not start; what was started is
            stopped again, and the message holds the logs.
        """
        self.spec = spec
        spec.frontend.findBinary()
        certificate, key = _certificate()
        name = spec.frontend.executable
        self.directory = Path(tempfile.mkdtemp(prefix=f"scgi-e2e-{name}-"))
        if spec.frontend.dropsPrivileges and workerUser() is not None:
            # The workers (www-data) must reach the socket and the offloaded files.
            self.directory.chmod(0o711)
        try:
            (self.directory / "cert.pem").write_bytes(certificate)
            (self.directory / "key.pem").write_bytes(key)
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
        """The frontend's plain HTTP port."""
        assert self.frontend is not None
        return self.frontend.port

    @property
    def tlsPort(self) -> int:
        """The frontend's TLS port."""
        assert self.frontend is not None
        return self.frontend.tlsPort

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

    def url(self, path: str, *, tls: bool = False) -> str:
        """Return the client-side URL of ``path`` (which starts with ``/``)."""
        if tls:
            return f"https://127.0.0.1:{self.tlsPort}{path}"
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

    startsFrontend: ClassVar[bool] = True
    """Starts a real frontend: tests that use it are marked ``frontend``."""

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
        tls: bool = False,
        chunked: bool = False,
    ) -> HTTPResult:
        """Send one request to the frontend and read the whole response.

        :param tls: use the frontend's TLS port.
        :param chunked: send the body with ``Transfer-Encoding: chunked``.
        """
        port = self.stack.tlsPort if tls else self.stack.port
        return httpRequest(
            port, method, path, headers=headers, body=body, tls=tls, chunked=chunked
        )
