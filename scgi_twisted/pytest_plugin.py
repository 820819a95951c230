"""An opt-in pytest plugin: serve a resource on a real listener, get a client for it.

Nothing loads it unless a project asks, in its ``conftest.py``::

    pytest_plugins = ["scgi_twisted.pytest_plugin"]

(or with ``pytest -p scgi_twisted.pytest_plugin``).  It needs pytest-twisted, which
runs the reactor for the tests, and gives them the fixture ``scgi_serve``: a function
that listens with an :class:`~scgi_twisted.SCGISite` on a free loopback port (or a
given server endpoint) and returns an :class:`~scgi_twisted.client.SCGIClient` that
sends requests to it.  Every listener is closed when the test ends::

    import pytest_twisted
    from twisted.web.static import Data


    @pytest_twisted.ensureDeferred
    async def test_hello(scgi_serve):
        client = scgi_serve(Data(b"hello", "text/plain"), max_body_size=1024)
        response = await client.request("GET", "/")
        assert response.code == 200
        assert await response.content() == b"hello"

Use it for resources that need the running reactor (``callLater``, real I/O, a
``WSGIResource`` and its thread pool) and for tests that should cross real sockets;
:class:`scgi_twisted.testing.SCGITestClient` stays the fast, in-memory way for the
rest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IListeningPort
from twisted.python.failure import Failure
from twisted.web.resource import IResource
from twisted.web.server import Site

from ._site import SCGISite
from .client import SCGIClient

__all__ = ["Serve", "scgi_serve"]

Serve = Callable[..., SCGIClient]
"""``scgi_serve(resource_or_site, *, endpoint=..., client_options=None,
**site_options)``."""

DEFAULT_ENDPOINT = "tcp:0:interface=127.0.0.1"
"""Where ``scgi_serve`` listens unless told: a free port on the loopback address."""


def _blockon(deferred: Deferred[Any]) -> Any:
    """Wait for ``deferred`` with pytest-twisted, which must be installed and active."""
    try:
        import pytest_twisted  # type: ignore[import-untyped]  # noqa: PLC0415
    except ImportError:  # pragma: no cover - depends on the environment
        pytest.fail(
            "the scgi_serve fixture needs pytest-twisted: pip install pytest-twisted",
            pytrace=False,
        )
    return pytest_twisted.blockon(deferred)


def _listenNow(deferred: Deferred[IListeningPort]) -> IListeningPort:
    """Return the port of a listen that completed at once (TCP and unix ones do).

    The fixture's function is called from inside the test, which pytest-twisted runs
    in the reactor's greenlet, where nothing may block: so it takes the result that
    is already there.
    """
    results: list[IListeningPort | Failure] = []
    deferred.addBoth(results.append)
    if not results:
        deferred.cancel()
        raise RuntimeError("scgi_serve: the endpoint did not start listening at once")
    (result,) = results
    if isinstance(result, Failure):
        result.raiseException()
    assert not isinstance(result, Failure)
    return result


@pytest.fixture
def scgi_serve() -> Iterator[Serve]:
    """Serve resources over SCGI on real listeners for one test; close them after.

    :returns: ``serve(resource_or_site, *, endpoint=DEFAULT_ENDPOINT,
        client_options=None, **site_options)``: it listens with an ``SCGISite`` (a
        resource gets a new one with ``site_options``; an ``SCGISite`` is used as it
        is; another ``Site`` is shared with :meth:`SCGISite.sharing`) on the server
        endpoint string ``endpoint`` and returns an ``SCGIClient`` for it, built with
        ``client_options`` (such as ``script_name`` or ``timeout``).
    """
    from twisted.internet import reactor  # noqa: PLC0415 - pytest-twisted's reactor
    from twisted.internet.endpoints import serverFromString  # noqa: PLC0415

    ports: list[IListeningPort] = []

    def serve(
        resource_or_site: IResource | Site,
        *,
        endpoint: str = DEFAULT_ENDPOINT,
        client_options: dict[str, Any] | None = None,
        **site_options: Any,
    ) -> SCGIClient:
        if isinstance(resource_or_site, SCGISite):
            site = resource_or_site
        elif isinstance(resource_or_site, Site):
            site = SCGISite.sharing(resource_or_site, **site_options)
        else:
            site = SCGISite(resource_or_site, **site_options)
        listener = serverFromString(reactor, endpoint)  # type: ignore[no-untyped-call]
        port = _listenNow(listener.listen(site))
        ports.append(port)
        address: Any = port.getHost()
        name = getattr(address, "name", None)
        if name is not None:
            target = f"unix:{name.decode() if isinstance(name, bytes) else name}"
        elif ":" in address.host:
            target = f"[{address.host}]:{address.port}"
        else:
            target = f"{address.host}:{address.port}"
        return SCGIClient(reactor, target, **(client_options or {}))

    yield serve
    for port in ports:
        stopped = port.stopListening()
        if stopped is not None:
            _blockon(stopped)
