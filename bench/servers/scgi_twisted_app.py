"""scgi_twisted: ``SCGISite`` serving the benchmark's resource tree.

``--metrics`` counts the site's work and serves it at ``/metrics`` on a free port
of 127.0.0.1 (the ``metrics`` extra), as ``twistd scgi --metrics`` does.
"""

from __future__ import annotations

import sys

from _common import arguments, install_reactor, use_working_tree

use_working_tree()
install_reactor()  # --reactor: before anything imports the reactor

from twisted_tree import root, serve  # noqa: E402

from scgi_twisted import SCGISite  # noqa: E402


def main() -> None:
    """Serve the tree over SCGI."""
    metrics = "--metrics" in sys.argv
    if metrics:
        sys.argv.remove("--metrics")
    args = arguments(__doc__ or "", profile=True)
    site = SCGISite(root())
    if metrics:
        from twisted.internet import reactor
        from twisted.internet.endpoints import serverFromString

        from scgi_twisted.metrics import serveMetrics

        serveMetrics(site, serverFromString(reactor, "tcp:0:interface=127.0.0.1"))
    serve(site, args.listen.twisted_endpoint(), args.profile, args.access_log)


if __name__ == "__main__":
    main()
