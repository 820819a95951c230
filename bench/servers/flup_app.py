"""flup's SCGI server (``flup.server.scgi.WSGIServer``, its default thread pool)."""

from __future__ import annotations

import logging

from _common import arguments
from flup.server.scgi import WSGIServer
from wsgi_app import application


def main() -> None:
    """Serve the WSGI app over SCGI with flup."""
    args = arguments(__doc__ or "")
    listen = args.listen
    address: str | tuple[str, int] = (
        listen.path if listen.kind == "unix" else (listen.host, listen.port)
    )
    # WARNING: flup logs every request at INFO; the other servers log none.
    WSGIServer(application, bindAddress=address, loggingLevel=logging.WARNING).run()


if __name__ == "__main__":
    main()
