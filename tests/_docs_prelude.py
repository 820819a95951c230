"""Run one documentation example for real, with its listeners moved out of the way.

Used by ``tests/test_docs.py``: ``python -m tests._docs_prelude EXAMPLE.py [PATH...]``.
Before the example runs, every server endpoint it creates is rewritten to a free port
(TCP) or a temporary path (unix), and ``reactor.run()`` is replaced by a short run
during which one SCGI ``GET`` request for each ``PATH`` (``/`` if none is given) is
sent to every ``SCGISite`` the example listens with, as stock nginx sends it (the
whole path in ``REQUEST_URI``, no ``SCRIPT_NAME``).  Each answer is printed as
``SCGI-RESPONSE <json>`` with its path, status line and body; the process exits
non-zero if the example raises.
"""

from __future__ import annotations

import json
import os
import re
import runpy
import sys
import tempfile
from functools import partial
from typing import Any

from twisted.internet import endpoints, reactor
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.python.failure import Failure

from tests.support.scgi import buildRequest, parseResponse

_TEMP = tempfile.mkdtemp(prefix="scgi-docs-")
_targets: list[tuple[str, Any]] = []
_results: list[dict[str, str]] = []
_paths: list[str] = ["/"]


def _request(path: str) -> bytes:
    """Return the SCGI request for ``GET path``, as stock nginx would send it."""
    return buildRequest(
        [
            (b"REQUEST_METHOD", b"GET"),
            (b"REQUEST_URI", path.encode("utf-8")),
            (b"QUERY_STRING", b""),
            (b"SERVER_PROTOCOL", b"HTTP/1.1"),
            (b"SERVER_NAME", b"localhost"),
            (b"SERVER_PORT", b"80"),
            (b"REMOTE_ADDR", b"127.0.0.1"),
            (b"HTTP_HOST", b"localhost"),
        ]
    )


def _rewrite(description: str) -> str:
    """Move a server endpoint description to a free port or a temporary path."""
    if description.startswith(("tcp:", "tcp6:")):
        return re.sub(r"^(tcp6?):\d+", r"\1:0", description)
    if description.startswith("unix:"):
        path = description.split(":")[1]
        new = os.path.join(_TEMP, os.path.basename(path) or "sock")
        return description.replace(path, new, 1)
    return description


class _Recorder:
    """Wrap an endpoint so that SCGI listeners are recorded once they listen."""

    def __init__(self, endpoint: Any, kind: str) -> None:
        self._endpoint = endpoint
        self._kind = kind

    def listen(self, factory: Any) -> Deferred[IListeningPort]:
        from scgi_twisted import SCGISite

        d: Deferred[IListeningPort] = self._endpoint.listen(factory)

        def record(port: IListeningPort) -> IListeningPort:
            if isinstance(factory, SCGISite):
                _targets.append((self._kind, port.getHost()))
            return port

        return d.addCallback(record)


_original_from_string = endpoints.serverFromString
_original_tcp4 = endpoints.TCP4ServerEndpoint


def _server_from_string(reactor_: Any, description: str) -> _Recorder:
    new = _rewrite(description)
    kind = "unix" if new.startswith("unix:") else "tcp"
    return _Recorder(_original_from_string(reactor_, new), kind)


def _tcp4(reactor_: Any, port: int, *args: Any, **kwargs: Any) -> _Recorder:
    return _Recorder(_original_tcp4(reactor_, 0, *args, **kwargs), "tcp")


class _Probe(Protocol):
    def __init__(self, path: str) -> None:
        self.path = path
        self.data = b""

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(_request(self.path))

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: Failure = Failure(Exception())) -> None:  # noqa: B008
        try:
            response = parseResponse(self.data)
        except ValueError as error:
            status, body = f"not a CGI response: {error}", b""
        else:
            phrase = response.reason.decode("latin-1")
            status = f"Status: {response.status} {phrase}"
            body = response.body
        _results.append(
            {
                "path": self.path,
                "status": status,
                "body": body.decode("utf-8", "replace"),
            }
        )


def _probe_all() -> None:
    for path in _paths:
        factory: Any = ClientFactory.forProtocol(partial(_Probe, path))
        for kind, address in _targets:
            if kind == "unix":
                reactor.connectUNIX(address.name, factory)  # type: ignore[attr-defined]
            else:
                reactor.connectTCP(address.host, address.port, factory)


_original_run = reactor.run


def _short_run(*args: Any, **kwargs: Any) -> None:
    reactor.callLater(0.3, _probe_all)
    reactor.callLater(1.5, reactor.stop)
    _original_run(*args, **kwargs)
    for result in _results:
        print("SCGI-RESPONSE", json.dumps(result))


def main() -> None:
    """Run the example named on the command line under the rewrites above."""
    setattr(endpoints, "serverFromString", _server_from_string)  # noqa: B010
    setattr(endpoints, "TCP4ServerEndpoint", _tcp4)  # noqa: B010
    setattr(reactor, "run", _short_run)  # noqa: B010
    _paths[:] = sys.argv[2:] or ["/"]
    runpy.run_path(sys.argv[1], run_name="__main__")


if __name__ == "__main__":
    main()
