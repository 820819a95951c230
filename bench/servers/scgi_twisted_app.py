"""scgi_twisted: ``SCGISite`` serving the benchmark's resource tree."""

from __future__ import annotations

from _common import arguments, install_reactor, use_working_tree

use_working_tree()
install_reactor()  # --reactor: before anything imports the reactor

from twisted_tree import root, serve  # noqa: E402

from scgi_twisted import SCGISite  # noqa: E402


def main() -> None:
    """Serve the tree over SCGI."""
    args = arguments(__doc__ or "", profile=True)
    serve(
        SCGISite(root()), args.listen.twisted_endpoint(), args.profile, args.access_log
    )


if __name__ == "__main__":
    main()
