"""The twisted.web resource tree served by scgi_twisted and by twisted.web's HTTP."""

from __future__ import annotations

import cProfile
from typing import Any

from _common import BIG, CHUNK, HELLO
from twisted.internet import endpoints, reactor
from twisted.web.resource import Resource
from twisted.web.server import Request, Site


class Hello(Resource):
    """``GET /hello``: 13 bytes."""

    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        """Answer ``Hello, world!``."""
        request.setHeader(b"content-type", b"text/plain")
        return HELLO


class Big(Resource):
    """``GET /big``: 1 MiB returned from render."""

    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        """Answer 1 MiB."""
        request.setHeader(b"content-type", b"application/octet-stream")
        return BIG


class Post(Resource):
    """``POST /post``: read the body in pieces and answer its length."""

    isLeaf = True

    def render_POST(self, request: Request) -> bytes:
        """Count the body's bytes."""
        content = request.content
        assert content is not None
        content.seek(0)
        total = 0
        while chunk := content.read(CHUNK):
            total += len(chunk)
        request.setHeader(b"content-type", b"text/plain")
        return b"%d" % total


def root() -> Resource:
    """Build the tree: ``/hello``, ``/big``, ``/post``."""
    tree = Resource()
    tree.putChild(b"hello", Hello())
    tree.putChild(b"big", Big())
    tree.putChild(b"post", Post())
    return tree


def _no_log(request: Request) -> None:
    """Skip the access log line."""


def serve(site: Site, endpoint: str, profile: str | None, access_log: bool) -> None:
    """Listen on ``endpoint`` and run the reactor until SIGTERM or SIGINT."""
    if not access_log:
        site.log = _no_log  # type: ignore[method-assign]
    endpoints.serverFromString(reactor, endpoint).listen(site)
    profiler: Any = None
    if profile:
        profiler = cProfile.Profile()

        def dump() -> None:
            profiler.disable()
            profiler.dump_stats(profile)

        reactor.addSystemEventTrigger("before", "shutdown", dump)  # type: ignore[attr-defined]
        profiler.enable()
    # reactor.run installs its own SIGINT/SIGTERM handlers: they stop the reactor.
    reactor.run()  # type: ignore[attr-defined]
