"""nginx balancing over ``twistd -n scgi`` backends on unix sockets.

:class:`UpstreamBackend` is one backend process serving the application a test writes
as ``scgi_failover_app.py`` in its directory; :class:`UpstreamNginx` is an nginx whose
site is rendered from ``docs/deploy/nginx-upstream.conf.in`` around a minimal main
configuration, with one ``server`` entry per backend.  The failover, SIGTERM, worker
crash and frontend restart tests share them.  nginx is required: without it a test
fails, saying what to install.
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
import time
from pathlib import Path
from typing import ClassVar

from .frontends import DEPLOY, FrontendError, Nginx, freePort, renderTemplate

__all__ = [
    "DEADLINE",
    "GRACE",
    "PREFIX",
    "TEMPLATE",
    "UpstreamBackend",
    "UpstreamNginx",
    "tail",
]

TEMPLATE = DEPLOY / "nginx-upstream.conf.in"
"""The site template under test."""


PREFIX = "/app"


ROOT = Path(__file__).resolve().parents[2]


DEADLINE = 30.0
"""Seconds a process may take to start or to stop."""


GRACE = 5.0
"""The backends' ``--grace-period``."""


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


def tail(path: Path, lines: int = 40) -> str:
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


class UpstreamBackend:
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


class UpstreamNginx:
    """nginx with the upstream template, in the foreground, in a private directory."""

    startsFrontend: ClassVar[bool] = True
    """Starts a real frontend: tests that use it are marked ``frontend``."""

    def __init__(self, directory: Path, backends: list[UpstreamBackend]) -> None:
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
