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
    python bench/channel.py --metrics

``--baseline REV`` measures the tree at that git revision beside this one;
``--metrics`` measures this tree once more with the site counting its work (the
counts ``twistd scgi --metrics`` serves; the exposition is not on the request path).
"""

from __future__ import annotations

import argparse
import json
import os
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
site = SCGISite(root, reactor=clock)
site.log = lambda request: None
if sys.argv[5] == "metrics":
    from scgi_twisted._metrics import Metrics
    site.metrics = Metrics(clock.seconds)
done = Failure(ConnectionDone())
number = int(sys.argv[3])
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
    for _ in range(number // 10):
        one()
    best = float("inf")
    for _ in range(5):
        start = time.process_time()
        for _ in range(number):
            one()
        best = min(best, (time.process_time() - start) / number * 1e6)
    figures[name] = best
print(json.dumps(figures))
"""


def run(tree: str, number: int, blocks: str, metrics: bool) -> dict[str, float]:
    """Measure one tree in a new process; return CPU µs per request by block."""
    mode = "metrics" if metrics else "plain"
    result = subprocess.run(
        [sys.executable, "-c", CHILD, tree, HERE, str(number), blocks, mode],
        check=True,
        capture_output=True,
        text=True,
    )
    figures: dict[str, float] = json.loads(result.stdout)
    return figures


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
    args = options.parse_args()
    with tempfile.TemporaryDirectory() as where:
        trees = {"this tree": (REPO, False)}
        if args.metrics:
            trees["metrics on"] = (REPO, True)
        if args.baseline:
            archive = subprocess.run(
                ["git", "-C", REPO, "archive", args.baseline, "scgi_twisted"],
                check=True,
                capture_output=True,
            ).stdout
            subprocess.run(["tar", "-x", "-C", where], input=archive, check=True)
            trees[args.baseline] = (where, False)
        best: dict[str, dict[str, float]] = {label: {} for label in trees}
        for _ in range(args.rounds):
            for label, (tree, metrics) in trees.items():
                for block, figure in run(
                    tree, args.number, args.blocks, metrics
                ).items():
                    previous = best[label].get(block, float("inf"))
                    best[label][block] = min(previous, figure)
        print(f"CPU µs per request through the channel (best of {args.rounds} rounds)")
        print(f"{'block':10} " + " ".join(f"{label:>12}" for label in trees) + "  gain")
        for block in args.blocks.split(","):
            figures = [best[label][block] for label in trees]
            line = f"{block:10} " + " ".join(f"{f:12.1f}" for f in figures)
            if len(figures) > 1:
                line += "  " + " ".join(f"{f / figures[0]:4.2f}x" for f in figures[1:])
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
