"""Run one documentation example for real, with its listeners moved out of the way.

Used by ``tests/test_docs.py``: ``python -m tests._docs_prelude EXAMPLE.py``.  Before
the example runs, every server endpoint it creates is rewritten to a free port (TCP)
or a temporary path (unix), and ``reactor.run()`` is replaced by a short run during
which one SCGI ``GET /`` request is sent to every ``SCGISite`` the example listens
with.  The status lines received are printed as ``SCGI-STATUS <line>``; the process
exits non-zero if the example raises.
"""

from __future__ import annotations

import os
import re
import runpy
import sys
import tempfile
from typing import Any

from twisted.internet import endpoints, reactor
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.python.failure import Failure

_TEMP = tempfile.mkdtemp(prefix="scgi-docs-")
_REQUEST_BLOCK = (
    b"CONTENT_LENGTH\x000\x00SCGI\x001\x00REQUEST_METHOD\x00GET\x00"
    b"REQUEST_URI\x00/\x00SERVER_PROTOCOL\x00HTTP/1.1\x00"
    b"SERVER_NAME\x00localhost\x00SERVER_PORT\x0080\x00REMOTE_ADDR\x00127.0.0.1\x00"
)
_REQUEST = b"%d:%s," % (len(_REQUEST_BLOCK), _REQUEST_BLOCK)
_targets: list[tuple[str, Any]] = []
_results: list[str] = []


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
    def __init__(self) -> None:
        self.data = b""

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(_REQUEST)

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: Failure = Failure(Exception())) -> None:  # noqa: B008
        _results.append(self.data.split(b"\r\n", 1)[0].decode("latin-1"))


def _probe_all() -> None:
    factory: Any = ClientFactory.forProtocol(_Probe)
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
    for line in _results:
        print("SCGI-STATUS", line)


def main() -> None:
    """Run the example named on the command line under the rewrites above."""
    setattr(endpoints, "serverFromString", _server_from_string)  # noqa: B010
    setattr(endpoints, "TCP4ServerEndpoint", _tcp4)  # noqa: B010
    setattr(reactor, "run", _short_run)  # noqa: B010
    runpy.run_path(sys.argv[1], run_name="__main__")


if __name__ == "__main__":
    main()
