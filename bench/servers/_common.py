"""What every benchmark server shares: the three routes' bodies and the listen address.

Every launcher takes ``--listen tcp:127.0.0.1:PORT`` or ``--listen unix:PATH`` and
serves the same three routes:

* ``GET /hello``: the 13 bytes ``Hello, world!``;
* ``GET /big``: 1 MiB of ``b"x"`` (a prebuilt bytes object);
* ``POST /post``: reads the whole request body in 64 KiB pieces (never all of it in
  memory at once, so that the 64 MiB POST measures the server, not the application)
  and answers its length in decimal.

Access logging is off in every server (uWSGI ``--disable-logging``, flup at WARNING,
Twisted ``Site.log`` a no-op) unless ``--access-log`` is given to the Twisted ones.
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
    return parser.parse_args()


def use_working_tree() -> None:
    """Import scgi_twisted from this checkout, installed or not.

    ``SCGI_TWISTED_TREE`` names another checkout to import it from instead
    (``run.py --baseline``).
    """
    tree = os.environ.get("SCGI_TWISTED_TREE") or REPO
    if tree not in sys.path:
        sys.path.insert(0, tree)
