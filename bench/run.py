#!/usr/bin/env python3
"""Benchmark scgi_twisted against twisted.web's HTTP server and other SCGI servers.

One command (see bench/README.md)::

    python bench/run.py            # everything: 15-30 minutes
    python bench/run.py --quick    # one 1-second run of everything: 3-5 minutes
    python bench/run.py --scenarios hello-c32 --servers scgi_twisted,minimal

For every scenario, transport and server it starts the server pinned to one core
(``taskset -c 0``), warms it up, runs the load pinned to the other core
(``taskset -c 1``) ``--runs`` times, and keeps the median of each figure.  It
prints one table with ratios and the issue's targets marked PASS/FAIL, and writes
everything to ``bench/out/results.json``.  It installs nothing: it checks the
prerequisites of what was selected and says exactly what is missing.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SERVERS_DIR = os.path.join(HERE, "servers")
OUT = os.path.join(HERE, "out")
LOADGEN_SRC = os.path.join(HERE, "loadgen.c")
LOADGEN = os.path.join(OUT, "loadgen")
MIB = 1024 * 1024
CLK_TCK = os.sysconf("SC_CLK_TCK")
TIME_WAIT_WARN = 60000  # half of a typical net.ipv4.tcp_max_tw_buckets


# --- what is measured ----------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """One load: a route, a method, a body, a concurrency, and how it is sent."""

    key: str
    title: str
    path: str
    method: str = "GET"
    body: int = 0
    concurrency: int = 1
    expect_body: int = 13  # the response body's length
    max_requests: int = 0  # 0: duration only
    nginx: bool = False  # loaded through nginx with wrk
    memory: bool = False  # the figure that matters is RSS growth


SCENARIOS: dict[str, Scenario] = {
    s.key: s
    for s in (
        Scenario("hello-c1", "hello c=1", "/hello", concurrency=1),
        Scenario("hello-c32", "hello c=32", "/hello", concurrency=32),
        Scenario("big-c8", "1 MiB resp c=8", "/big", concurrency=8, expect_body=MIB),
        Scenario(
            "post1m-c8",
            "1 MiB POST c=8",
            "/post",
            method="POST",
            body=MIB,
            concurrency=8,
            expect_body=len(str(MIB)),
        ),
        Scenario(
            "post64m",
            "64 MiB POST c=1",
            "/post",
            method="POST",
            body=64 * MIB,
            concurrency=1,
            expect_body=len(str(64 * MIB)),
            max_requests=20,
            memory=True,
        ),
        Scenario(
            "nginx-hello-c32", "nginx hello c=32", "/hello", concurrency=32, nginx=True
        ),
    )
}


@dataclass(frozen=True)
class Server:
    """A server under test: its launcher and how it is loaded."""

    key: str
    label: str
    launcher: str  # file in bench/servers/
    load: str  # "scgi" (loadgen), "http" (loadgen, Connection: close) or "wrk"
    needs: tuple[str, ...] = ()
    args: tuple[str, ...] = ()  # more arguments for the launcher


SERVERS: dict[str, Server] = {
    s.key: s
    for s in (
        Server("scgi_twisted", "scgi_twisted", "scgi_twisted_app.py", "scgi"),
        Server(
            "scgi_twisted_metrics",
            "scgi_twisted, metrics on",
            "scgi_twisted_app.py",
            "scgi",
            ("prometheus_client",),
            args=("--metrics",),
        ),
        Server(
            "scgi_twisted_asyncio",
            "scgi_twisted asyncio",
            "scgi_twisted_app.py",
            "scgi",
            args=("--reactor", "asyncio"),
        ),
        Server(
            "scgi_twisted_uvloop",
            "scgi_twisted asyncio+uvloop",
            "scgi_twisted_app.py",
            "scgi",
            ("uvloop",),
            args=("--reactor", "uvloop"),
        ),
        Server("twistd", "twistd -n scgi", "twistd_scgi.py", "scgi"),
        Server(
            "twistd_nolog",
            "twistd -n scgi, no access log",
            "twistd_scgi.py",
            "scgi",
            args=("--access-log", "none"),
        ),
        Server("minimal", "minimal Twisted", "minimal_twisted.py", "scgi"),
        Server("stock_request", "stock Request floor", "stock_request.py", "scgi"),
        Server(
            "scgi_request_floor",
            "SCGIRequest floor",
            "stock_request.py",
            "scgi",
            args=("--scgi-request",),
        ),
        Server("twisted_http", "twisted.web close", "twisted_http.py", "http"),
        Server(
            "twisted_http_ka",
            "twisted.web keepalive",
            "twisted_http.py",
            "wrk",
            ("wrk",),
        ),
        Server("flup", "flup", "flup_app.py", "scgi", ("flup",)),
        Server("scgi", "scgi package", "scgi_pkg_app.py", "scgi", ("scgi",)),
        Server("uwsgi", "uWSGI", "uwsgi_app.py", "scgi", ("uwsgi",)),
        # scgi_twisted from another checkout (--baseline DIR): the same launcher, so
        # a change is measured against what it replaces in one run.
        Server("baseline", "scgi_twisted baseline", "scgi_twisted_app.py", "scgi"),
    )
}
SUBJECT = "scgi_twisted"


@dataclass(frozen=True)
class Target:
    """One of the issue's targets."""

    scenario: str
    reference: str  # a server key, or "" for the RSS target
    minimum: float = 0.0  # subject req/s ÷ reference req/s must be at least this
    max_growth_mib: float | None = None  # or: RSS growth must be at most this
    subject: str = SUBJECT  # the server measured against the reference

    def describe(self) -> str:
        """Say the target in words."""
        title = SCENARIOS[self.scenario].title
        if self.max_growth_mib is not None:
            return f"{title}: scgi_twisted RSS growth <= {self.max_growth_mib:g} MiB"
        who = "" if self.subject == SUBJECT else f"{SERVERS[self.subject].label} "
        return f"{title}: {who}>= {self.minimum:.2f}x {SERVERS[self.reference].label}"


TARGETS = (
    Target("hello-c32", "twisted_http", 1.3),
    Target("hello-c32", "flup", 1.0),
    Target("hello-c32", "scgi", 1.0),
    Target("hello-c32", "minimal", 0.6),
    Target("post1m-c8", "twisted_http", 2.5),
    Target("post1m-c8", "minimal", 0.9),
    Target("big-c8", "minimal", 0.9),
    Target("post64m", "", max_growth_mib=4.0),
    Target("nginx-hello-c32", "twisted_http", 1.2),
    Target("hello-c32", "baseline", 1.0),
    Target("post1m-c8", "baseline", 1.0),
    Target("big-c8", "baseline", 1.0),
    Target("hello-c32", "twistd_nolog", 0.85, subject="twistd"),
    Target("hello-c32", "scgi_twisted", 0.95, subject="scgi_twisted_metrics"),
)


@dataclass
class Cell:
    """The runs and medians of one (scenario, transport, server)."""

    scenario: str
    transport: str
    server: str
    runs: list[dict[str, Any]] = field(default_factory=list)
    median: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    skipped: str = ""
    rss_before_mib: float = 0.0
    peak_rss_mib: float = 0.0
    rss_growth_mib: float = 0.0
    time_wait: int | None = None
    contended: list[dict[str, Any]] = field(default_factory=list)
    together: bool = False  # run at the same moments as the others' (--together)


# --- prerequisites -------------------------------------------------------------


APT_HINT = {
    "cc": "apt-get install -y gcc",
    "taskset": "apt-get install -y util-linux",
    "wrk": "apt-get install -y wrk",
    "nginx": "apt-get install -y nginx-light",
}
PIP_HINT = "python3 -m pip install -r bench/requirements.txt"


def nginx_binary() -> str | None:
    """Return the nginx binary (Debian puts it in /usr/sbin)."""
    found = shutil.which("nginx")
    if found:
        return found
    return "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None


def uwsgi_binary() -> str | None:
    """Return the uwsgi binary pip installed beside this Python, or on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "uwsgi")
    if os.access(beside, os.X_OK):
        return beside
    return shutil.which("uwsgi")


def _importable(module: str) -> bool:
    probe = subprocess.run(
        [sys.executable, "-c", f"import {module}"], capture_output=True, check=False
    )
    return probe.returncode == 0


def check_prerequisites(
    scenarios: list[Scenario], servers: list[Server], cpus: tuple[int, int]
) -> list[str]:
    """Return one line per missing prerequisite (empty if all is there)."""
    missing: list[str] = []
    cc = os.environ.get("CC", "cc")
    if not shutil.which(cc):
        missing.append(f"C compiler '{cc}' (for bench/loadgen.c): {APT_HINT['cc']}")
    if not shutil.which("taskset"):
        missing.append(f"taskset: {APT_HINT['taskset']}")
    allowed = os.sched_getaffinity(0)
    for cpu in cpus:
        if cpu not in allowed:
            missing.append(
                f"CPU {cpu} (this process may run on {sorted(allowed)}); "
                "the benchmark needs two cores: see --server-cpu/--load-cpu"
            )
    need_wrk = any(s.load == "wrk" for s in servers) or any(s.nginx for s in scenarios)
    if need_wrk and not shutil.which("wrk"):
        missing.append(f"wrk: {APT_HINT['wrk']}")
    if any(s.nginx for s in scenarios) and not nginx_binary():
        missing.append(f"nginx: {APT_HINT['nginx']}")
    if not _importable("twisted.web.server"):
        missing.append(f"Twisted: python3 -m pip install -e {REPO}")
    modules = {
        "flup": "flup.server.scgi",
        "scgi": "scgi.scgi_server",
        "uvloop": "uvloop",
        "prometheus_client": "prometheus_client",
    }
    for server in servers:
        for need in server.needs:
            if need in modules and not _importable(modules[need]):
                missing.append(f"Python package {need}: {PIP_HINT}")
            if need == "uwsgi" and not uwsgi_binary():
                missing.append(f"uwsgi binary: {PIP_HINT} (builds uWSGI with gcc)")
    return missing


def build_loadgen() -> None:
    """Compile bench/loadgen.c into bench/out/loadgen if it is missing or stale."""
    os.makedirs(OUT, exist_ok=True)
    if os.path.exists(LOADGEN) and os.path.getmtime(LOADGEN) >= os.path.getmtime(
        LOADGEN_SRC
    ):
        return
    cc = os.environ.get("CC", "cc")
    command = [cc, "-O2", "-Wall", "-o", LOADGEN, LOADGEN_SRC]
    print("building:", " ".join(command), flush=True)
    subprocess.run(command, check=True)


# --- processes -----------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        tree.setdefault(int(fields[1]), []).append(int(entry))
    return tree


def process_tree(pid: int) -> list[int]:
    """Return ``pid`` and all its descendants."""
    tree = _children()
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(tree.get(current, []))
    return found


def cpu_seconds(pids: list[int]) -> float:
    """Return the user+system CPU time of these processes (all their threads)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLK_TCK


def _status_kib(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_mib(pids: list[int], key: str) -> float:
    """Return the sum of ``VmRSS`` or ``VmHWM`` over these processes, in MiB."""
    return sum(_status_kib(pid, key) for pid in pids) / 1024


def reset_peak_rss(pids: list[int]) -> bool:
    """Reset ``VmHWM`` to the current RSS (``clear_refs`` 5); False if not allowed."""
    done = True
    for pid in pids:
        try:
            with open(f"/proc/{pid}/clear_refs", "w") as clear:
                clear.write("5")
        except OSError:
            done = False
    return done


def cpu_busy_seconds(cpu: int) -> tuple[float, float]:
    """Return (user+nice+system, steal) seconds that CPU ``cpu`` spent since boot."""
    with open("/proc/stat") as stat:
        for line in stat:
            if line.startswith(f"cpu{cpu} "):
                ticks = [int(v) for v in line.split()[1:]]
                return (ticks[0] + ticks[1] + ticks[2]) / CLK_TCK, ticks[7] / CLK_TCK
    return 0.0, 0.0


def time_wait_count() -> int:
    """Count TCP sockets in TIME_WAIT on this machine (/proc/net/tcp, tcp6)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as lines:
            next(lines, None)
            count += sum(1 for line in lines if line.split()[3] == "06")
    return count


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_listening(
    address: str, process: subprocess.Popen[bytes], seconds: float
) -> None:
    """Wait until ``address`` (``tcp:H:P`` or ``unix:PATH``) accepts connections."""
    kind, _, rest = address.partition(":")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited with status {process.returncode}")
        try:
            if kind == "unix":
                with socket.socket(socket.AF_UNIX) as probe:
                    probe.connect(rest)
            else:
                host, _, port = rest.rpartition(":")
                with socket.create_connection((host, int(port)), timeout=1):
                    pass
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"not listening on {address} after {seconds:.0f} s")


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGINT) -> None:
    """Stop a process group this script started (by its id), then reap it."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)
    # Whatever is left in the group (the scgi package's child, nginx's worker).
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)


@contextlib.contextmanager
def started(
    command: list[str],
    address: str,
    log_path: str,
    stop_signal: int = signal.SIGTERM,
    env: dict[str, str] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a command in its own process group until the block ends.

    It must be listening on ``address`` within 30 s; at the end it gets
    ``stop_signal`` (then SIGKILL after 5 s).  ``env`` replaces the environment.
    """
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=env,
            start_new_session=True,
        )
    try:
        wait_listening(address, process, 30)
        yield process
    finally:
        stop(process, stop_signal)


def log_tail(path: str, lines: int = 15) -> str:
    """Return the last lines of a log file."""
    try:
        with open(path, errors="replace") as log:
            return "".join(log.readlines()[-lines:])
    except OSError:
        return ""


# --- nginx ---------------------------------------------------------------------

_SCGI_PARAMS = """
            scgi_param REQUEST_METHOD $request_method;
            scgi_param REQUEST_URI $request_uri;
            scgi_param QUERY_STRING $query_string;
            scgi_param CONTENT_TYPE $content_type;
            scgi_param DOCUMENT_URI $document_uri;
            scgi_param DOCUMENT_ROOT $document_root;
            scgi_param SCGI 1;
            scgi_param SERVER_PROTOCOL $server_protocol;
            scgi_param REQUEST_SCHEME $scheme;
            scgi_param HTTPS $https if_not_empty;
            scgi_param REMOTE_ADDR $remote_addr;
            scgi_param REMOTE_PORT $remote_port;
            scgi_param SERVER_PORT $server_port;
            scgi_param SERVER_NAME $server_name;
            scgi_param HTTP_HOST $host;"""


def nginx_config(
    workdir: str, port: int, backend: str, mode: str, error_log: str
) -> str:
    """Write an nginx config in ``workdir``; return its path.

    :param backend: ``unix:PATH`` or ``HOST:PORT``.
    :param mode: ``scgi`` (scgi_pass), ``http`` (proxy_pass, a connection per
        request) or ``http-keepalive`` (proxy_pass with ``keepalive 32``).
    """
    temp = {
        name: os.path.join(workdir, name)
        for name in ("client_body", "proxy", "scgi", "fastcgi", "uwsgi")
    }
    for path in temp.values():
        os.makedirs(path, exist_ok=True)
    if mode == "scgi":
        location = f"scgi_pass backend;{_SCGI_PARAMS}"
        upstream = ""
    else:
        location = (
            "proxy_pass http://backend;\n            proxy_set_header Host $host;"
        )
        upstream = ""
        if mode == "http-keepalive":
            upstream = "keepalive 32;\n        keepalive_requests 1000000;"
            location += (
                "\n            proxy_http_version 1.1;"
                '\n            proxy_set_header Connection "";'
            )
    user = "user root;" if os.geteuid() == 0 else ""
    config = f"""# generated by bench/run.py
{user}
daemon off;
master_process on;
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {error_log} warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    client_max_body_size 0;
    client_body_temp_path {temp["client_body"]};
    proxy_temp_path {temp["proxy"]};
    scgi_temp_path {temp["scgi"]};
    fastcgi_temp_path {temp["fastcgi"]};
    uwsgi_temp_path {temp["uwsgi"]};
    upstream backend {{
        server {backend};
        {upstream}
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            {location}
        }}
    }}
}}
"""
    path = os.path.join(workdir, "nginx.conf")
    with open(path, "w") as out:
        out.write(config)
    return path


# --- load ----------------------------------------------------------------------


def wrk_script(method: str, body_size: int) -> str:
    """Write the Lua script that sets the request and prints JSON; return its path."""
    path = os.path.join(OUT, f"wrk-{method}-{body_size}.lua")
    body = ""
    if method != "GET":
        body = (
            f'wrk.method = "{method}"\n'
            f'wrk.body = string.rep("x", {body_size})\n'
            'wrk.headers["Content-Type"] = "application/octet-stream"\n'
        )
    script = (
        body
        + """done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, "read": %d, '
    .. '"write": %d, "status": %d, "timeout": %d, "p50": %f, "p90": %f, "p99": %f, '
    .. '"max": %f, "mean": %f}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean))
end
"""
    )
    # Load generators started at once (--together) ask for the same script: each
    # writes its own file and renames it into place, so that none reads a file
    # another is still writing.
    temporary = f"{path}.{os.getpid()}.{threading.get_ident()}"
    with open(temporary, "w") as out:
        out.write(script)
    os.replace(temporary, path)
    return path


def run_load(
    scenario: Scenario,
    tool: str,
    target: str,
    *,
    duration: float,
    cpu: int,
    max_requests: int = 0,
    concurrency: int | None = None,
    path: str | None = None,
    method: str | None = None,
    body: int | None = None,
) -> dict[str, Any]:
    """Run one load pinned to ``cpu``; return loadgen's JSON or wrk's, normalised.

    :param tool: ``scgi`` or ``http`` (loadgen) or ``wrk``.
    :param target: ``tcp:HOST:PORT``/``unix:PATH`` (loadgen) or a URL (wrk).
    """
    concurrency = concurrency or scenario.concurrency
    method = method or scenario.method
    path = path or scenario.path
    body = scenario.body if body is None else body
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    if tool == "wrk":
        command = ["taskset", "-c", str(cpu), "wrk", "-t1", f"-c{concurrency}"]
        command += [f"-d{max(1, round(duration))}s", "--timeout", "30s"]
        command += ["-s", wrk_script(method, body), target + path]
    else:
        command = ["taskset", "-c", str(cpu), LOADGEN, "--proto", tool]
        command += ["--target", target, "--method", method, "--path", path]
        command += ["--body", str(body), "-c", str(concurrency), "-d", str(duration)]
        if max_requests:
            command += ["-n", str(max_requests)]
        command += ["--timeout", "30"]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=duration + 120, check=False
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    client_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(
            f"{' '.join(command)} failed ({done.returncode}): "
            f"{done.stderr.strip() or done.stdout.strip()}"
        )
    raw = json.loads(lines[-1])
    if tool != "wrk":
        raw["client_cpu_s"] = client_cpu
        return raw
    seconds = raw["duration_us"] / 1e6
    errors = raw["connect"] + raw["read"] + raw["write"] + raw["timeout"]
    ok = raw["requests"] - raw["status"]
    return {
        "tool": "wrk",
        "requests": raw["requests"],
        "ok": ok,
        "non200": raw["status"],
        "bad_head": 0,
        "errors": errors,
        "errors_by_kind": {k: raw[k] for k in ("connect", "read", "write", "timeout")},
        "duration_s": seconds,
        "rps": ok / seconds if seconds else 0.0,
        "latency_ms": {k: raw[k] / 1000 for k in ("p50", "p90", "p99", "max", "mean")},
        "bytes_read": raw["bytes"],
        # wrk does not expose body lengths: check the mean response size instead.
        "mean_response_bytes": raw["bytes"] / raw["requests"] if raw["requests"] else 0,
        "client_cpu_s": client_cpu,
    }


def check_run(run: dict[str, Any], scenario: Scenario) -> list[str]:
    """Return what is wrong with a run's responses (empty if all were right)."""
    problems = []
    if run["ok"] == 0:
        problems.append("no successful response")
    if run["errors"]:
        problems.append(f"{run['errors']} errors {run['errors_by_kind']}")
    if run["non200"]:
        problems.append(f"{run['non200']} non-200 responses")
    if run.get("bad_head"):
        problems.append(f"{run['bad_head']} unreadable responses")
    if run["tool"] == "wrk":
        if run["ok"] and run["mean_response_bytes"] < scenario.expect_body:
            problems.append(
                f"mean response {run['mean_response_bytes']:.0f} B "
                f"< body {scenario.expect_body} B"
            )
    elif run["ok"] and not (
        run["body_len_min"] == run["body_len_max"] == scenario.expect_body
    ):
        problems.append(
            f"body length {run['body_len_min']}..{run['body_len_max']}, "
            f"expected {scenario.expect_body}"
        )
    return problems


# --- one cell ------------------------------------------------------------------


@dataclass
class Options:
    """The command line, resolved."""

    runs: int
    duration: float
    warmup: float
    server_cpu: int
    load_cpu: int
    profile: bool
    workdir: str
    logdir: str
    max_other: float = 0.2
    retries: int = 3
    baseline: str | None = None


@dataclass
class Endpoint:
    """A server under load, with its frontend: what a run needs to reach it."""

    tool: str  # run_load's tool
    target: str  # run_load's target
    process: subprocess.Popen[bytes]
    frontend: subprocess.Popen[bytes] | None


def _skipped(scenario: Scenario, transport: str, server: Server) -> str:
    """Say why this server cannot be measured this way ("" if it can)."""
    if server.load == "wrk" and not scenario.nginx and transport == "unix":
        return "wrk cannot use unix sockets"
    return ""


@contextlib.contextmanager
def serving(
    cell: Cell, scenario: Scenario, server: Server, opts: Options
) -> Iterator[Endpoint | None]:
    """Run the server (and nginx) until the block ends; ``None`` if it failed.

    Whatever went wrong is added to ``cell.problems``; the server's log tail is
    printed at the end if there were problems.
    """
    transport = cell.transport
    tag = f"{scenario.key}-{transport}-{server.key}"
    if transport == "unix":
        sock = os.path.join(opts.workdir, f"{tag}.sock")
        address = f"unix:{sock}"
    else:
        address = f"tcp:127.0.0.1:{free_port()}"
        cell.time_wait = time_wait_count()
    command = ["taskset", "-c", str(opts.server_cpu), sys.executable]
    command += [os.path.join(SERVERS_DIR, server.launcher), "--listen", address]
    command += server.args
    if opts.profile and server.key in (
        "scgi_twisted",
        "minimal",
        "stock_request",
        "twisted_http",
    ):
        command += ["--profile", os.path.join(OUT, f"profile-{tag}.prof")]
    log_path = os.path.join(opts.logdir, f"{tag}.log")
    env = None
    if server.key == "baseline":
        env = dict(os.environ, SCGI_TWISTED_TREE=opts.baseline or REPO)
    with contextlib.ExitStack() as stack:
        stack.callback(
            lambda: cell.problems and print(log_tail(log_path), file=sys.stderr)
        )
        try:
            process = stack.enter_context(started(command, address, log_path, env=env))
        except RuntimeError as error:
            cell.problems.append(f"server did not start: {error}")
            yield None
            return
        frontend: subprocess.Popen[bytes] | None = None
        if scenario.nginx:
            port = free_port()
            workdir = tempfile.mkdtemp(prefix=f"nginx-{tag}-", dir=opts.workdir)
            backend = address[4:] if transport == "tcp" else address  # H:P, unix:P
            error_log = os.path.join(opts.logdir, f"{tag}-nginx-error.log")
            mode = {"scgi": "scgi", "http": "http", "wrk": "http-keepalive"}[
                server.load
            ]
            config = nginx_config(workdir, port, backend, mode, error_log)
            nginx = nginx_binary()
            assert nginx is not None
            nginx_command = ["taskset", "-c", str(opts.load_cpu), nginx]
            nginx_command += ["-e", error_log, "-p", workdir]
            nginx_command += ["-c", config]
            try:
                frontend = stack.enter_context(
                    started(
                        nginx_command,
                        f"tcp:127.0.0.1:{port}",
                        os.path.join(opts.logdir, f"{tag}-nginx.log"),
                        signal.SIGTERM,
                    )
                )
            except RuntimeError as error:
                cell.problems.append(f"nginx did not start: {error}")
                print(log_tail(error_log), file=sys.stderr)
                yield None
                return
            tool, target = "wrk", f"http://127.0.0.1:{port}"
        elif server.load == "wrk":
            tool, target = "wrk", f"http://{address[4:]}"
        else:
            tool, target = server.load, address
        yield Endpoint(tool, target, process, frontend)
        if process.poll() is not None:
            cell.problems.append(f"the server exited ({process.returncode})")


def measure(scenario: Scenario, transport: str, server: Server, opts: Options) -> Cell:
    """Start the server (and nginx), warm up, run the load ``opts.runs`` times."""
    cell = Cell(scenario.key, transport, server.key)
    cell.skipped = _skipped(scenario, transport, server)
    if cell.skipped:
        return cell
    with serving(cell, scenario, server, opts) as endpoint:
        if endpoint is not None:
            try:
                _warm_up(cell, scenario, endpoint, opts)
                _measure_runs(cell, scenario, endpoint, opts)
            except (RuntimeError, subprocess.TimeoutExpired) as error:
                cell.problems.append(str(error))
    return cell


def measure_together(
    scenario: Scenario, transport: str, servers: list[Server], opts: Options
) -> list[Cell]:
    """Measure several servers at the same moments, sharing the server's core.

    Every server is started (on the same core) and warmed up; then each run loads
    all of them at once, each through its own load generator with the scenario's
    concurrency.  The kernel's scheduler shares the core between the busy servers,
    so whatever the machine does during a run (other tenants, the clock, the
    caches) touches each server alike, and the ratio of two servers' CPU per
    request (or requests per second) in one run compares them under the same
    conditions.  A run in which something else took the core is redone (up to
    ``opts.retries`` times).  Every cell keeps its runs in order, which
    :func:`paired` relies on; req/s are each server's share of the core.
    """
    cells = [Cell(scenario.key, transport, server.key) for server in servers]
    for cell, server in zip(cells, servers, strict=True):
        cell.together = True
        cell.skipped = _skipped(scenario, transport, server)
    if any(cell.skipped for cell in cells):
        return cells
    with contextlib.ExitStack() as stack:
        endpoints = []
        for cell, server in zip(cells, servers, strict=True):
            endpoint = stack.enter_context(serving(cell, scenario, server, opts))
            if endpoint is None:
                return cells
            endpoints.append(endpoint)
        try:
            for cell, endpoint in zip(cells, endpoints, strict=True):
                _warm_up(cell, scenario, endpoint, opts)
            redone = 0
            while len(cells[0].runs) < opts.runs:
                if cells[0].runs or redone:
                    time.sleep(0.2)
                runs = _run_together(cells, scenario, endpoints, opts)
                if (
                    runs[0]["server_core_other"] > opts.max_other
                    and redone < opts.retries
                ):
                    redone += 1
                    for cell, run in zip(cells, runs, strict=True):
                        cell.contended.append(run)
                    continue
                for cell, run in zip(cells, runs, strict=True):
                    cell.runs.append(run)
        except (RuntimeError, subprocess.TimeoutExpired) as error:
            for cell in cells:
                cell.problems.append(str(error))
            return cells
        for cell, endpoint in zip(cells, endpoints, strict=True):
            _finish_cell(cell, endpoint)
    return cells


def _run_together(
    cells: list[Cell], scenario: Scenario, endpoints: list[Endpoint], opts: Options
) -> list[dict[str, Any]]:
    """Load every endpoint at once, one load generator each; return their runs."""
    before = [_usage(endpoint) for endpoint in endpoints]
    core0, steal0 = cpu_busy_seconds(opts.server_cpu)
    load0, _ = cpu_busy_seconds(opts.load_cpu)
    runs: list[dict[str, Any] | BaseException | None] = [None] * len(endpoints)

    def load(index: int) -> None:
        endpoint = endpoints[index]
        try:
            runs[index] = _load(scenario, endpoint, opts)
        except BaseException as error:  # reported from the main thread
            runs[index] = error

    threads = [
        threading.Thread(target=load, args=(index,)) for index in range(len(runs))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    after = [_usage(endpoint) for endpoint in endpoints]
    core1, steal1 = cpu_busy_seconds(opts.server_cpu)
    load1, _ = cpu_busy_seconds(opts.load_cpu)
    done: list[dict[str, Any]] = []
    for run in runs:
        if not isinstance(run, dict):
            raise RuntimeError(f"a load generator failed: {run}")
        done.append(run)
    span = max([run["duration_s"] for run in done] + [1e-9])
    servers = sum(a[0] - b[0] for a, b in zip(after, before, strict=True))
    for cell, endpoint, run, start, end in zip(
        cells, endpoints, done, before, after, strict=True
    ):
        # The load generators run at once, so each one's CPU cannot be told
        # apart from the others' (they are all children): the load core's
        # busy share stands for them all.
        run["client_cpu_s"] = load1 - load0
        _account(
            cell,
            scenario,
            endpoint,
            run,
            before=start,
            after=end,
            other=max(0.0, (core1 - core0) - servers) / span,
            steal=(steal1 - steal0) / span,
        )
    return done


def _usage(endpoint: Endpoint) -> tuple[float, float]:
    """Return the CPU seconds used so far by the server and by its frontend."""
    front = process_tree(endpoint.frontend.pid) if endpoint.frontend else []
    return cpu_seconds(process_tree(endpoint.process.pid)), cpu_seconds(front)


def _account(
    cell: Cell,
    scenario: Scenario,
    endpoint: Endpoint,
    run: dict[str, Any],
    *,
    before: tuple[float, float],
    after: tuple[float, float],
    other: float,
    steal: float,
) -> None:
    """Add the server's CPU, its core's and the run's checks to a run."""
    ok = max(run["ok"], 1)
    span = max(run["duration_s"], 1e-9)
    run["server_cpu_s"] = after[0] - before[0]
    run["server_cpu_us_per_req"] = (after[0] - before[0]) / ok * 1e6
    run["server_core_busy"] = (after[0] - before[0]) / span
    run["client_core_busy"] = run["client_cpu_s"] / span
    # What else ran on the server's core (other processes; also some of the
    # kernel's loopback work), and what the hypervisor took from it.
    run["server_core_other"] = other
    run["server_core_steal"] = steal
    if endpoint.frontend is not None:
        run["nginx_cpu_us_per_req"] = (after[1] - before[1]) / ok * 1e6
    run["peak_rss_mib"] = rss_mib(process_tree(endpoint.process.pid), "VmHWM")
    run["problems"] = check_run(run, scenario)
    for problem in run["problems"]:
        if problem not in cell.problems:
            cell.problems.append(problem)


def _warm_up(cell: Cell, scenario: Scenario, endpoint: Endpoint, opts: Options) -> None:
    """Warm the server up with the same load; note its RSS after."""
    tool, target = endpoint.tool, endpoint.target
    # For the 64 MiB POST with small POSTs only, so that the baseline RSS is not
    # inflated by memory a big request left behind.
    if scenario.memory:
        seconds = opts.warmup if tool == "wrk" else 5
        warm = run_load(
            scenario,
            tool,
            target,
            duration=seconds,
            cpu=opts.load_cpu,
            max_requests=3,
            concurrency=1,
            body=MIB,
        )
    else:
        warm = run_load(scenario, tool, target, duration=opts.warmup, cpu=opts.load_cpu)
    problems = check_run(warm, SCENARIOS["post1m-c8"] if scenario.memory else scenario)
    if problems:
        raise RuntimeError("warm-up failed: " + "; ".join(problems))
    pids = process_tree(endpoint.process.pid)
    cell.rss_before_mib = rss_mib(pids, "VmRSS")
    if not reset_peak_rss(pids):
        cell.problems.append("could not reset VmHWM: peak RSS includes start-up")


def _load(scenario: Scenario, endpoint: Endpoint, opts: Options) -> dict[str, Any]:
    """Load ``endpoint`` once with the scenario's request, as every run does."""
    return run_load(
        scenario,
        endpoint.tool,
        endpoint.target,
        duration=opts.duration,
        cpu=opts.load_cpu,
        max_requests=scenario.max_requests,
    )


def _one_run(
    cell: Cell, scenario: Scenario, endpoint: Endpoint, opts: Options
) -> dict[str, Any]:
    """Run the load once; return the run with the server's CPU and its core's."""
    before = _usage(endpoint)
    core0, steal0 = cpu_busy_seconds(opts.server_cpu)
    run = _load(scenario, endpoint, opts)
    after = _usage(endpoint)
    core1, steal1 = cpu_busy_seconds(opts.server_cpu)
    span = max(run["duration_s"], 1e-9)
    _account(
        cell,
        scenario,
        endpoint,
        run,
        before=before,
        after=after,
        other=max(0.0, (core1 - core0) - (after[0] - before[0])) / span,
        steal=(steal1 - steal0) / span,
    )
    return run


def _measure_runs(
    cell: Cell, scenario: Scenario, endpoint: Endpoint, opts: Options
) -> None:
    attempts: list[dict[str, Any]] = []
    while True:
        clean = [a for a in attempts if a["server_core_other"] <= opts.max_other]
        if len(attempts) >= opts.runs and (
            len(clean) >= opts.runs or len(attempts) >= opts.runs + opts.retries
        ):
            break
        if attempts:
            time.sleep(0.2)
        attempts.append(_one_run(cell, scenario, endpoint, opts))
    # A run during which another process took the server's core measured the
    # machine, not the server: keep the least contended runs, set the others aside.
    attempts.sort(key=lambda r: r["server_core_other"])
    cell.runs = attempts[: opts.runs]
    cell.contended = attempts[opts.runs :]
    _finish_cell(cell, endpoint)


def _finish_cell(cell: Cell, endpoint: Endpoint) -> None:
    """Note the server's peak RSS and take the medians of the cell's runs."""
    pids = process_tree(endpoint.process.pid)
    cell.peak_rss_mib = rss_mib(pids, "VmHWM")
    cell.rss_growth_mib = cell.peak_rss_mib - cell.rss_before_mib
    _summarize(cell)


_MEDIANS: dict[str, Callable[[dict[str, Any]], float]] = {
    "rps": lambda r: r["rps"],
    "p50_ms": lambda r: r["latency_ms"]["p50"],
    "p99_ms": lambda r: r["latency_ms"]["p99"],
    "cpu_us_per_req": lambda r: r["server_cpu_us_per_req"],
    "server_core_busy": lambda r: r["server_core_busy"],
    "client_core_busy": lambda r: r["client_core_busy"],
    "server_core_other": lambda r: r["server_core_other"],
    "server_core_steal": lambda r: r["server_core_steal"],
    "peak_rss_mib": lambda r: r["peak_rss_mib"],
    "nginx_cpu_us_per_req": lambda r: r["nginx_cpu_us_per_req"],
}


def _summarize(cell: Cell) -> None:
    """Set the cell's medians from its runs."""
    cell.median = {
        k: statistics.median(f(r) for r in cell.runs)
        for k, f in _MEDIANS.items()
        if k != "nginx_cpu_us_per_req" or "nginx_cpu_us_per_req" in cell.runs[0]
    }


def merge_rounds(first: Cell, later: Cell) -> None:
    """Add the runs of a later round to ``first``'s and take the medians of all.

    A round measures every server once more, after the others: a drift of the
    machine during the benchmark then touches each server alike.
    """
    first.runs += later.runs
    first.contended += later.contended
    first.problems += [p for p in later.problems if p not in first.problems]
    if later.rss_growth_mib > first.rss_growth_mib:
        first.rss_before_mib = later.rss_before_mib
        first.peak_rss_mib = later.peak_rss_mib
        first.rss_growth_mib = later.rss_growth_mib
    if first.runs:
        _summarize(first)


# --- the report ----------------------------------------------------------------


def ratio(
    cells: dict[tuple[str, str, str], Cell],
    key: tuple[str, str, str],
    against: str = SUBJECT,
) -> float:
    """Return scgi_twisted's (or ``against``'s) median req/s divided by this cell's.

    0 if unknown.
    """
    cell = cells.get(key)
    subject = cells.get((key[0], key[1], against))
    if not cell or not subject or not cell.median or not subject.median:
        return 0.0
    if cell.median["rps"] <= 0:
        return 0.0
    return subject.median["rps"] / cell.median["rps"]


def paired(
    cells: dict[tuple[str, str, str], Cell],
    key: tuple[str, str, str],
    against: str = SUBJECT,
) -> tuple[float, float, int] | None:
    """Return the medians of the ratios within each run of two cells measured together.

    ``(req/s ratio, CPU ratio, cycles)``, oriented like :func:`ratio` and
    :func:`cpu_ratio`; ``None`` unless both cells were measured together by
    :func:`measure_together`, whose runs pair up by position.
    """
    cell = cells.get(key)
    subject = cells.get((key[0], key[1], against))
    if not cell or not subject or not (cell.together and subject.together):
        return None
    if not cell.runs or len(cell.runs) != len(subject.runs):
        return None
    pairs = list(zip(subject.runs, cell.runs, strict=True))
    rps = [s["rps"] / c["rps"] for s, c in pairs if c["rps"] > 0]
    cpu = [
        c["server_cpu_us_per_req"] / s["server_cpu_us_per_req"]
        for s, c in pairs
        if s["server_cpu_us_per_req"] > 0
    ]
    if not rps or not cpu:
        return None
    return statistics.median(rps), statistics.median(cpu), len(pairs)


def cpu_ratio(
    cells: dict[tuple[str, str, str], Cell],
    key: tuple[str, str, str],
    against: str = SUBJECT,
) -> float:
    """Return this cell's CPU per request divided by scgi_twisted's (0 if unknown).

    Like :func:`ratio`, above 1 means scgi_twisted (or ``against``) is better;
    unlike req/s it hardly depends on what else runs on the machine.
    """
    cell = cells.get(key)
    subject = cells.get((key[0], key[1], against))
    if not cell or not subject or not cell.median or not subject.median:
        return 0.0
    if subject.median["cpu_us_per_req"] <= 0:
        return 0.0
    return cell.median["cpu_us_per_req"] / subject.median["cpu_us_per_req"]


def table(cells: dict[tuple[str, str, str], Cell], opts: Options) -> str:
    """Format every cell as one table, with ratios."""
    header = (
        f"{'scenario':<17} {'via':<5} {'server':<28} {'req/s':>8} "
        f"{'st/x':>6} {'cpu/x':>6} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'CPU us/req':>10} {'srv%':>5} "
        f"{'peak MiB':>8} {'+MiB':>6}  notes"
    )
    lines = [header, "-" * len(header)]
    previous = ("", "")
    for key, cell in cells.items():
        scenario, transport, server = key
        first = (scenario, transport) != previous
        previous = (scenario, transport)
        if first and len(lines) > 2:
            lines.append("")
        title = SCENARIOS[scenario].title if first else ""
        via = transport if first else ""
        label = SERVERS[server].label
        if SCENARIOS[scenario].nginx:
            label = "nginx->" + label
        if cell.skipped:
            lines.append(
                f"{title:<17} {via:<5} {label:<28} {'n/a':>8}  ({cell.skipped})"
            )
            continue
        if not cell.median:
            lines.append(
                f"{title:<17} {via:<5} {label:<28} {'FAILED':>8}  "
                + "; ".join(cell.problems)
            )
            continue
        m = cell.median
        notes = []
        if cell.problems:
            notes.append("! " + "; ".join(cell.problems))
        if m["client_core_busy"] > 0.9:
            notes.append(f"load core {m['client_core_busy']:.0%} busy")
        if "nginx_cpu_us_per_req" in m:
            notes.append(f"nginx {m['nginx_cpu_us_per_req']:.0f} us/req")
        if cell.contended:
            notes.append(f"{len(cell.contended)} contended run(s) dropped")
        if m["server_core_other"] > 0.15:
            notes.append(f"CPU {opts.server_cpu} {m['server_core_other']:.0%} other")
        if m["server_core_steal"] > 0.05:
            notes.append(f"{m['server_core_steal']:.0%} stolen")
        if cell.time_wait and cell.time_wait > TIME_WAIT_WARN:
            notes.append(f"{cell.time_wait} TIME_WAIT")
        r, c = ratio(cells, key), cpu_ratio(cells, key)
        both = paired(cells, key)
        if both is not None and server != SUBJECT:
            r, c = both[0], both[1]
        lines.append(
            f"{title:<17} {via:<5} {label:<28} {m['rps']:>8.0f} "
            f"{(f'{r:.2f}' if r else '-'):>6} {(f'{c:.2f}' if c else '-'):>6} "
            f"{m['p50_ms']:>7.2f} {m['p99_ms']:>7.2f} "
            f"{m['cpu_us_per_req']:>10.1f} {m['server_core_busy'] * 100:>5.0f} "
            f"{cell.peak_rss_mib:>8.1f} {cell.rss_growth_mib:>+6.1f}  "
            + "; ".join(notes)
        )
    return "\n".join(lines)


def evaluate_targets(
    cells: dict[tuple[str, str, str], Cell], transports: list[str]
) -> list[dict[str, Any]]:
    """Check each target on each transport that has the figures."""
    results = []
    for target in TARGETS:
        for transport in transports:
            subject = cells.get((target.scenario, transport, target.subject))
            if not subject or not subject.median:
                continue
            if target.max_growth_mib is not None:
                value = subject.rss_growth_mib
                passed = value <= target.max_growth_mib
                shown = f"{value:+.1f} MiB"
            else:
                reference = cells.get((target.scenario, transport, target.reference))
                if not reference or not reference.median:
                    continue
                key = (target.scenario, transport, target.reference)
                value = ratio(cells, key, target.subject)
                cpu = cpu_ratio(cells, key, target.subject)
                shown = f"{value:.2f}x (CPU/request: {cpu:.2f}x)"
                both = paired(cells, key, target.subject)
                if both is not None:
                    # Runs made at the same moments pair up: the median of the
                    # pairs' ratios leaves out the machine's drift, which the
                    # medians of each server's runs keep.
                    shown = (
                        f"{both[0]:.2f}x, the median of {both[2]} runs together "
                        f"(CPU/request: {both[1]:.2f}x; ratio of the medians "
                        f"{value:.2f}x)"
                    )
                    value = both[0]
                passed = value >= target.minimum
            results.append(
                {
                    "target": target.describe(),
                    "scenario": target.scenario,
                    "transport": transport,
                    "reference": target.reference,
                    "value": value,
                    "pass": passed,
                    "shown": shown,
                    "valid": not subject.problems,
                }
            )
    return results


def machine() -> dict[str, Any]:
    """Describe the machine and the software measured."""
    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(Exception):
        import twisted

        info["twisted"] = twisted.__version__
    head = os.path.join(REPO, ".git", "HEAD")
    with contextlib.suppress(OSError), open(head) as ref:
        text = ref.read().strip()
        if text.startswith("ref: "):
            with open(os.path.join(REPO, ".git", text[5:])) as commit:
                text = commit.read().strip()
        info["commit"] = text
    for name in ("tcp_tw_reuse", "ip_local_port_range"):
        with contextlib.suppress(OSError), open(f"/proc/sys/net/ipv4/{name}") as value:
            info[name] = value.read().strip()
    return info


# --- main ----------------------------------------------------------------------


def _choose(value: str, known: dict[str, Any], what: str) -> list[str]:
    chosen = [item.strip() for item in value.split(",") if item.strip()]
    unknown = [item for item in chosen if item not in known]
    if unknown:
        raise SystemExit(
            f"unknown {what}: {', '.join(unknown)}; known: {', '.join(known)}"
        )
    return chosen


def _measure_cell(
    cells: dict[tuple[str, str, str], Cell],
    scenario: Scenario,
    transport: str,
    server: Server,
    opts: Options,
) -> None:
    """Measure one (scenario, transport, server), adding to an earlier round's."""
    print(f"  {scenario.key:<16} {transport:<5} {server.key:<16}", end=" ", flush=True)
    _report_cell(cells, measure(scenario, transport, server, opts), indent=False)


def _report_cell(
    cells: dict[tuple[str, str, str], Cell], cell: Cell, indent: bool = True
) -> None:
    """Print a measured cell's figure; add its runs to an earlier round's."""
    if indent:
        print(f"    {cell.server:<24}", end=" ", flush=True)
    key = (cell.scenario, cell.transport, cell.server)
    if cell.skipped:
        print("skipped:", cell.skipped, flush=True)
    elif cell.median:
        print(
            f"{cell.median['rps']:9.0f} req/s"
            + ("  ! " + "; ".join(cell.problems) if cell.problems else ""),
            flush=True,
        )
    else:
        print("FAILED:", "; ".join(cell.problems), flush=True)
    if key in cells:
        merge_rounds(cells[key], cell)
    else:
        cells[key] = cell


def _measure_group(
    cells: dict[tuple[str, str, str], Cell],
    scenario: Scenario,
    transport: str,
    servers: list[Server],
    opts: Options,
) -> None:
    """Measure servers together (``--together``), adding to earlier rounds'."""
    names = ",".join(server.key for server in servers)
    print(f"  {scenario.key:<16} {transport:<5} {names} (together)", flush=True)
    for cell in measure_together(scenario, transport, servers, opts):
        _report_cell(cells, cell)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return the exit status."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="1 run of 1 s each, short warm-ups"
    )
    parser.add_argument("--runs", type=int, help="runs per figure, median kept (3)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure every server this many times, one after the other, and keep "
        "the median of all their runs (1)",
    )
    parser.add_argument(
        "--together",
        action="store_true",
        help="load the chosen servers of a scenario at the same moments, sharing "
        "the server's core, one load generator each; ratios are then medians of "
        "the ratios within each run",
    )
    parser.add_argument("--duration", type=float, help="seconds per run (3)")
    parser.add_argument("--warmup", type=float, help="warm-up seconds (1)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument(
        "--servers",
        help="default: all but 'baseline', which is added when --baseline is given",
    )
    parser.add_argument("--transports", default="tcp,unix")
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--load-cpu", type=int, default=1)
    parser.add_argument(
        "--max-other",
        type=float,
        default=0.2,
        help="redo a run if other processes used more than this share of the "
        "server's core (0.2)",
    )
    parser.add_argument(
        "--retries", type=int, default=3, help="contended runs redone per figure (3)"
    )
    parser.add_argument("--output", default=os.path.join(OUT, "results.json"))
    parser.add_argument(
        "--profile",
        action="store_true",
        help="run the Twisted servers under cProfile (slow): bench/out/profile-*.prof",
    )
    parser.add_argument(
        "--list", action="store_true", help="list scenarios and servers"
    )
    parser.add_argument(
        "--baseline",
        metavar="DIR",
        help="the checkout the 'baseline' server runs scgi_twisted from, e.g. a "
        "worktree of the previous commit (default: this one)",
    )
    args = parser.parse_args(argv)
    if args.list:
        for scenario in SCENARIOS.values():
            print(f"scenario {scenario.key:<16} {scenario.title}")
        for server in SERVERS.values():
            print(f"server   {server.key:<16} {server.label} (load: {server.load})")
        return 0
    # Always in the canonical order, scgi_twisted first.
    chosen = set(_choose(args.scenarios, SCENARIOS, "scenarios"))
    scenarios = [s for k, s in SCENARIOS.items() if k in chosen]
    if args.servers is None:
        everyone = [k for k in SERVERS if k != "baseline" or args.baseline]
        args.servers = ",".join(everyone)
    chosen = set(_choose(args.servers, SERVERS, "servers"))
    servers = [s for k, s in SERVERS.items() if k in chosen]
    chosen = set(_choose(args.transports, {"tcp": 1, "unix": 1}, "transports"))
    transports = [t for t in ("tcp", "unix") if t in chosen]
    runs = args.runs or (1 if args.quick else 3)
    duration = args.duration or (1.0 if args.quick else 3.0)
    warmup = args.warmup or (0.3 if args.quick else 1.0)

    missing = check_prerequisites(scenarios, servers, (args.server_cpu, args.load_cpu))
    if missing:
        print("missing prerequisites:", file=sys.stderr)
        for line in missing:
            print("  - " + line, file=sys.stderr)
        return 2
    build_loadgen()
    os.makedirs(OUT, exist_ok=True)
    logdir = os.path.join(OUT, "logs")
    os.makedirs(logdir, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="scgi-bench-")
    opts = Options(
        runs,
        duration,
        warmup,
        args.server_cpu,
        args.load_cpu,
        args.profile,
        workdir,
        logdir,
        args.max_other,
        args.retries,
        os.path.abspath(args.baseline) if args.baseline else None,
    )
    print(
        f"server on CPU {opts.server_cpu}, load on CPU {opts.load_cpu}; {runs} run(s) "
        f"of {duration:g} s, median kept; logs in {logdir}",
        flush=True,
    )
    cells: dict[tuple[str, str, str], Cell] = {}
    started_at = time.time()
    try:
        for round_ in range(args.rounds):
            if args.rounds > 1:
                print(f"round {round_ + 1} of {args.rounds}", flush=True)
            for scenario in scenarios:
                for transport in transports:
                    if args.together and not scenario.memory:
                        _measure_group(cells, scenario, transport, servers, opts)
                        continue
                    for server in servers:
                        _measure_cell(cells, scenario, transport, server, opts)
    except KeyboardInterrupt:
        print("\ninterrupted: reporting what was measured", file=sys.stderr)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    elapsed = time.time() - started_at
    print()
    print(
        f"scgi_twisted benchmark: median of {runs} run(s) of {duration:g} s"
        + (f" in each of {args.rounds} rounds" if args.rounds > 1 else "")
        + "; server on "
        f"CPU {opts.server_cpu}, load generator (and nginx) on CPU {opts.load_cpu}"
    )
    print(
        "st/x = scgi_twisted req/s / this row's req/s; cpu/x = this row's CPU per "
        "request / scgi_twisted's (both > 1: scgi_twisted is better)"
        + (
            "; --together: every req/s is a server's share of the core, and both "
            "ratios are medians of the ratios within each run"
            if args.together
            else ""
        )
    )
    print()
    print(table(cells, opts))
    targets = evaluate_targets(cells, transports)
    if targets:
        print()
        print("targets (scgi_twisted vs reference, same scenario and transport):")
        for result in targets:
            mark = "PASS" if result["pass"] else "FAIL"
            if not result["valid"]:
                mark += "?"
            print(
                f"  [{mark}] {result['transport']:<4} {result['target']:<52} "
                f"got {result['shown']}"
            )
    print(f"\n{elapsed:.0f} s; JSON in {args.output}")
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "command": [sys.executable, *sys.argv],
        "machine": machine(),
        "options": {
            "runs": runs,
            "rounds": args.rounds,
            "duration_s": duration,
            "warmup_s": warmup,
            "server_cpu": opts.server_cpu,
            "load_cpu": opts.load_cpu,
            "together": args.together,
        },
        "cells": [
            {
                "scenario": c.scenario,
                "transport": c.transport,
                "server": c.server,
                "skipped": c.skipped,
                "problems": c.problems,
                "median": c.median,
                "ratio_scgi_twisted_over_this": ratio(cells, key),
                "cpu_ratio_this_over_scgi_twisted": cpu_ratio(cells, key),
                "rss_before_mib": c.rss_before_mib,
                "peak_rss_mib": c.peak_rss_mib,
                "rss_growth_mib": c.rss_growth_mib,
                "time_wait_before": c.time_wait,
                "runs": c.runs,
                "contended_runs": c.contended,
            }
            for key, c in cells.items()
        ],
        "targets": targets,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as out:
        json.dump(report, out, indent=1)
    failed = any(not c.skipped and (c.problems or not c.median) for c in cells.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
