"""twisted.web's own HTTP server (``server.Site``) serving the same resource tree.

Whether connections are kept alive is up to the client: the benchmark loads it with
``loadgen --proto http`` (``Connection: close``, one connection per request) and with
``wrk`` (keep-alive).
"""

from __future__ import annotations

from _common import arguments
from twisted.web.server import Site
from twisted_tree import root, serve


def main() -> None:
    """Serve the tree over HTTP/1.1."""
    args = arguments(__doc__ or "", profile=True)
    serve(Site(root()), args.listen.twisted_endpoint(), args.profile, args.access_log)


if __name__ == "__main__":
    main()
