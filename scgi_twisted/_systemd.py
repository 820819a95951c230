"""systemd without a dependency: readiness notification and inherited sockets.

:func:`notify` sends ``sd_notify`` messages (``READY=1``, ``RELOADING=1``,
``STOPPING=1``, ``STATUS=...``, ``MAINPID=...``) as one datagram to the unix socket
named by ``$NOTIFY_SOCKET``, with the standard library's :mod:`socket` module.  A name
starting with ``@`` is in the abstract namespace.  Without ``$NOTIFY_SOCKET`` (not run
by systemd, or a ``Type=`` other than ``notify``) it does nothing.

:class:`NotifyService` tells systemd ``READY=1`` once the listeners before it in its
parent listen, and ``STOPPING=1`` as soon as the parent starts to stop.

:func:`adoptListeningSocket` and :class:`InheritedSocketEndpoint` listen on a socket
that another process created and still owns (systemd socket activation, or the
``--workers`` supervisor).  Twisted's own adoption (``reactor.adoptStreamPort``, which
the ``systemd:`` endpoint uses) treats a unix socket as its own: it sets the socket
file's mode to ``0666``, overriding ``SocketMode=``, and removes the file when it stops
listening and shuts the socket down (``shutdown()`` acts on the socket itself, not on
one descriptor), so that after a restart of the service the socket that systemd still
holds has no name and no longer listens.  These helpers keep the file's mode, leave the
file alone and only close their own descriptor.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import time
from collections.abc import Mapping
from typing import Any

from twisted.application import service
from twisted.internet import fdesc, tcp, unix
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.endpoints import AdoptedStreamServerEndpoint
from twisted.internet.error import AlreadyListened, CannotListenError
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger
from twisted.python.failure import Failure

from ._internals import closeWithoutShutdown, portFromListeningDescriptor

__all__ = [
    "InheritedSocketEndpoint",
    "NotifyService",
    "adoptListeningSocket",
    "inheritedSafely",
    "notify",
]

_log = Logger()

NOTIFY_SOCKET = "NOTIFY_SOCKET"
"""The environment variable naming systemd's notification socket."""


def _address(name: str) -> str | bytes:
    """Return the ``sendto`` address for a ``$NOTIFY_SOCKET`` value.

    ``@name`` is ``name`` in the abstract namespace (a leading NUL byte).
    """
    if name.startswith("@"):
        return b"\0" + os.fsencode(name[1:])
    return name


def notify(state: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send one ``sd_notify`` message to systemd, if it asked for them.

    :param state: newline-separated assignments, such as ``"READY=1"`` or
        ``"STOPPING=1"`` and ``"STATUS=..."`` on separate lines.
    :param environ: where to find ``NOTIFY_SOCKET``; :data:`os.environ` by default.
    :returns: whether the message was sent.  ``False`` without ``NOTIFY_SOCKET``, or
        if sending failed (which is logged, never raised: readiness is advisory).
    """
    name = (os.environ if environ is None else environ).get(NOTIFY_SOCKET, "")
    if not name:
        return False
    if not name.startswith(("/", "@")):
        _log.warn(
            "NOTIFY_SOCKET={name!r} is neither a path nor an abstract name: not "
            "notifying systemd",
            name=name,
        )
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(state.encode("utf-8"), _address(name))
    except OSError as error:
        _log.warn(
            "Could not notify systemd ({state!r} to {name}): {error}",
            state=state,
            name=name,
            error=error,
        )
        return False
    return True


def monotonicMicroseconds() -> int:
    """Return ``CLOCK_MONOTONIC`` in microseconds, for ``MONOTONIC_USEC=``."""
    return time.monotonic_ns() // 1000


class NotifyService(service.Service):
    """Tell systemd when its parent is ready and when it starts to stop.

    Add it to a ``MultiService`` after the listeners: the parent starts its children
    in order (the listeners then listen already) and stops them in reverse order (so
    ``STOPPING=1`` goes out before anything else stops).

    :ivar status: the ``STATUS=`` text sent with ``READY=1``.
    """

    def __init__(self, status: str = "") -> None:
        """Create the service; ``status`` is sent with ``READY=1``."""
        self.status = status

    def startService(self) -> None:
        """Send ``READY=1`` (and ``MAINPID``, in case a wrapper started us)."""
        super().startService()  # type: ignore[no-untyped-call]
        message = f"READY=1\nMAINPID={os.getpid()}"
        if self.status:
            message += f"\nSTATUS={self.status}"
        notify(message)

    def stopService(self) -> Deferred[None] | None:
        """Send ``STOPPING=1``."""
        notify("STOPPING=1\nSTATUS=Stopping: finishing the requests in flight")
        return super().stopService()  # type: ignore[no-any-return,no-untyped-call]


class _InheritedUNIXPort(unix.Port):
    """A unix port on a socket someone else owns: it keeps its mode and its file.

    It also never shuts the socket down, which would stop it listening in every
    process holding it.

    :ivar socketPath: the address the socket is bound to, as ``getsockname()`` gives
        it (read from the socket itself, so no Twisted attribute is needed for it).
    """

    socketPath: str | bytes = ""

    def startListening(self) -> None:
        """Listen, re-applying the socket file's own mode (not ``0666``)."""
        path = self.socketPath
        if path and path[:1] not in (b"\0", "\0"):
            try:
                self.mode = stat.S_IMODE(os.stat(path).st_mode)
            except OSError as error:
                raise CannotListenError(  # type: ignore[no-untyped-call]
                    None, path, f"the inherited socket's file: {error}"
                ) from None
        super().startListening()  # type: ignore[no-untyped-call]
        # Close only our descriptor on stop: shutdown() would stop the socket
        # listening for every process sharing it (Twisted's TCP port does the same
        # for adopted sockets; its unix port does not).
        closeWithoutShutdown(self)

    def connectionLost(self, reason: Failure) -> None:
        """Close the socket but leave its file: its owner removes it."""
        tcp.Port.connectionLost(self, reason)  # type: ignore[no-untyped-call]


def adoptListeningSocket(
    reactor: Any,
    fileno: int,
    family: socket.AddressFamily,
    factory: Any,
    backlog: int = socket.SOMAXCONN,
) -> IListeningPort:
    """Serve ``factory`` on an inherited listening socket, without taking it over.

    The descriptor is duplicated, not consumed: close ``fileno`` afterwards if it is
    no longer needed.  A TCP socket keeps its backlog; a unix socket is listened on
    again with ``backlog`` (the kernel then uses that), keeps its file's mode, and its
    file is not removed when the port stops listening.

    :param reactor: a POSIX reactor.
    :param fileno: a listening ``SOCK_STREAM`` socket.
    :param family: its address family: ``AF_INET``, ``AF_INET6`` or ``AF_UNIX``.
    :param factory: the protocol factory to serve.
    :param backlog: the listen backlog for a unix socket.
    :returns: the listening port.
    """
    fdesc.setNonBlocking(fileno)  # type: ignore[no-untyped-call]
    if family == socket.AF_UNIX:
        with socket.socket(family, socket.SOCK_STREAM, fileno=os.dup(fileno)) as sock:
            path = sock.getsockname()
        port = portFromListeningDescriptor(_InheritedUNIXPort, reactor, fileno, factory)
        if not isinstance(port, _InheritedUNIXPort):
            return port  # type: ignore[no-any-return]
        port.backlog = backlog
        port.socketPath = path
        port.startListening()
        return port
    return reactor.adoptStreamPort(fileno, family, factory)  # type: ignore[no-any-return]


class InheritedSocketEndpoint:
    """A server endpoint on a socket inherited from systemd, kept as systemd made it.

    A replacement for ``AdoptedStreamServerEndpoint`` (what ``systemd:`` endpoint
    strings build) that listens with :func:`adoptListeningSocket`, then closes the
    inherited descriptor as that endpoint does.

    :ivar reactor: the reactor.
    :ivar fileno: the inherited descriptor.
    :ivar addressFamily: its address family.
    """

    def __init__(
        self, reactor: Any, fileno: int, addressFamily: socket.AddressFamily
    ) -> None:
        """Create the endpoint; it may listen once."""
        self.reactor = reactor
        self.fileno = fileno
        self.addressFamily = addressFamily
        self._used = False

    def listen(self, factory: Any) -> Deferred[IListeningPort]:
        """Listen on the inherited socket, once."""
        if self._used:
            return fail(AlreadyListened())
        self._used = True
        try:
            port = adoptListeningSocket(
                self.reactor, self.fileno, self.addressFamily, factory
            )
        except Exception:
            return fail()
        with contextlib.suppress(OSError):
            os.close(self.fileno)
        return succeed(port)


def inheritedSafely(endpoint: Any) -> Any:
    """Return ``endpoint``, or a safe replacement if it adopts an inherited socket.

    ``systemd:`` endpoint strings build an ``AdoptedStreamServerEndpoint``; this
    returns an :class:`InheritedSocketEndpoint` on the same descriptor instead.
    Other endpoints are returned unchanged.
    """
    if isinstance(endpoint, AdoptedStreamServerEndpoint):
        return InheritedSocketEndpoint(
            endpoint.reactor, endpoint.fileno, endpoint.addressFamily
        )
    return endpoint
