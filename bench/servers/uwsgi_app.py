"""uWSGI speaking SCGI (the C reference): one process, one thread, no master.

This launcher only execs the ``uwsgi`` binary (so the PID stays the server's) with
``--scgi-socket`` and the WSGI application in ``wsgi_app.py``.
"""

from __future__ import annotations

import os
import shutil
import sys

from _common import arguments

HERE = os.path.dirname(os.path.abspath(__file__))


def command(listen: str) -> list[str]:
    """Return the uwsgi command line for a ``tcp:``/``unix:`` address."""
    _, _, rest = listen.partition(":")
    binary = shutil.which("uwsgi") or os.path.join(
        os.path.dirname(sys.executable), "uwsgi"
    )
    return [
        binary,
        "--scgi-socket",
        rest,  # HOST:PORT, or a path (uWSGI binds a unix socket for a path)
        "--wsgi-file",
        os.path.join(HERE, "wsgi_app.py"),
        "--callable",
        "application",
        "--processes",
        "1",
        "--threads",
        "1",
        "--disable-logging",
        "--need-app",
        "--ignore-sigpipe",
        "--ignore-write-errors",
        "--disable-write-exception",
    ]


def main() -> None:
    """Exec uWSGI."""
    args = arguments(__doc__ or "")
    listen = args.listen
    address = (
        f"unix:{listen.path}"
        if listen.kind == "unix"
        else (f"tcp:{listen.host}:{listen.port}")
    )
    argv = command(address)
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main()
