"""What every benchmark server shares: the three routes' bodies and the listen address.

Every launcher takes ``--listen tcp:127.0.0.1:PORT`` or ``--listen unix:PATH`` and
serves the same three routes:

* ``GET /hello``: the 13 bytes ``Hello, world!``;
* ``GET /big``: 1 MiB of ``b"x"`` (a prebuilt bytes object);
* ``POST /post``: reads the whole request body in 64 KiB pieces (never all of it in
  memory at once, so that the 64 MiB POST measures the server, not the application)
  and answers its length in decimal.

Access logging is off in every server (uWSGI ``--disable-logging``, flup at WARNING,
Twisted ``Site.log`` a no-op) unless ``--access-log`` is given to the Twisted ones;
``twistd_scgi.py`` runs ``twistd -n scgi`` with its own default access log.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass

HELLO = b"Hello, world!"
BIG = b"x" * (1024 * 1024)
CHUNK = 64 * 1024
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass(frozen=True)
class Listen:
    """A parsed ``--listen`` address."""

    kind: str  # "tcp" or "unix"
    host: str
    port: int
    path: str

    def twisted_endpoint(self) -> str:
        """Return the Twisted server endpoint string for this address."""
        if self.kind == "unix":
            return f"unix:{self.path}"
        return f"tcp:{self.port}:interface={self.host}"


def parse_listen(value: str) -> Listen:
    """Parse ``tcp:HOST:PORT`` or ``unix:PATH``."""
    kind, _, rest = value.partition(":")
    if kind == "unix" and rest:
        return Listen("unix", "", 0, rest)
    if kind == "tcp":
        host, _, port = rest.rpartition(":")
        if host and port.isdigit():
            return Listen("tcp", host, int(port), "")
    raise argparse.ArgumentTypeError(f"expected tcp:HOST:PORT or unix:PATH: {value!r}")


def arguments(description: str, profile: bool = False) -> argparse.Namespace:
    """Parse the launcher's command line."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--listen", type=parse_listen, required=True)
    if profile:
        parser.add_argument(
            "--profile", metavar="PATH", help="run under cProfile, dump stats to PATH"
        )
        parser.add_argument(
            "--access-log", action="store_true", help="keep Site's access log"
        )
        parser.add_argument(
            "--reactor",
            choices=REACTORS,
            default="default",
            help="the reactor to run (installed by install_reactor())",
        )
    return parser.parse_args()


REACTORS = ("default", "epoll", "asyncio", "uvloop")
"""The reactors a Twisted launcher can run: ``uvloop`` is asyncio's reactor on a
uvloop event loop."""


def install_reactor(argv: list[str] | None = None) -> str:
    """Install the reactor ``--reactor`` names; call before importing the reactor.

    :returns: the name installed (``default`` installs nothing).
    """
    argv = sys.argv[1:] if argv is None else argv
    name = "default"
    for index, value in enumerate(argv):
        if value == "--reactor" and index + 1 < len(argv):
            name = argv[index + 1]
        elif value.startswith("--reactor="):
            name = value.split("=", 1)[1]
    if name == "epoll":
        from twisted.internet import epollreactor

        epollreactor.install()
    elif name == "asyncio":
        from twisted.internet import asyncioreactor

        asyncioreactor.install()
    elif name == "uvloop":
        import asyncio

        import uvloop
        from twisted.internet import asyncioreactor

        loop = uvloop.new_event_loop()
        asyncio.set_event_loop(loop)
        asyncioreactor.install(loop)
    elif name != "default":
        raise SystemExit(f"unknown reactor {name!r}: choose one of {REACTORS}")
    return name


def use_working_tree() -> None:
    """Import scgi_twisted from this checkout, installed or not.

    ``SCGI_TWISTED_TREE`` names another checkout to import it from instead
    (``run.py --baseline``).
    """
    tree = os.environ.get("SCGI_TWISTED_TREE") or REPO
    if tree not in sys.path:
        sys.path.insert(0, tree)
