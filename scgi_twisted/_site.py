"""The SCGI site: a ``twisted.web`` ``Site`` whose connections speak SCGI.

``SCGISite(resource)`` is all an embedding application needs::

    endpoint.listen(SCGISite(root))

:meth:`SCGISite.sharing` serves an existing ``Site`` over SCGI beside its HTTP
listener: the same resource tree, sessions, request factory and access log.
"""

from __future__ import annotations

import io
import ipaddress
import tempfile
from collections.abc import Iterable
from typing import IO, Any

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IAddress
from twisted.logger import Logger
from twisted.web.resource import IResource
from twisted.web.server import Request, Site

from ._channel import SCGIChannel, SCGIConfig
from ._sansio import DEFAULT_MAX_HEADER_SIZE, DEFAULT_MAX_VARIABLES

__all__ = ["SCGISite"]

_log = Logger()

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _parse_networks(networks: Iterable[str]) -> tuple[_Network, ...]:
    """Parse networks such as ``127.0.0.0/8`` or ``::1``; raise ValueError if bad."""
    return tuple(ipaddress.ip_network(network, strict=False) for network in networks)


def peer_allowed(address: object, networks: tuple[_Network, ...]) -> bool:
    """Return whether a connecting peer may be served.

    Peers that are not IP addresses (unix sockets) are always allowed; an IPv4-mapped
    IPv6 address is matched as the IPv4 address it carries.
    """
    if not isinstance(address, IPv4Address | IPv6Address):
        return True
    try:
        ip = ipaddress.ip_address(address.host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in networks)


class SCGISite(Site):
    """A ``Site`` that serves its resource tree to SCGI frontends.

    :param resource: the root of the resource tree.
    :param requestFactory: the request class (default ``twisted.web.server.Request``).
    :param mount: the path prefix the application lives under when the frontend sends
        no usable ``SCRIPT_NAME``/``PATH_INFO`` (stock nginx sends none), such as
        ``"/app"``.
    :param max_header_size: the largest SCGI header block, in bytes (431 beyond).
    :param max_variables: the largest number of SCGI variables (431 beyond).
    :param max_body_size: the largest request body, in bytes (413 beyond); ``None``
        for no limit.
    :param merge_duplicates: merge repeated ``HTTP_*`` variables (nginx 1.22 sends
        them) instead of refusing the request.
    :param half_close: treat a read-EOF after a complete request as a half-close, not
        as the client going away.
    :param linger_timeout: how long to wait for the rest of a refused request, seconds.
    :param timeout: the header-read deadline and the idle timeout while a body
        arrives, in seconds; ``None`` disables both.
    :param spool_threshold: request bodies at least this large are spooled to a
        temporary file instead of memory.
    :param allow: if given, only peers in these IPv4/IPv6 networks (``"127.0.0.1"``,
        ``"10.0.0.0/8"``, ``"::1"``) are served; others are closed at once with one
        log line.  Unix-socket peers are always served.
    :param kwargs: passed to ``Site``: ``logPath``, ``logFormatter``, ``reactor``,
        ``parsePOSTFormSubmission``.

    :ivar config: the :class:`SCGIConfig` every connection of this site uses.
    """

    protocol = SCGIChannel  # type: ignore[assignment]

    spool_threshold: int = 100_000
    _origin: Site | None = None

    def __init__(
        self,
        resource: IResource,
        requestFactory: Any = None,
        *,
        mount: str | bytes | None = None,
        max_header_size: int = DEFAULT_MAX_HEADER_SIZE,
        max_variables: int = DEFAULT_MAX_VARIABLES,
        max_body_size: int | None = None,
        merge_duplicates: bool = True,
        half_close: bool = False,
        linger_timeout: float = 5.0,
        timeout: float | None = 60.0,
        spool_threshold: int = 100_000,
        allow: Iterable[str] | None = None,
        **kwargs: Any,
    ) -> None:
        """Create the site; see the class docstring for the parameters."""
        super().__init__(  # type: ignore[no-untyped-call]
            resource, requestFactory, timeout=timeout, **kwargs
        )
        if isinstance(mount, str):
            mount = mount.encode("utf-8")
        if mount is not None and not mount.startswith(b"/"):
            raise ValueError(f"the mount prefix must start with '/': {mount!r}")
        self.spool_threshold = spool_threshold
        self.allow = None if allow is None else _parse_networks(allow)
        self.config = SCGIConfig(
            max_header_size=max_header_size,
            max_variables=max_variables,
            max_body_size=max_body_size,
            merge_duplicates=merge_duplicates,
            mount=mount.rstrip(b"/") or None if mount else None,
            half_close=half_close,
            linger_timeout=linger_timeout,
        )

    @classmethod
    def sharing(cls, site: Site, **options: Any) -> SCGISite:
        """Serve an existing ``Site`` over SCGI, beside its HTTP listener.

        The returned site uses ``site``'s resource tree, sessions, request factory,
        tracebacks setting, request-body files and access log; only the SCGI options
        are its own.

        :param site: the site to share.
        :param options: the SCGI keyword arguments of :class:`SCGISite`.
        :returns: a factory to listen with.
        """
        options.setdefault("timeout", site.timeOut)
        options.setdefault("parsePOSTFormSubmission", site._parsePOSTFormSubmission)
        scgi = cls(site.resource, site.requestFactory, reactor=site.reactor, **options)
        scgi._origin = site
        scgi.sessions = site.sessions
        scgi.sessionFactory = site.sessionFactory
        scgi.displayTracebacks = site.displayTracebacks
        return scgi

    def buildProtocol(  # type: ignore[override]
        self, addr: IAddress | None
    ) -> SCGIChannel | None:
        """Build a channel for one SCGI connection, or refuse a peer not allowed."""
        if self.allow is not None and not peer_allowed(addr, self.allow):
            _log.warn("Refused a connection from {peer}: not in --allow", peer=addr)
            return None
        channel: SCGIChannel = super().buildProtocol(addr)  # type: ignore[no-untyped-call]
        channel.config = self.config
        return channel

    def getResourceFor(self, request: Request) -> IResource:
        """Apply the mount point, then find the resource as ``Site`` does."""
        channel = getattr(request, "channel", None)
        if isinstance(channel, SCGIChannel):
            channel._applyMount(request)
        if self._origin is not None:
            resource = self._origin.getResourceFor(request)  # type: ignore[no-untyped-call]
        else:
            resource = super().getResourceFor(request)  # type: ignore[no-untyped-call]
        return resource  # type: ignore[no-any-return]

    def getContentFile(self, length: int | None) -> IO[bytes]:
        """Return the file a request body is written to.

        Bodies under :attr:`spool_threshold` bytes stay in memory; larger ones (and
        those of unknown length) go to an anonymous temporary file.
        """
        origin = self._origin
        if origin is not None and hasattr(origin, "getContentFile"):
            return origin.getContentFile(length)  # type: ignore[no-any-return]
        if length is not None and length < self.spool_threshold:
            return io.BytesIO()
        return tempfile.TemporaryFile()

    def log(self, request: Request) -> None:  # type: ignore[override]
        """Write the access-log line (to the shared site's log when sharing)."""
        if self._origin is not None:
            self._origin.log(request)
        else:
            super().log(request)

    def startFactory(self) -> None:
        """Open the access log, or start the shared site so that its log is open."""
        if self._origin is not None:
            self._origin.doStart()  # type: ignore[no-untyped-call]
        else:
            super().startFactory()

    def stopFactory(self) -> None:
        """Close the access log, or release the shared site."""
        if self._origin is not None:
            self._origin.doStop()  # type: ignore[no-untyped-call]
        else:
            super().stopFactory()
