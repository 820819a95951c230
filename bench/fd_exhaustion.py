"""Running out of file descriptors: a burst of connections against a low ``ulimit -n``.

It starts ``twistd -n scgi`` with its soft ``RLIMIT_NOFILE`` lowered to ``--nofile``
(64), on a unix socket (or ``--transport tcp``) with a backlog of 1024, serving an
application that answers ``/hold`` 200 ms later (so that the connections pile up)
and ``/hello`` at once.  Then it opens ``--connections`` (500) connections at once,
each sending one request for ``/hold``, and waits for every answer.  It reports:

* how many connections were answered, closed unanswered, reset, or timed out;
* the server's CPU time during the burst (a server that spins on a listening socket
  it cannot accept from burns a core for as long as the burst lasts);
* the server's log lines during the burst, and how many mention the descriptors;
* whether ``/hello`` is answered normally after the burst, and how many descriptors
  the server has open then.

Exit status 1 if the server did not answer normally after the burst, spun (CPU time
above half the burst's wall time), or logged more than ``--max-log-lines`` lines
about the condition::

    python bench/fd_exhaustion.py
    python bench/fd_exhaustion.py --connections 2000 --nofile 128 --transport tcp
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

APPLICATION = """
from twisted.internet import reactor
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET


class Hold(Resource):
    isLeaf = True

    def render_GET(self, request):
        def answer():
            request.write(b"held")
            request.finish()

        call = reactor.callLater(0.2, answer)
        request.notifyFinish().addErrback(lambda failure: call.cancel())
        return NOT_DONE_YET


class Hello(Resource):
    isLeaf = True

    def render_GET(self, request):
        return b"hello"


root = Resource()
root.putChild(b"hold", Hold())
root.putChild(b"hello", Hello())
"""


def request(path: str) -> bytes:
    """Return an SCGI GET request for ``path``."""
    pairs = [
        ("CONTENT_LENGTH", "0"),
        ("SCGI", "1"),
        ("REQUEST_METHOD", "GET"),
        ("REQUEST_URI", path),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("SERVER_NAME", "localhost"),
        ("SERVER_PORT", "80"),
    ]
    block = b"".join(f"{k}\0{v}\0".encode() for k, v in pairs)
    return b"%d:%s," % (len(block), block)


def cpuSeconds(pid: int) -> float:
    """Return the user+system CPU time of ``pid``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def openDescriptors(pid: int) -> int:
    """Return how many descriptors ``pid`` has open."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def descriptorTargets(pid: int) -> dict[str, str]:
    """Return what each open descriptor of ``pid`` refers to, by number."""
    targets = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            targets[fd] = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
    return targets


async def one(target: Any, payload: bytes, timeout: float) -> str:
    """Send one request; return how it ended."""
    try:
        if isinstance(target, str):
            reader, writer = await asyncio.open_unix_connection(target)
        else:
            reader, writer = await asyncio.open_connection(*target)
    except OSError as error:
        return f"connect failed ({type(error).__name__})"
    try:
        writer.write(payload)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), timeout)
    except (TimeoutError, asyncio.TimeoutError):
        return "timed out"
    except ConnectionResetError:
        return "reset"
    except OSError as error:
        return f"error ({type(error).__name__})"
    finally:
        writer.close()
    if data.endswith(b"held") or data.endswith(b"hello"):
        return "answered"
    return "closed unanswered" if not data else f"other: {data[:40]!r}"


async def burst(target: Any, count: int, timeout: float) -> dict[str, int]:
    """Open ``count`` connections at once; return how they ended."""
    results = await asyncio.gather(
        *(one(target, request("/hold"), timeout) for _ in range(count))
    )
    tally: dict[str, int] = {}
    for result in results:
        tally[result] = tally.get(result, 0) + 1
    return tally


def run(options: argparse.Namespace) -> dict[str, Any]:
    """Start the server, run the burst, measure."""
    directory = Path(tempfile.mkdtemp(prefix="scgi-emfile-"))
    (directory / "emfile_app.py").write_text(APPLICATION)
    if options.transport == "unix":
        target: Any = str(directory / "s.sock")
        listen = f"unix:{target}:backlog=1024"
    else:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        target = ("127.0.0.1", port)
        listen = f"tcp:{port}:interface=127.0.0.1:backlog=1024"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(directory), str(ROOT), *filter(None, [env.get("PYTHONPATH")])]
    )
    argv = [
        sys.executable,
        "-c",
        "import sys; from twisted.scripts.twistd import run; "
        "sys.argv[0] = 'twistd'; sys.exit(run())",
        "-n",
        "--pidfile=",
        "scgi",
        "--listen",
        listen,
        "--resource",
        "emfile_app.root",
        "--access-log",
        os.devnull,
    ]
    nofile = options.nofile

    def lower() -> None:
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, hard))

    log = directory / "server.log"
    with log.open("wb") as output:
        server = subprocess.Popen(
            argv,
            cwd=directory,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            preexec_fn=lower,  # noqa: PLW1509 - no threads run yet
        )
    try:
        deadline = time.monotonic() + 30
        while "SCGISite starting on" not in log.read_text(errors="replace"):
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the server did not start:\n{log.read_text()}")
            time.sleep(0.05)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < options.connections + 64:
            resource.setrlimit(
                resource.RLIMIT_NOFILE, (min(hard, options.connections + 256), hard)
            )
        # "starting on" is logged before the listening socket exists: one answered
        # request shows the server fully up before its descriptors are counted.
        while asyncio.run(burst(target, 1, 10)) != {"answered": 1}:
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the server does not answer:\n{log.read_text()}")
            time.sleep(0.05)
        fdsBefore = openDescriptors(server.pid)
        targetsBefore = descriptorTargets(server.pid)
        linesBefore = len(log.read_text(errors="replace").splitlines())
        cpuBefore = cpuSeconds(server.pid)
        started = time.monotonic()
        tally = asyncio.run(burst(target, options.connections, options.timeout))
        wall = time.monotonic() - started
        cpu = cpuSeconds(server.pid) - cpuBefore
        time.sleep(0.5)
        after = asyncio.run(burst(target, 20, 10))
        # The last connections close once their answers are flushed: on a loaded
        # machine that can take a while, so wait (up to 10 s) for the level to return.
        settle = time.monotonic() + 10
        fdsAfter = openDescriptors(server.pid)
        while fdsAfter > fdsBefore and time.monotonic() < settle:
            time.sleep(0.1)
            fdsAfter = openDescriptors(server.pid)
        # What is left open beyond the level before, to tell a leak from a slow
        # close when the level does not return.
        left = sorted(
            f"{fd} -> {target}"
            for fd, target in descriptorTargets(server.pid).items()
            if targetsBefore.get(fd) != target
        )
        lines = log.read_text(errors="replace").splitlines()[linesBefore:]
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    about = [
        line
        for line in lines
        if "descriptor" in line.lower() or "EMFILE" in line or "accept" in line.lower()
    ]
    result = {
        "transport": options.transport,
        "nofile": nofile,
        "connections": options.connections,
        "burst": tally,
        "burst_seconds": round(wall, 2),
        "server_cpu_seconds": round(cpu, 2),
        "log_lines": len(lines),
        "log_lines_about_descriptors": len(about),
        "log_sample": about[:5],
        "after_burst": after,
        "fds_before": fdsBefore,
        "fds_after": fdsAfter,
        "fds_left": left,
        "tracebacks": sum("Traceback" in line for line in lines),
    }
    result["passed"] = (
        after == {"answered": 20}
        and cpu <= wall / 2
        and len(about) <= options.max_log_lines
        and not result["tracebacks"]
    )
    shutil.rmtree(directory, ignore_errors=True)
    return result


def main() -> int:
    """Run from the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=500)
    parser.add_argument("--nofile", type=int, default=64)
    parser.add_argument("--transport", choices=["unix", "tcp"], default="unix")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--max-log-lines", type=int, default=4)
    options = parser.parse_args()
    result = run(options)
    print(json.dumps(result, indent=2))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
