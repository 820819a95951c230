#!/usr/bin/env python3
"""Micro benchmark: one request through the whole channel, in memory, per tree.

A ``SCGISite`` (no access log, a ``Clock`` for its timers) is given, per request, a
new connection on a ``StringTransport``, the whole request in one read, and its
connection is lost once the answer is written: what the reactor would do, without
sockets or system calls, so the figure is the channel, the request and the resource
only.  It runs each tree in its own process, ``--rounds`` times in alternation, and
prints the least CPU microseconds per request of each::

    python bench/channel.py --baseline main
    python bench/channel.py --baseline main --blocks nginx,apache --rounds 9
    python bench/channel.py --metrics --floor
    python bench/channel.py --instructions --metrics --floor

``--baseline REV`` measures the tree at that git revision beside this one;
``--metrics`` measures this tree once more with the site counting its work (the
counts ``twistd scgi --metrics`` serves; the exposition is not on the request path);
``--floor`` measures the least channel that feeds stock ``server.Request``s
(``bench/servers/stock_request.py``: no checks, no limits, no timers) on the same
tree, which no channel feeding the stock ``Request`` can go below;
``--scgi-floor`` the same least channel feeding :class:`scgi_twisted.SCGIRequest`
(what scgi_twisted's request class costs without any of its channel's checks);
``--minimal`` the minimal protocol (``bench/servers/minimal_twisted.py``: no
``twisted.web`` at all).

``--cold`` empties the CPU's caches (by writing to 32 MiB) before each request
and times the request alone.  Over a socket a server never meets its code and data
in the caches as a loop of requests in memory does: between two requests the
kernel, the reactor and 31 other connections run.  Cold, each tree pays for all it
touches, not only for what it executes, which is closer to what a request costs
a real server::

    python bench/channel.py --cold --scgi-floor --blocks loadgen --number 3000

``--instructions`` counts instead the instructions executed per request, under
valgrind's callgrind (it needs ``valgrind``): the difference between a run of
``--number`` requests and one of a tenth as many, divided by the difference in
requests, so that start-up cancels out.  The count does not depend on what else
the machine is doing, which CPU time does: use it to compare variants on a shared
or noisy machine.  It takes about a minute per tree and block.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, sys.argv[2])
from parse import BLOCKS, encode
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from scgi_twisted import SCGISite

class Hello(Resource):
    isLeaf = True
    def render_GET(self, request):
        return b"Hello, world!"

root = Resource()
root.putChild(b"hello", Hello())
root.putChild(b"app", root)
clock = Clock()
mode = sys.argv[5]
if mode in ("floor", "scgifloor"):
    sys.path.insert(0, sys.argv[2] + "/servers")
    from stock_request import StockRequestSite
    site = StockRequestSite(root, reactor=clock)
    if mode == "scgifloor":
        from scgi_twisted import SCGIRequest
        site.requestFactory = SCGIRequest
elif mode == "minimal":
    sys.path.insert(0, sys.argv[2] + "/servers")
    from minimal_twisted import MinimalSCGI
    from twisted.internet.protocol import Factory
    site = Factory.forProtocol(MinimalSCGI)
else:
    site = SCGISite(root, reactor=clock)
site.log = lambda request: None
site.doStart()  # as when it listens
if mode == "metrics":
    from scgi_twisted._metrics import Metrics
    site.metrics = Metrics(clock.seconds)
done = Failure(ConnectionDone())
number = int(sys.argv[3])
junk = bytearray(32 * 1024 * 1024)
line = b"\1" * (len(junk) // 64)
def evict():
    # One byte in every 64-byte line of 32 MiB: what the request touched is no
    # longer in the CPU's caches, as after the kernel's and other servers' work.
    junk[::64] = line
figures = {}
for name in sys.argv[4].split(","):
    data = encode(BLOCKS[name])
    def one():
        protocol = site.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        protocol.dataReceived(data)
        protocol.connectionLost(done)
        return transport.value()
    answer = one()
    assert answer.startswith(b"Status: 200 OK"), answer[:200]
    if sys.argv[6] == "count":
        for _ in range(number):
            one()
        continue
    for _ in range(number // 10):
        one()
    best = float("inf")
    for _ in range(5):
        if sys.argv[6] == "cold":
            spent = 0.0
            for _ in range(number):
                evict()
                start = time.process_time()
                one()
                spent += time.process_time() - start
        else:
            start = time.process_time()
            for _ in range(number):
                one()
            spent = time.process_time() - start
        best = min(best, spent / number * 1e6)
    figures[name] = best
print(json.dumps(figures))
"""


def run(
    tree: str, number: int, blocks: str, mode: str, cold: bool = False
) -> dict[str, float]:
    """Measure one tree in a new process; return CPU µs per request by block.

    :param mode: ``plain``, ``metrics`` (counting on), ``floor`` (the stock floor) or
        ``scgifloor`` (the floor's channel feeding ``SCGIRequest``).
    :param cold: whether the CPU's caches are emptied before each request (and the
        emptying left out of the time).
    """
    how = "cold" if cold else "time"
    result = subprocess.run(
        [sys.executable, "-c", CHILD, tree, HERE, str(number), blocks, mode, how],
        check=True,
        capture_output=True,
        text=True,
    )
    figures: dict[str, float] = json.loads(result.stdout)
    return figures


def _executed(tree: str, number: int, block: str, mode: str) -> int:
    """Return the instructions a child serving ``number`` requests executes."""
    child = [sys.executable, "-c", CHILD, tree, HERE, str(number), block, mode]
    result = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            *child,
            "count",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    found = re.search(r"Collected : (\d+)", result.stderr)
    if found is None:
        raise SystemExit("callgrind reported no count:\n" + result.stderr[-2000:])
    return int(found.group(1))


def count(tree: str, number: int, blocks: str, mode: str) -> dict[str, float]:
    """Return thousands of instructions per request by block (see the docstring)."""
    few = max(1, number // 10)
    return {
        block: (
            _executed(tree, number, block, mode) - _executed(tree, few, block, mode)
        )
        / (number - few)
        / 1000
        for block in blocks.split(",")
    }


def main() -> int:
    """Run the benchmark and print the table."""
    options = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    options.add_argument("--baseline", help="a git revision to compare with")
    options.add_argument("--number", type=int, default=2000, help="requests per round")
    options.add_argument("--rounds", type=int, default=5, help="alternations")
    options.add_argument("--blocks", default="nginx,apache,lighttpd,loadgen")
    options.add_argument(
        "--metrics", action="store_true", help="also this tree with metrics on"
    )
    options.add_argument(
        "--floor", action="store_true", help="also the stock-Request floor"
    )
    options.add_argument(
        "--scgi-floor",
        action="store_true",
        help="also the floor's channel feeding SCGIRequest",
    )
    options.add_argument(
        "--minimal", action="store_true", help="also the minimal Twisted protocol"
    )
    options.add_argument(
        "--cold",
        action="store_true",
        help="empty the CPU caches before each request (CPU time only)",
    )
    options.add_argument(
        "--instructions",
        action="store_true",
        help="count instructions per request (callgrind) instead of CPU time",
    )
    args = options.parse_args()
    measure = run
    if args.cold:
        measure = functools.partial(run, cold=True)
    if args.instructions:
        if shutil.which("valgrind") is None:
            print("--instructions needs valgrind (apt-get install valgrind)")
            return 2
        measure = count
        if "--rounds" not in sys.argv:
            args.rounds = 1  # a count does not vary from one round to the next
    with tempfile.TemporaryDirectory() as where:
        trees = {"this tree": (REPO, "plain")}
        if args.metrics:
            trees["metrics on"] = (REPO, "metrics")
        if args.floor:
            trees["stock floor"] = (REPO, "floor")
        if args.scgi_floor:
            trees["SCGIRequest floor"] = (REPO, "scgifloor")
        if args.minimal:
            trees["minimal"] = (REPO, "minimal")
        if args.baseline:
            archive = subprocess.run(
                ["git", "-C", REPO, "archive", args.baseline, "scgi_twisted"],
                check=True,
                capture_output=True,
            ).stdout
            subprocess.run(["tar", "-x", "-C", where], input=archive, check=True)
            trees[args.baseline] = (where, "plain")
        best: dict[str, dict[str, float]] = {label: {} for label in trees}
        for _ in range(args.rounds):
            for label, (tree, mode) in trees.items():
                for block, figure in measure(
                    tree, args.number, args.blocks, mode
                ).items():
                    previous = best[label].get(block, float("inf"))
                    best[label][block] = min(previous, figure)
        unit = "k instructions" if args.instructions else "CPU µs"
        if args.cold and not args.instructions:
            unit += " (caches emptied before each request)"
        print(f"{unit} per request through the channel (best of {args.rounds} rounds)")
        print(
            f"{'block':10} "
            + " ".join(f"{label:>12}" for label in trees)
            + "  each ÷ this tree"
        )
        for block in args.blocks.split(","):
            figures = [best[label][block] for label in trees]
            line = f"{block:10} " + " ".join(f"{f:12.1f}" for f in figures)
            if len(figures) > 1:
                line += "  " + " ".join(f"{f / figures[0]:4.2f}x" for f in figures[1:])
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
