"""``twistd -n scgi`` as the README starts it, serving the benchmark's tree.

Runs ``twistd -n --pidfile= scgi --listen ENDPOINT --resource twisted_tree.root`` in
this process, with the default access log (the ``twistd`` log, here this process's
standard output) unless more ``twistd scgi`` options follow, such as
``--access-log none``.
"""

from __future__ import annotations

import os
import sys

from _common import REPO, parse_listen, use_working_tree


def main() -> None:
    """Parse ``--listen ADDRESS [scgi options...]`` and run twistd."""
    arguments = sys.argv[1:]
    if len(arguments) < 2 or arguments[0] != "--listen":
        raise SystemExit(f"usage: {sys.argv[0]} --listen ADDRESS [scgi options...]")
    listen = parse_listen(arguments[1])
    use_working_tree()
    here = os.path.dirname(os.path.abspath(__file__))
    if here not in sys.path:
        sys.path.insert(0, here)
    # The workers of --workers (and twistd's plugin search) read the path from here.
    os.environ["PYTHONPATH"] = os.pathsep.join([here, REPO])
    from twisted.scripts.twistd import run

    sys.argv = [
        "twistd",
        "-n",
        "--pidfile=",
        "scgi",
        "--listen",
        listen.twisted_endpoint(),
        "--resource",
        "twisted_tree.root",
        *arguments[2:],
    ]
    run()


if __name__ == "__main__":
    main()
