"""Soak: a long run of mixed SCGI requests against one ``twistd scgi`` process.

It starts ``twistd -n scgi`` on a unix socket with the application below, and sends
``--requests`` requests over ``--concurrency`` connections at a time, in a fixed mix:

* ``GET /hello``: a short answer, checked byte for byte;
* ``POST /hash``: a random body (0 B to 1.5 MiB, the largest ones spooled to a file),
  answered with its SHA-256, which must match;
* ``GET /stream``: an answer written in pieces from the reactor, checked by length and
  SHA-256;
* aborts: an upload closed halfway, and a slow streamed answer closed after its first
  bytes;
* malformed requests (a bad netstring, a missing ``CONTENT_LENGTH``), which must get a
  ``Status: 400``.

At 10 evenly spaced points (and once after the warm-up) the load pauses until no
request is in flight, and the script reads the server's RSS and open descriptors from
``/proc`` and asks the application how many requests it saw start and end
(``notifyFinish``): every request it saw must have ended.  At the end the server is
stopped with SIGTERM and its log must hold no traceback.

Exit status 0 if no request failed, no body was corrupted, every request ended, the
log is clean, and the RSS and descriptors are flat after the warm-up (at most
``--rss-slack`` MiB of growth; the same descriptors); 1 otherwise::

    python bench/soak.py                          # 1,000,000 requests
    python bench/soak.py --requests 20000 --json /tmp/soak.json
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

APPLICATION = '''
"""The soak's application: hello, hash a body, stream an answer, and count."""

import hashlib
import json

from twisted.internet import reactor
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

COUNTS = {"started": 0, "finished": 0, "failed": 0}


def track(request):
    COUNTS["started"] += 1

    def done(result):
        COUNTS["finished"] += 1

    def lost(failure):
        COUNTS["finished"] += 1
        COUNTS["failed"] += 1

    request.notifyFinish().addCallbacks(done, lost)


def piece(index, size):
    return (b"%08d" % index) * (size // 8)


class Hello(Resource):
    isLeaf = True

    def render_GET(self, request):
        track(request)
        return b"hello, soak\\n"


class Hash(Resource):
    isLeaf = True

    def render_POST(self, request):
        track(request)
        digest = hashlib.sha256()
        while True:
            data = request.content.read(65536)
            if not data:
                break
            digest.update(data)
        return digest.hexdigest().encode("ascii")


class Stream(Resource):
    isLeaf = True

    def render_GET(self, request):
        track(request)
        count = int(request.args[b"n"][0])
        size = int(request.args[b"size"][0])
        delay = float(request.args.get(b"delay", [b"0"])[0])
        state = {"index": 0, "call": None}

        def step():
            state["call"] = None
            if state["index"] == count:
                request.finish()
                return
            request.write(piece(state["index"], size))
            state["index"] += 1
            state["call"] = reactor.callLater(delay, step)

        def stop(failure):
            if state["call"] is not None and state["call"].active():
                state["call"].cancel()

        request.notifyFinish().addErrback(stop)
        step()
        return NOT_DONE_YET


class Stats(Resource):
    isLeaf = True

    def render_GET(self, request):
        return json.dumps(COUNTS).encode("ascii")


root = Resource()
root.putChild(b"hello", Hello())
root.putChild(b"hash", Hash())
root.putChild(b"stream", Stream())
root.putChild(b"stats", Stats())
'''

HELLO = b"hello, soak\n"

KINDS = (
    ["hello"] * 8
    + ["hash"] * 6
    + ["stream"] * 3
    + ["abort-upload", "abort-stream"]
    + ["malformed"]
)
"""The mix, cycled through: 20 requests."""

HASH_SIZES = [0, 1, 100, 4096, 65536, 200_000, 1_000_000]
"""Body sizes of ``POST /hash``; every 50th body is 1.5 MiB (spooled to a file)."""

STREAMS = [(4, 1024), (16, 8192), (64, 16384)]
"""``(pieces, piece size)`` of ``GET /stream``."""


def variables(method: str, uri: str, length: int) -> bytes:
    """Return an SCGI header netstring as nginx frames one."""
    path, _, query = uri.partition("?")
    pairs = [
        ("CONTENT_LENGTH", str(length)),
        ("SCGI", "1"),
        ("REQUEST_METHOD", method),
        ("REQUEST_URI", uri),
        ("QUERY_STRING", query),
        ("DOCUMENT_URI", path),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("REMOTE_PORT", "40000"),
        ("SERVER_ADDR", "127.0.0.1"),
        ("SERVER_PORT", "80"),
        ("SERVER_NAME", "localhost"),
        ("HTTP_HOST", "localhost"),
    ]
    if length:
        pairs.append(("CONTENT_TYPE", "application/octet-stream"))
    block = b"".join(f"{k}\0{v}\0".encode() for k, v in pairs)
    return b"%d:%s," % (len(block), block)


def piece(index: int, size: int) -> bytes:
    """The application's ``index``-th streamed piece."""
    return (b"%08d" % index) * (size // 8)


def splitResponse(data: bytes) -> tuple[str, bytes]:
    """Return the status line value and the body of a CGI response."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        raise ValueError(f"no end of head in {data[:200]!r}")
    lines = head.split(b"\r\n")
    status = "200"
    for line in lines:
        if line.lower().startswith(b"status:"):
            status = line.split(b":", 1)[1].split()[0].decode("latin-1")
    return status, body


class CorruptedError(ValueError):
    """A response arrived whole but its body is not the one expected."""


@dataclass
class Tally:
    """What the clients saw."""

    sent: int = 0
    ok: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    failed: int = 0
    corrupted: int = 0

    def good(self, kind: str) -> None:
        """Count an answer of ``kind`` that was right."""
        self.ok[kind] = self.ok.get(kind, 0) + 1

    def bad(self, message: str, corrupted: bool = False) -> None:
        """Count a failed request; keep the first messages."""
        self.failed += 1
        if corrupted:
            self.corrupted += 1
        if len(self.errors) < 50:
            self.errors.append(message)


class Client:
    """Sends the mix of requests to the server's socket."""

    def __init__(self, path: str, seed: int) -> None:
        self.path = path
        self.random = random.Random(seed)
        self.bodies = []
        for size in HASH_SIZES:
            for _ in range(3):
                body = self.random.randbytes(size)
                self.bodies.append((body, hashlib.sha256(body).hexdigest()))
        big = self.random.randbytes(1_572_864)
        self.big = (big, hashlib.sha256(big).hexdigest())
        self.streams = {}
        for count, size in STREAMS:
            digest = hashlib.sha256()
            for index in range(count):
                digest.update(piece(index, size))
            self.streams[(count, size)] = (count * (size // 8) * 8, digest.hexdigest())
        self.tally = Tally()

    async def exchange(self, data: bytes) -> bytes:
        """Send ``data`` on a new connection; return everything until the close."""
        reader, writer = await asyncio.open_unix_connection(self.path)
        try:
            writer.write(data)
            await writer.drain()
            return await reader.read()
        finally:
            writer.close()

    async def one(self, number: int) -> None:
        """Send request ``number`` of the mix and check its answer."""
        kind = KINDS[number % len(KINDS)]
        tally = self.tally
        tally.sent += 1
        try:
            await getattr(self, "do_" + kind.replace("-", "_"))(number)
        except CorruptedError as error:
            tally.bad(f"{number} {kind}: {error}", corrupted=True)
        except (OSError, ValueError, asyncio.IncompleteReadError) as error:
            tally.bad(f"{number} {kind}: {type(error).__name__}: {error}")
        else:
            tally.good(kind)

    async def do_hello(self, number: int) -> None:
        """``GET /hello``: the exact answer."""
        data = await self.exchange(variables("GET", "/hello", 0))
        status, body = splitResponse(data)
        if status != "200":
            raise ValueError(f"{status} {body[:80]!r}")
        if body != HELLO:
            raise CorruptedError(f"{body[:80]!r}")

    async def do_hash(self, number: int) -> None:
        """``POST /hash``: the SHA-256 of the body sent."""
        if number % 1000 == 9:
            body, digest = self.big
        else:
            body, digest = self.bodies[(number // len(KINDS)) % len(self.bodies)]
        data = await self.exchange(variables("POST", "/hash", len(body)) + body)
        status, answer = splitResponse(data)
        if status != "200":
            raise ValueError(f"{status} {answer[:80]!r}")
        if answer.decode("ascii", "replace") != digest:
            raise CorruptedError(f"{len(body)} bytes hashed to {answer[:80]!r}")

    async def do_stream(self, number: int) -> None:
        """``GET /stream``: the length and SHA-256 of the pieces."""
        count, size = STREAMS[(number // len(KINDS)) % len(STREAMS)]
        length, digest = self.streams[(count, size)]
        uri = f"/stream?n={count}&size={size}"
        data = await self.exchange(variables("GET", uri, 0))
        status, body = splitResponse(data)
        if status != "200":
            raise ValueError(f"{status} {body[:80]!r}")
        if len(body) != length or hashlib.sha256(body).hexdigest() != digest:
            raise CorruptedError(
                f"{len(body)} bytes, {length} expected, or a wrong hash"
            )

    async def do_abort_upload(self, number: int) -> None:
        """Send a quarter of a body, then close."""
        _, writer = await asyncio.open_unix_connection(self.path)
        writer.write(variables("POST", "/hash", 200_000) + b"x" * 50_000)
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def do_abort_stream(self, number: int) -> None:
        """Read the first bytes of a slow streamed answer, then close."""
        reader, writer = await asyncio.open_unix_connection(self.path)
        writer.write(variables("GET", "/stream?n=50&size=4096&delay=0.01", 0))
        await writer.drain()
        await reader.readexactly(1000)
        writer.close()
        await writer.wait_closed()

    async def do_malformed(self, number: int) -> None:
        """A bad netstring, or no ``CONTENT_LENGTH``: ``Status: 400``."""
        if (number // len(KINDS)) % 2:
            data = b"12:not a netstring at all"
        else:
            block = b"SCGI\x001\x00REQUEST_METHOD\x00GET\x00"
            data = b"%d:%s," % (len(block), block)
        answer = await self.exchange(data)
        if not answer.startswith(b"Status: 400"):
            raise ValueError(f"{answer[:80]!r}")

    async def run(self, start: int, stop: int, concurrency: int) -> None:
        """Send requests ``start`` to ``stop`` over ``concurrency`` connections."""
        numbers = iter(range(start, stop))

        async def worker() -> None:
            for number in numbers:
                await self.one(number)

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def processFacts(pid: int) -> tuple[float, int]:
    """Return the RSS (MiB) and the number of open descriptors of ``pid``."""
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    rss = int(match[1]) / 1024 if match else float("nan")
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def cpuSeconds(pid: int) -> float:
    """Return the user+system CPU time of ``pid``, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def stats(path: str) -> dict[str, int]:
    """Ask the application how many requests started and ended."""
    reader, writer = await asyncio.open_unix_connection(path)
    writer.write(variables("GET", "/stats", 0))
    data = await reader.read()
    writer.close()
    return dict(json.loads(splitResponse(data)[1]))


async def settle(path: str, pid: int) -> tuple[dict[str, int], float, int]:
    """Wait until the server has ended every request (at most 10 s); sample it."""
    deadline = time.monotonic() + 10
    while True:
        counts = await stats(path)
        # The stats request itself is not counted; aborted ones end with their close.
        if counts["started"] == counts["finished"] or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.1)
    rss, fds = processFacts(pid)
    return counts, rss, fds


def startServer(
    directory: Path, socketPath: str
) -> tuple[subprocess.Popen[bytes], Path]:
    """Start ``twistd -n scgi`` with the soak application; wait until it listens."""
    (directory / "soak_app.py").write_text(APPLICATION)
    log = directory / "server.log"
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
        f"unix:{socketPath}:backlog=1024",
        "--resource",
        "soak_app.root",
        "--access-log",
        os.devnull,
    ]
    with log.open("wb") as output:
        process = subprocess.Popen(
            argv, cwd=directory, env=env, stdout=output, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 30
    while "SCGISite starting on" not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the server did not start:\n{log.read_text()}")
        time.sleep(0.05)
    return process, log


async def soak(options: argparse.Namespace) -> dict[str, Any]:
    """Run the soak; return the results."""
    directory = Path(tempfile.mkdtemp(prefix="scgi-soak-"))
    socketPath = str(directory / "soak.sock")
    process, log = startServer(directory, socketPath)
    client = Client(socketPath, options.seed)
    points: list[dict[str, Any]] = []
    total = options.requests
    warmup = min(options.warmup, total // 10)
    marks = sorted({warmup, *(total * k // 10 for k in range(1, 11))} - {0})
    started = time.monotonic()
    cpuStart = cpuSeconds(process.pid)
    done = 0
    unfinished = []
    try:
        for mark in marks:
            await client.run(done, mark, options.concurrency)
            done = mark
            counts, rss, fds = await settle(socketPath, process.pid)
            if counts["started"] != counts["finished"]:
                unfinished.append((mark, counts))
            elapsed = time.monotonic() - started
            point = {
                "requests": done,
                "seconds": round(elapsed, 1),
                "rss_mib": round(rss, 1),
                "fds": fds,
                "server_started": counts["started"],
                "server_finished": counts["finished"],
                "server_aborted": counts["failed"],
                "client_errors": client.tally.failed,
                "corrupted": client.tally.corrupted,
                "cpu_s": round(cpuSeconds(process.pid) - cpuStart, 1),
            }
            points.append(point)
            if not options.quiet:
                print(json.dumps(point), flush=True)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            status = process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            status = process.wait()
    text = log.read_text(errors="replace")
    tracebacks = text.count("Traceback")
    after = [p for p in points if p["requests"] >= warmup]
    rssGrowth = after[-1]["rss_mib"] - after[0]["rss_mib"] if after else 0.0
    fdsFlat = len({p["fds"] for p in after}) == 1
    result = {
        "requests": total,
        "concurrency": options.concurrency,
        "seconds": round(time.monotonic() - started, 1),
        "ok": client.tally.ok,
        "failed": client.tally.failed,
        "errors": client.tally.errors,
        "corrupted": client.tally.corrupted,
        "unfinished": unfinished,
        "tracebacks": tracebacks,
        "server_exit": status,
        "warmup": warmup,
        "rss_growth_mib": round(rssGrowth, 1),
        "fds_flat": fdsFlat,
        "points": points,
    }
    result["passed"] = (
        not client.tally.failed
        and not client.tally.corrupted
        and not unfinished
        and not tracebacks
        and status in (0, -signal.SIGTERM)
        and rssGrowth <= options.rss_slack
        and fdsFlat
    )
    if not result["passed"] or options.keep:
        result["directory"] = str(directory)
    else:
        shutil.rmtree(directory, ignore_errors=True)
    return result


def table(result: dict[str, Any]) -> str:
    """Format the points as a table."""
    lines = [
        f"{'requests':>10} {'seconds':>8} {'req/s':>7} {'RSS MiB':>8} {'fds':>4} "
        f"{'ended':>10} {'errors':>6} {'corrupt':>7}"
    ]
    for point in result["points"]:
        rate = point["requests"] / point["seconds"] if point["seconds"] else 0
        ended = point["server_finished"] == point["server_started"]
        lines.append(
            f"{point['requests']:>10} {point['seconds']:>8} {rate:>7.0f} "
            f"{point['rss_mib']:>8} {point['fds']:>4} "
            f"{'all' if ended else 'NOT ALL':>10} {point['client_errors']:>6} "
            f"{point['corrupted']:>7}"
        )
    lines.append(
        f"RSS growth after warm-up ({result['warmup']} requests): "
        f"{result['rss_growth_mib']} MiB; fds flat: {result['fds_flat']}; "
        f"tracebacks: {result['tracebacks']}; server exit: {result['server_exit']}"
    )
    lines.append("PASS" if result["passed"] else "FAIL")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the soak from the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=20_000)
    parser.add_argument("--rss-slack", type=float, default=8.0, help="MiB")
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--json", help="write the results to this file")
    parser.add_argument("--keep", action="store_true", help="keep the server's log")
    parser.add_argument("--quiet", action="store_true")
    options = parser.parse_args(argv)
    result = asyncio.run(soak(options))
    if options.json:
        Path(options.json).write_text(json.dumps(result, indent=2))
    print(table(result))
    if result["errors"]:
        print("errors:", *result["errors"][:10], sep="\n  ")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
