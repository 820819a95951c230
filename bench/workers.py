#!/usr/bin/env python3
"""Throughput of ``twistd scgi --workers N`` behind nginx, for N = 1 and 2.

One command (see the "Workers" section of bench/README.md)::

    python bench/workers.py                      # 1 and 2 workers, 3 runs of 5 s each
    python bench/workers.py --workers 1,2,3 --runs 5 --duration 10

For each worker count it starts ``twistd -n scgi --workers N`` on a unix socket, an
nginx (``--nginx-workers`` processes, default 1) with ``scgi_pass`` to it, and loads
nginx with ``wrk -t1 -c32`` on ``GET /hello``.  Nothing is pinned: the point is to
let the workers spread over the cores, and nginx and wrk compete with them for the
same cores, as they would on a small host.  Each run measures the requests per
second, the latency percentiles, and the CPU time per request of each party (the
workers, the supervisor, nginx, wrk) from ``/proc``, which tells what bounds the
figure: with C cores the machine can serve at most ``C * 1e6 / (total CPU us per
request)`` requests per second.  It prints a table and the ratio of each worker
count's throughput to that of one worker, and writes everything to
``bench/out/workers.json``.

It also serves as the application: ``--resource workers.Hello`` names
:class:`Hello` in this file (the workers import it, with this directory on their
path).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from twisted.web.resource import Resource
from twisted.web.server import Request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
OUT = os.path.join(HERE, "out")
CLK_TCK = os.sysconf("SC_CLK_TCK")
BODY = b"Hello, world!"


class Hello(Resource):
    """``GET /hello``: 13 bytes of text, the same as bench/run.py's hello route."""

    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        """Say hello."""
        request.setHeader(b"content-type", b"text/plain")
        return BODY


# --- processes and their CPU time ------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    """Return the fields of ``/proc/PID/stat`` after the command name, or ``None``."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as file:
            return file.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def children(pid: int) -> list[int]:
    """Return the pids whose parent is ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None and int(fields[1]) == pid:
                found.append(int(entry))
    return found


def cpuSeconds(pids: list[int]) -> float:
    """Return the user+system CPU seconds the processes used so far."""
    total = 0
    for pid in pids:
        fields = _stat(pid)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def machineBusy() -> tuple[float, float]:
    """Return (busy, total) CPU seconds of the machine since boot (``/proc/stat``)."""
    with open("/proc/stat", encoding="ascii") as file:
        values = [int(v) for v in file.readline().split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return (total - idle) / CLK_TCK, total / CLK_TCK


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM a process we started; SIGKILL its group if it does not exit."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def waitUntil(condition: Any, what: str, process: subprocess.Popen[bytes]) -> None:
    """Poll ``condition`` until it holds; fail if ``process`` dies or 60 s pass."""
    deadline = time.monotonic() + 60
    while not condition():
        if process.poll() is not None:
            raise RuntimeError(f"{what}: the process exited ({process.returncode})")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: took over 60 s")
        time.sleep(0.05)


@contextlib.contextmanager
def backend(directory: str, workers: int) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``twistd -n scgi --workers N`` on ``directory/scgi.sock``."""
    log = os.path.join(directory, f"twistd-{workers}.log")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [HERE, REPO, *filter(None, [env.get("PYTHONPATH")])]
    )
    command = [
        sys.executable,
        "-c",
        "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; "
        "sys.exit(run())",
        "-n",
        "--pidfile=",
        "scgi",
        "--workers",
        str(workers),
        "--listen",
        f"unix:{directory}/scgi.sock:mode=666",
        "--resource",
        "workers.Hello",
        "--access-log",
        os.devnull,
    ]
    with open(log, "wb") as output:
        process = subprocess.Popen(
            command,
            cwd=directory,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def ready() -> bool:
            with open(log, encoding="utf-8", errors="replace") as file:
                return f"All {workers} worker(s) serve" in file.read()

        waitUntil(ready, "the workers to serve", process)
        yield process
    finally:
        stop(process)


def nginxBinary() -> str:
    """Find nginx, or explain how to install it."""
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None
    )
    if found is None:
        raise SystemExit("nginx is missing: apt-get install nginx-light")
    return found


@contextlib.contextmanager
def nginx(directory: str, processes: int) -> Iterator[tuple[int, int]]:
    """Run nginx in front of ``directory/scgi.sock``; yield (its pid, its port)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    params = "/etc/nginx/scgi_params"
    user = "user root;" if os.geteuid() == 0 else ""
    config = f"""
daemon off;
master_process on;
worker_processes {processes};
{user}
pid {directory}/nginx.pid;
error_log {directory}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {directory}/client_body_temp;
    scgi_temp_path {directory}/scgi_temp;
    proxy_temp_path {directory}/proxy_temp;
    fastcgi_temp_path {directory}/fastcgi_temp;
    uwsgi_temp_path {directory}/uwsgi_temp;
    upstream app {{ server unix:{directory}/scgi.sock; }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            include {params};
            scgi_pass app;
        }}
    }}
}}
"""
    path = os.path.join(directory, "nginx.conf")
    with open(path, "w") as file:
        file.write(config)
    binary = nginxBinary()
    with open(os.path.join(directory, "nginx.out"), "wb") as output:
        process = subprocess.Popen(
            [binary, "-p", directory + "/", "-c", path],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def accepts() -> bool:
            with socket.socket() as probe:
                return probe.connect_ex(("127.0.0.1", port)) == 0

        waitUntil(accepts, "nginx to accept", process)
        yield process.pid, port
    finally:
        stop(process)


def wrk(port: int, duration: float, connections: int) -> dict[str, Any]:
    """Run ``wrk -t1`` on ``GET /hello``; return its figures and its CPU seconds."""
    command = ["wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "--latency"]
    command += ["--timeout", "10s", f"http://127.0.0.1:{port}/hello"]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    assert process.stdout is not None
    output = process.stdout.read().decode()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"wrk failed:\n{output}")
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: (.*)", output)
    latency = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", output, re.M))
    if rate is None or total is None:
        raise RuntimeError(f"cannot read wrk's output:\n{output}")
    return {
        "rps": float(rate.group(1)),
        "requests": int(total.group(1)),
        "non2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": errors.group(1) if errors else "",
        "p50": latency.get("50", "?"),
        "p99": latency.get("99", "?"),
        "wrk_cpu_s": usage.ru_utime + usage.ru_stime,
    }


def measure(
    workers: int, args: argparse.Namespace, directory: str
) -> list[dict[str, Any]]:
    """Start the backend and nginx, warm up, and return one result per run."""
    runs = []
    with (
        backend(directory, workers) as server,
        nginx(directory, args.nginx_workers) as (nginxPid, port),
    ):
        workerPids = children(server.pid)
        nginxPids = [nginxPid, *children(nginxPid)]
        wrk(port, 1, args.connections)  # warm-up
        attempts = 0
        while len(runs) < args.runs:
            attempts += 1
            before = (
                cpuSeconds(workerPids),
                cpuSeconds([server.pid]),
                cpuSeconds(nginxPids),
                machineBusy(),
            )
            result = wrk(port, args.duration, args.connections)
            after = (
                cpuSeconds(workerPids),
                cpuSeconds([server.pid]),
                cpuSeconds(nginxPids),
                machineBusy(),
            )
            requests = max(result["requests"], 1)
            busy = after[3][0] - before[3][0]
            total = after[3][1] - before[3][1]
            ours = sum(after[i] - before[i] for i in range(3)) + result["wrk_cpu_s"]
            elapsed = total / (os.cpu_count() or 1)
            other = max(0.0, busy - ours) / elapsed if elapsed else 0.0
            result.update(
                workers=workers,
                worker_us=(after[0] - before[0]) / requests * 1e6,
                supervisor_us=(after[1] - before[1]) / requests * 1e6,
                nginx_us=(after[2] - before[2]) / requests * 1e6,
                wrk_us=result["wrk_cpu_s"] / requests * 1e6,
                machine_busy=busy / total if total else 0.0,
                worker_pids=workerPids,
                other_cores=other,
            )
            if other > args.max_other and attempts < args.runs + args.retries:
                print(
                    f"  ({workers} worker(s): other processes used {other:.2f} "
                    "cores during the run: redoing it)",
                    file=sys.stderr,
                )
                continue
            runs.append(result)
    return runs


def median(runs: list[dict[str, Any]], key: str) -> float:
    """The median of one figure over the runs."""
    return statistics.median(run[key] for run in runs)


def main() -> int:
    """Measure, print the table, write ``bench/out/workers.json``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="1,2", help="worker counts (1,2)")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (3)")
    parser.add_argument("--duration", type=float, default=5, help="seconds (5)")
    parser.add_argument("--connections", type=int, default=32, help="wrk -c (32)")
    parser.add_argument(
        "--nginx-workers", type=int, default=1, help="nginx worker_processes (1)"
    )
    parser.add_argument(
        "--max-other",
        type=float,
        default=0.2,
        help="redo a run during which other processes used more cores (0.2)",
    )
    parser.add_argument(
        "--retries", type=int, default=6, help="redone runs allowed per figure (6)"
    )
    args = parser.parse_args()
    # Stop what was started (the finally blocks) when stopped with SIGTERM too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install wrk")
    counts = [int(n) for n in args.workers.split(",")]
    results: dict[int, list[dict[str, Any]]] = {}
    cores = os.cpu_count() or 1
    for count in counts:
        directory = tempfile.mkdtemp(prefix="scgi-bench-workers-")
        try:
            results[count] = measure(count, args, directory)
        finally:
            shutil.rmtree(directory, ignore_errors=True)
    base = median(results[counts[0]], "rps")
    print(
        f"wrk -t1 -c{args.connections} -> nginx ({args.nginx_workers} worker) -> "
        f"twistd scgi --workers N (unix socket), GET /hello, {args.runs} x "
        f"{args.duration:g} s, {cores} cores, nothing pinned"
    )
    header = (
        f"{'workers':>7} {'req/s':>8} {'ratio':>6} {'p50':>8} {'p99':>8} "
        f"{'workers':>8} {'superv.':>8} {'nginx':>7} {'wrk':>6} {'total':>7} "
        f"{'bound':>7} {'other':>5}  errors"
    )
    print(header)
    print(f"{'':>7} {'':>8} {'':>6} {'':>8} {'':>8} {'--- CPU us per request ---':>42}")
    for count in counts:
        runs = results[count]
        rps = median(runs, "rps")
        costs = [
            median(runs, key)
            for key in ("worker_us", "supervisor_us", "nginx_us", "wrk_us")
        ]
        total = sum(costs)
        bound = cores * 1e6 / total if total else 0.0
        best = statistics.median_low([run["rps"] for run in runs])
        middle = next(run for run in runs if run["rps"] == best)
        errors = sum(run["non2xx"] for run in runs)
        sockets = "; ".join(
            run["socket_errors"] for run in runs if run["socket_errors"]
        )
        print(
            f"{count:>7} {rps:>8.0f} {rps / base:>6.2f} {middle['p50']:>8} "
            f"{middle['p99']:>8} {costs[0]:>8.1f} {costs[1]:>8.1f} {costs[2]:>7.1f} "
            f"{costs[3]:>6.1f} {total:>7.1f} {bound:>7.0f} "
            f"{median(runs, 'other_cores'):>5.2f}  {errors} non-2xx {sockets}"
        )
    print(
        "bound = cores x 1e6 / total CPU us per request: the most this machine could "
        "serve if every core were busy with exactly this mix; other = cores used by "
        "other processes during the runs (runs above --max-other are redone)."
    )
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "workers.json"), "w") as file:
        json.dump({str(k): v for k, v in results.items()}, file, indent=1)
    failed = any(run["non2xx"] for runs in results.values() for run in runs)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
