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
from collections import deque
from collections.abc import Iterable
from typing import IO, Any, cast

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import IResource
from twisted.web.server import Request, Site

from ._bodies import (
    POOLED_BODY_KEEP,
    POOLED_BODY_MIN,
    POOLED_BODY_SIZE,
    BodyBuffer,
    BufferPool,
    PooledBody,
)
from ._channel import SCGIChannel, SCGIConfig
from ._deadlines import Deadlines
from ._descriptors import DescriptorGuard
from ._internals import siteParsesForms
from ._metrics import Metrics
from ._request import SCGIRequest
from ._sansio import DEFAULT_MAX_HEADER_SIZE, DEFAULT_MAX_VARIABLES
from ._traversal import Traversal

__all__ = ["DEFAULT_SPOOL_THRESHOLD", "DEFAULT_WRITE_TIMEOUT", "SCGISite", "resourceOf"]

DEFAULT_SPOOL_THRESHOLD = 1024 * 1024 + 1
"""Request bodies up to 1 MiB (nginx's default ``client_max_body_size``) stay in
memory; larger ones are spooled to a temporary file.  The memory held by bodies is so
bounded by 1 MiB per connection (see ``max_connections``)."""

DEFAULT_WRITE_TIMEOUT = 300.0
"""A peer may take none of our output for 5 minutes before its connection is aborted.

Generous on purpose: it must never cut a peer that is merely slow.  nginx itself gives
up on a client that reads nothing for 60 s (``send_timeout``) and then closes our
connection; and the clock restarts only when everything written so far has been
taken (after a response ends it covers the whole rest), so the margin is five times
that."""

_log = Logger()

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def resourceOf(obj: object) -> IResource | None:
    """Return ``obj`` if it is a resource, ``obj.resource()`` if it has that method.

    What ``twistd scgi --resource`` and :class:`SCGISite` accept as a root: a
    ``twisted.web`` resource, or an object with a ``resource()`` method (such as a
    Klein app), called once.

    :returns: the resource, or ``None`` if ``obj`` is neither.
    :raises TypeError: if ``obj.resource()`` returns something that is not a
        resource.
    """
    if IResource.providedBy(obj):
        return obj
    method = getattr(obj, "resource", None)
    if not isinstance(obj, type) and callable(method):
        made = method()
        if IResource.providedBy(made):
            return made
        raise TypeError(
            f"{obj!r}.resource() returned {made!r}, which is not a twisted.web resource"
        )
    return None


def _rootResource(obj: object) -> IResource:
    """Return the root resource for ``SCGISite(obj)``, or refuse ``obj`` clearly.

    :raises TypeError: if ``obj`` is not a resource nor has a ``resource()`` method.
    """
    resource = resourceOf(obj)
    if resource is not None:
        return resource
    hint = ""
    if isinstance(obj, type):
        hint = f" (it is a class: pass an instance, such as {obj.__name__}())"
    elif callable(obj):
        hint = (
            " (if it is a WSGI application, wrap it: "
            "WSGIResource(reactor, reactor.getThreadPool(), app))"
        )
    raise TypeError(
        f"SCGISite needs a twisted.web resource, or an object with a resource() "
        f"method such as a Klein app; got {obj!r}{hint}"
    )


def _streamScope(
    stream_uploads: bool | Iterable[str | bytes],
) -> bool | tuple[bytes, ...]:
    """Return the ``stream_uploads`` of :class:`SCGIConfig` for the site option.

    :raises ValueError: if a prefix does not start with ``/``.
    :raises TypeError: if the option is a single string rather than a list.
    """
    if isinstance(stream_uploads, bool):
        return stream_uploads
    if isinstance(stream_uploads, str | bytes):
        raise TypeError(
            f"stream_uploads takes True, False or a list of path prefixes, such as "
            f"[{stream_uploads!r}]; got the single string {stream_uploads!r}"
        )
    prefixes: list[bytes] = []
    for given in stream_uploads:
        prefix = given.encode("utf-8") if isinstance(given, str) else bytes(given)
        if not prefix.startswith(b"/"):
            raise ValueError(f"a stream_uploads prefix must start with '/': {given!r}")
        prefix = prefix.rstrip(b"/")
        if not prefix:
            return True  # "/" is every path
        prefixes.append(prefix)
    return tuple(prefixes) if prefixes else False


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


class RefusedConnection(SCGIChannel):
    """What a peer outside ``allow=`` gets: a connection dropped as soon as it opens.

    A protocol rather than ``None``: a listening port closes the socket when its
    factory builds ``None``, but a wrapping factory (TLS, for ``ssl:`` listeners)
    wraps whatever it is given and would fail on ``None``.  It is a channel only in
    type: it reads nothing, answers nothing and is not counted.
    """

    def connectionMade(self) -> None:
        """Close the connection; nothing it sent is read or answered.

        A close, as the port's own for ``None``; not an abort, whose reset could
        reach the peer before its ``connect()`` has returned.
        """
        self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        """Ignore what arrives before the abort completes."""

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """Nothing to clean up: no request, no timer, not counted."""


class SCGISite(Site):
    """A ``Site`` that serves its resource tree to SCGI frontends.

    :param resource: the root of the resource tree, or an object with a
        ``resource()`` method (a Klein app), as ``--resource`` accepts.
    :param requestFactory: the request class (default :class:`SCGIRequest`, a
        ``twisted.web.server.Request`` made for SCGI).
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
    :param header_timeout: how long the whole SCGI header block may take to arrive
        (slowloris), in seconds; ``None`` means ``timeout``.
    :param abort_timeout: how long a timed-out or refused connection may ignore our
        close before it is aborted, in seconds.
    :param max_connections: the most connections served at once; past it the site
        stops accepting (the kernel's backlog holds new connections) and resumes when
        a connection ends.  Connections a port accepted in the same batch wait,
        unread, for a free slot.  ``None`` for no limit.
    :param stream_uploads: where an ``IStreamingUploadResource`` may read the body
        as it arrives: ``False`` (the default) nowhere, ``True`` everywhere, or a
        list of path prefixes such as ``["/upload"]``.  There, the resource of a
        request with a body is looked up as soon as its headers arrive, so
        ``getChild`` sees neither a form's arguments nor the content; elsewhere the
        tree is traversed once the body is in, exactly as twisted.web does.
    :param write_timeout: how long the peer may take none of our output before the
        connection is aborted, in seconds: while the transport's write buffer is full
        during a response written without a producer, and from the end of a response
        until the close completes.  ``None`` for no limit.
    :param kwargs: passed to ``Site``: ``logPath``, ``logFormatter``, ``reactor``,
        ``parsePOSTFormSubmission``.

    :ivar config: the :class:`SCGIConfig` every connection of this site uses.
    """

    protocol = SCGIChannel  # type: ignore[assignment]
    requestFactory: type[Request] = SCGIRequest

    spool_threshold: int = DEFAULT_SPOOL_THRESHOLD
    _origin: Site | None = None
    metrics: Metrics | None = None
    _deadlines: Deadlines | None = None

    def __init__(
        self,
        resource: object,
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
        spool_threshold: int = DEFAULT_SPOOL_THRESHOLD,
        allow: Iterable[str] | None = None,
        header_timeout: float | None = None,
        abort_timeout: float = 15.0,
        max_connections: int | None = None,
        stream_uploads: bool | Iterable[str | bytes] = False,
        write_timeout: float | None = DEFAULT_WRITE_TIMEOUT,
        **kwargs: Any,
    ) -> None:
        """Create the site; see the class docstring for the parameters.

        :raises TypeError: if ``resource`` is not a resource and has no
            ``resource()`` method.
        """
        super().__init__(  # type: ignore[no-untyped-call]
            _rootResource(resource), requestFactory, timeout=timeout, **kwargs
        )
        if isinstance(mount, str):
            mount = mount.encode("utf-8")
        if mount is not None and not mount.startswith(b"/"):
            raise ValueError(f"the mount prefix must start with '/': {mount!r}")
        self.spool_threshold = spool_threshold
        self._bodyPool = BufferPool(POOLED_BODY_SIZE, POOLED_BODY_KEEP)
        self.allow = None if allow is None else _parse_networks(allow)
        if max_connections is not None and max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self.max_connections = max_connections
        self._channels: set[SCGIChannel] = set()
        self._ports: dict[int, Any] = {}
        self._acceptPaused = False
        self._waiting: deque[SCGIChannel] = deque()
        self._drained: list[Deferred[None]] = []
        self._descriptors = DescriptorGuard(self)
        self.config = SCGIConfig(
            max_header_size=max_header_size,
            max_variables=max_variables,
            max_body_size=max_body_size,
            merge_duplicates=merge_duplicates,
            mount=mount.rstrip(b"/") or None if mount else None,
            half_close=half_close,
            linger_timeout=linger_timeout,
            abort_timeout=abort_timeout,
            header_timeout=header_timeout,
            stream_uploads=_streamScope(stream_uploads),
            write_timeout=write_timeout,
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
        options.setdefault("parsePOSTFormSubmission", siteParsesForms(site))
        scgi = cls(site.resource, site.requestFactory, reactor=site.reactor, **options)
        scgi._origin = site
        scgi.sessions = site.sessions
        scgi.sessionFactory = site.sessionFactory
        scgi.displayTracebacks = site.displayTracebacks
        return scgi

    def buildProtocol(  # type: ignore[override]
        self, addr: IAddress | None
    ) -> SCGIChannel | None:
        """Build a channel for one SCGI connection, or refuse a peer not allowed.

        :returns: the channel; for a peer outside ``allow=``, a protocol that drops
            the connection; ``None`` (the port then closes the socket at once) when
            the process is out of descriptors.
        """
        if self.allow is not None and not peer_allowed(addr, self.allow):
            _log.warn("Refused a connection from {peer}: not in --allow", peer=addr)
            self._refused("not_allowed")
            return RefusedConnection()
        if self._descriptors.exhausted():
            self._refused("descriptors")
            return None
        channel: SCGIChannel = super().buildProtocol(addr)  # type: ignore[no-untyped-call]
        channel.config = self.config
        channel.tracker = self
        channel.metrics = self.metrics
        channel.callLater = self._deadlinesFor().call
        return channel

    def _deadlinesFor(self) -> Deadlines:
        """Return the queues of the connections' deadlines (see ``_deadlines``).

        They are made on first use, on the site's reactor, which a test may replace
        after the site is built.
        """
        deadlines = self._deadlines
        if deadlines is None or deadlines.reactor is not self.reactor:
            deadlines = self._deadlines = Deadlines(self.reactor)
        return deadlines

    def _refused(self, reason: str) -> None:
        """Count a refused connection, if the site keeps metrics."""
        if self.metrics is not None:
            self.metrics.refused(reason)

    # Connection accounting: the connection limit and graceful shutdown.

    @property
    def connections(self) -> int:
        """The number of SCGI connections open now (waiting ones included)."""
        return len(self._channels)

    def _served(self) -> int:
        """Return the number of connections being served (not waiting for a slot)."""
        return len(self._channels) - len(self._waiting)

    def connectionOpened(self, channel: SCGIChannel) -> bool:
        """Count a new connection; stop accepting at the connection limit.

        The channel calls it as it opens (the site is its connection tracker).

        A listening port accepts a batch of connections at a time and goes on with
        its batch after ``stopReading``: a connection accepted past the limit waits,
        unread, until a slot is free.

        :returns: whether the connection may be served now; if not, its transport
            is paused and the channel's ``admit()`` is called later.
        """
        self._channels.add(channel)
        self._descriptors.opened(channel)
        if self.metrics is not None:
            self.metrics.connections += 1
        limit = self.max_connections
        if limit is None:
            return True
        self._notePort(channel)
        served = self._served()
        if served > limit:
            self._refused("connection_limit")
            self._waiting.append(channel)
            channel.transport.pauseProducing()
        if served >= limit:
            if not self._acceptPaused:
                self._acceptPaused = True
                _log.warn(
                    "Reached {limit} connections: not accepting until one ends",
                    limit=limit,
                )
            # Every time: the connection may come from a port not seen before.
            for listening in self._ports.values():
                listening.stopReading()
        return served <= limit

    def _notePort(self, channel: SCGIChannel) -> None:
        """Remember the listening port ``channel`` came from, to stop it later."""
        port = getattr(channel.transport, "server", None)
        if port is not None and hasattr(port, "stopReading"):
            self._ports[id(port)] = port

    def _accepting(self) -> bool:
        """Return whether the ports may accept: below the limit, descriptors left."""
        limit = self.max_connections
        return (limit is None or self._served() < limit) and (
            not self._descriptors.paused
        )

    def _resumeAccepting(self) -> None:
        """Let every port that is not being stopped accept again."""
        for listening in list(self._ports.values()):
            # A port being stopped (stopListening) is disconnecting but still
            # connected until its connectionLost: leave it stopped.
            if getattr(listening, "connected", False) and not getattr(
                listening, "disconnecting", False
            ):
                listening.startReading()

    def connectionClosed(self, channel: SCGIChannel) -> None:
        """Forget a connection; admit a waiting one or accept again; finish a drain.

        The channel calls it once its connection is gone.
        """
        if self.metrics is not None and channel in self._channels:
            self.metrics.connections -= 1
        self._channels.discard(channel)
        if channel in self._waiting:
            self._waiting.remove(channel)
        limit = self.max_connections
        while self._waiting and (limit is None or self._served() < limit):
            admitted = self._waiting.popleft()
            admitted.transport.resumeProducing()
            admitted.admit()
        if self._acceptPaused and (limit is None or self._served() < limit):
            self._acceptPaused = False
            if self._accepting():
                self._resumeAccepting()
        self._descriptors.closed()
        if not self._channels and self._drained:
            waiting, self._drained = self._drained, []
            for d in waiting:
                d.callback(None)

    def drain(self, grace: float) -> Deferred[None]:
        """Wait for the open connections to finish, then abort what is left.

        Stop the listening ports first (``stopListening``), then call this: requests
        in flight complete normally within ``grace`` seconds; connections still open
        after that are closed (an unfinished response is aborted, so that the
        frontend cannot take it for a complete one), and aborted if they ignore the
        close.  The site stays started (its access log open) until then.

        :param grace: the grace period, in seconds.
        :returns: a Deferred that fires once no connection is left.
        """
        if not self._channels:
            return succeed(None)
        _log.info(
            "Waiting up to {grace} s for {count} connection(s) to finish",
            grace=grace,
            count=len(self._channels),
        )
        # Stopping the last port stopped the factory, closing the access log: keep it
        # open for the requests that finish now.
        self.doStart()  # type: ignore[no-untyped-call]
        d: Deferred[None] = Deferred()
        self._drained.append(d)
        call = self.reactor.callLater(grace, self._closeRemaining)

        def stopTimer(result: None) -> None:
            if call.active():
                call.cancel()
            self.doStop()  # type: ignore[no-untyped-call]
            return result

        d.addCallback(stopTimer)
        return d

    def _closeRemaining(self) -> None:
        """The grace period is over: close every connection still open."""
        _log.warn(
            "Grace period over: closing {count} connection(s)",
            count=len(self._channels),
        )
        # The waiting connections are closed with the rest: none is admitted now.
        self._waiting.clear()
        for channel in list(self._channels):
            channel.shutDown()

    def getResourceFor(self, request: Request) -> IResource:
        """Apply the mount point, then find the resource as ``Site`` does."""
        channel = getattr(request, "channel", None)
        traversal = getattr(channel, "traversal", None)
        if isinstance(traversal, Traversal):
            found = traversal.foundEarly(request)
            if found is not None:
                return found  # type: ignore[no-any-return]
            traversal.applyMount(request)
        if self._origin is not None:
            resource = self._origin.getResourceFor(request)  # type: ignore[no-untyped-call]
        else:
            resource = super().getResourceFor(request)  # type: ignore[no-untyped-call]
        return resource  # type: ignore[no-any-return]

    def getContentFile(self, length: int | None) -> IO[bytes]:
        """Return the file a request body is written to.

        Bodies under :attr:`spool_threshold` bytes stay in memory (an empty body in
        a ``BytesIO``, one of 64 KiB to 1 MiB in a pooled buffer); larger ones (and
        those of unknown length) go to an anonymous temporary file.
        """
        origin = self._origin
        if origin is not None and hasattr(origin, "getContentFile"):
            return origin.getContentFile(length)  # type: ignore[no-any-return]
        if length is not None and length < self.spool_threshold:
            if not length:
                return io.BytesIO()
            if POOLED_BODY_MIN <= length <= self._bodyPool.size:
                return cast(IO[bytes], PooledBody(self._bodyPool))
            return cast(IO[bytes], BodyBuffer())
        return tempfile.TemporaryFile()

    def log(self, request: Request) -> None:  # type: ignore[override]
        """Write the access-log line (to the shared site's log when sharing)."""
        if self._origin is not None:
            self._origin.log(request)
        else:
            super().log(request)

    def startFactory(self) -> None:
        """Open the access log, or start the shared site so that its log is open."""
        self._deadlinesFor().lazy = True
        if self._origin is not None:
            self._origin.doStart()  # type: ignore[no-untyped-call]
        else:
            super().startFactory()

    def stopFactory(self) -> None:
        """Close the access log, or release the shared site."""
        if self._deadlines is not None:
            self._deadlines.stopIdle()
        if self._origin is not None:
            self._origin.doStop()  # type: ignore[no-untyped-call]
        else:
            super().stopFactory()
