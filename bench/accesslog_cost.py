"""What the access log of ``twistd scgi`` costs per request, in process.

The site ``twistd scgi`` builds (``makeSiteService``) serves hello requests on
in-memory transports, with each ``--access-log`` choice in turn, interleaved, and
the CPU time per request is printed (the least of ``--rounds``).  No sockets and no
load generator: what is measured is the server's own work, so the share of the log
is larger here than over a socket, where the kernel's work is added to every choice.

    python bench/accesslog_cost.py [--requests 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "bench", "servers"))

from twisted.internet.task import Clock  # noqa: E402
from twisted.internet.testing import StringTransport  # noqa: E402
from twisted.logger import globalLogPublisher, textFileLogObserver  # noqa: E402
from twisted.web.server import Site  # noqa: E402

from scgi_twisted._service import makeSiteService  # noqa: E402
from scgi_twisted.tap import Options  # noqa: E402

REQUEST = (
    b"CONTENT_LENGTH\x000\x00SCGI\x001\x00REQUEST_METHOD\x00GET\x00"
    b"REQUEST_URI\x00/hello\x00SERVER_PROTOCOL\x00HTTP/1.1\x00"
    b"REMOTE_ADDR\x00203.0.113.9\x00REMOTE_PORT\x0051234\x00"
    b"SERVER_NAME\x00example.com\x00SERVER_PORT\x0080\x00"
    b"HTTP_HOST\x00example.com\x00HTTP_USER_AGENT\x00wrk/4.2.0\x00"
)
REQUEST = b"%d:%s," % (len(REQUEST), REQUEST)


class Reactor(Clock):
    """A clock that can listen: the site is what is measured, not the reactor."""

    def listenTCP(
        self, port: int, factory: object, backlog: int = 50, interface: str = ""
    ) -> object:
        """Pretend to listen."""
        return _Port()


class _Port:
    """A port that listens nowhere."""

    def stopListening(self) -> None:
        """Nothing to stop."""

    def getHost(self) -> object:
        """No address."""
        return None


def cost(accessLog: list[str] | None, requests: int) -> float:
    """Serve ``requests`` hello requests; return the CPU microseconds per request.

    :param accessLog: the ``--access-log`` options; ``None`` for twisted.web's own
        ``Site.log`` into the twistd log, one log event per request (what
        ``twistd scgi`` did before the batched log).
    """
    options = Options()
    options.parseOptions(["--resource", "twisted_tree.root", *(accessLog or [])])
    reactor = Reactor()
    service = makeSiteService(options, reactor)
    site = service.site
    if accessLog is None:
        site.openSink = None
        site.log = functools.partial(Site.log, site)
    site.doStart()
    started = time.process_time()
    for _ in range(requests):
        channel = site.buildProtocol(None)
        transport = StringTransport()
        channel.makeConnection(transport)
        channel.dataReceived(REQUEST)
        channel.connectionLost(None)
        if not _ % 1000:
            reactor.advance(0.05)
    elapsed = time.process_time() - started
    site.doStop()
    return elapsed / requests * 1e6


def main() -> None:
    """Measure each choice, interleaved; print the least cost of each."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    # The twistd log is an observer that writes text to a file, as twistd -n does.
    directory = tempfile.mkdtemp(prefix="accesslog-cost-")
    stream = open(os.path.join(directory, "twistd.log"), "w")  # noqa: SIM115
    globalLogPublisher.addObserver(textFileLogObserver(stream))
    choices: dict[str, list[str] | None] = {
        "none": ["--access-log", "none"],
        "default (twistd log)": [],
        "file": ["--access-log", os.path.join(directory, "access.log")],
        "Site.log, per request": None,
    }
    best: dict[str, float] = {}
    for round in range(args.rounds):
        names = list(choices)
        order = names[round % len(names) :] + names[: round % len(names)]
        for name in order:
            extra = choices[name]
            value = cost(extra, args.requests)
            best[name] = min(best.get(name, value), value)
    base = best["none"]
    for name in choices:
        value = best[name]
        print(f"{name:<22} {value:7.1f} us/request  none/this = {base / value:.2f}")


if __name__ == "__main__":
    main()
