"""The twin test, in-process: one tree served by twisted.web's HTTP server and SCGI.

One :mod:`tests.twin_app` tree is served on the real reactor by
``twisted.web.server.Site`` over TCP and by :class:`~scgi_twisted.SCGISite` over TCP.
Every request of :data:`tests._twin.CORPUS` is sent to both: over HTTP with
:mod:`http.client`, over SCGI with the variables a frontend sends
(:func:`tests._twin.scgiExchange`), both in a thread.  The answers (status, the
headers that matter, the body, and what the resource saw) must agree, except for
the differences :data:`tests._twin.TOLERATED` lists.
"""

from __future__ import annotations

import re
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any

from twisted.internet import reactor as _global_reactor
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.server import Site

from scgi_twisted import SCGISite

from ._twin import (
    CORPUS,
    TOLERATED,
    Answer,
    TwinRequest,
    answer,
    compare,
    hostFor,
    httpExchange,
    resolve,
)
from ._twin import scgiExchange as _scgiExchange
from .twin_app import buildTwinTree, writeTwinFiles

_reactor: Any = _global_reactor


class TwinTests(TestCase):
    """scgi_twisted answers as twisted.web's own HTTP server does."""

    async def serve(self) -> tuple[int, int]:
        """Serve one twin tree both ways; return the HTTP and the SCGI port."""
        directory = Path(tempfile.mkdtemp(prefix="scgi-twin-"))
        self.addCleanup(_removeTree, directory)
        tree = buildTwinTree(
            _reactor, _reactor.getThreadPool(), writeTwinFiles(directory)
        )
        self.http = Site(tree, reactor=_reactor)
        self.scgi = SCGISite(tree, reactor=_reactor)
        ports: list[int] = []
        for site in (self.http, self.scgi):
            port: IListeningPort = await serverFromString(
                _reactor, "tcp:0:interface=127.0.0.1"
            ).listen(site)
            self.addCleanup(port.stopListening)
            self.addCleanup(_expireSessions, site)
            ports.append(port.getHost().port)  # type: ignore[attr-defined]
        return ports[0], ports[1]

    async def both(
        self,
        ports: tuple[int, int],
        request: TwinRequest,
        extra: tuple[tuple[str, str], ...] = (),
    ) -> tuple[Answer, Answer]:
        """Send ``request`` to both servers; return the HTTP and the SCGI answer."""
        request = resolve(request)
        host = hostFor(ports[0])
        twin = TwinRequest(
            request.label,
            request.method,
            request.target,
            (*request.headers, *extra),
            request.body,
            request.chunked,
        )
        reference = await deferToThread(httpExchange, ports[0], twin, host)
        status, pairs, body = await deferToThread(
            _scgiExchange, (socket.AF_INET, ("127.0.0.1", ports[1])), twin, host
        )
        return (
            answer(*reference),
            answer(status, pairs, body),
        )

    async def test_corpus(self) -> None:
        """Every request of the corpus gets the same answer both ways.

        Status, the compared response headers, the body and everything the
        resource saw (method, uri, path, args, prepath/postpath, headers, cookies,
        getUser/getPassword, content, prePathURL, URLPath) agree, but for the
        framing headers, the only tolerance that applies without a frontend.
        """
        ports = await self.serve()
        problems = []
        for request in CORPUS:
            reference, twin = await self.both(ports, request)
            for problem in compare(["scgi"], request, reference, twin):
                problems.append(f"{request.label}: {problem}")
        # /error's exception, logged once by each server.
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 2)
        self.assertEqual(problems, [], "\n".join(problems))

    async def test_corpusSeenByResource(self) -> None:
        """The corpus reaches the resources: the comparison is not vacuous.

        The form-routed child is ``beta``, the form's args and the chunked body
        arrive, and the credentials are seen.
        """
        ports = await self.serve()
        byLabel = {request.label: request for request in CORPUS}
        _, routed = await self.both(ports, byLabel["getChild routes on a form field"])
        assert routed.seen is not None
        self.assertEqual(routed.seen["name"], "route:beta")
        _, chunked = await self.both(ports, byLabel["chunked upload"])
        assert chunked.seen is not None
        self.assertEqual(chunked.seen["content_length"], 150000)
        _, auth = await self.both(ports, byLabel["auth and cookies seen"])
        assert auth.seen is not None
        self.assertEqual(
            (auth.seen["user"], auth.seen["password"]), ("alice", "s3cr3t")
        )
        self.assertEqual(auth.seen["prePathURL"], f"http://{hostFor(ports[0])}/seen")

    async def test_sessionKept(self) -> None:
        """A session cookie sent back finds the same session, both ways."""
        ports = await self.serve()
        session = next(r for r in CORPUS if r.label == "session")
        counts = []
        for port, overSCGI in [(ports[0], False), (ports[1], True)]:
            status, pairs, body = await self.exchange(port, overSCGI, session, ())
            self.assertEqual((status, body), (200, b"1\n"))
            cookie = next(v for n, v in pairs if n.lower() == "set-cookie")
            again = (("Cookie", cookie.split(";", 1)[0]),)
            counts.append((await self.exchange(port, overSCGI, session, again))[2])
        self.assertEqual(counts, [b"2\n", b"2\n"])

    async def exchange(
        self,
        port: int,
        overSCGI: bool,
        request: TwinRequest,
        extra: tuple[tuple[str, str], ...],
        host: str = "twin.test:80",
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """Send ``request`` to one server; return status, headers and body."""
        if overSCGI:
            twin = TwinRequest(
                request.label, request.method, request.target, extra, request.body
            )
            address = (socket.AF_INET, ("127.0.0.1", port))
            result: tuple[int, list[tuple[str, str]], bytes] = await deferToThread(
                _scgiExchange, address, twin, host
            )
            return result
        twin = TwinRequest(
            request.label, request.method, request.target, extra, request.body
        )
        reference: tuple[int, list[tuple[str, str]], bytes] = await deferToThread(
            httpExchange, port, twin, host
        )
        return reference


class TwinDocumentationTests(SynchronousTestCase):
    """``docs/compatibility.md`` lists exactly the tolerated differences."""

    def test_sameList(self) -> None:
        """Every tolerance is a row of the docs' table, and every row a tolerance."""
        text = (Path(__file__).parent.parent / "docs" / "compatibility.md").read_text(
            encoding="utf-8"
        )
        table = text.split("## The differences", 1)[1].split("\n## ", 1)[0]
        documented = re.findall(r"^\| `([a-z-]+)` \|", table, re.MULTILINE)
        self.assertEqual(documented, [t.name for t in TOLERATED])


def _removeTree(directory: Path) -> None:
    """Remove a temporary directory."""
    shutil.rmtree(directory, ignore_errors=True)


def _expireSessions(site: Site) -> None:
    """Expire every session of ``site``, cancelling its timers."""
    for session in list(site.sessions.values()):
        session.expire()
