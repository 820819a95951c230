"""Stop listening without resetting the connections the kernel already accepted.

The kernel completes connections on a listening socket by itself and queues them
(the listen backlog) until the server calls ``accept()``.  Closing the socket resets
every connection still queued; the frontend has usually sent its request on it
already, and nginx does not retry a POST that was sent, so the request is lost.

:func:`acceptBacklog` therefore takes every queued connection (they are served as
usual, within the grace period) and shuts the socket down at once after the last
one, so that the port's close that follows finds nothing to reset:

* on a unix socket the shutdown comes first: from then on a connect is refused
  (nginx passes the request to another backend, since nothing was sent), while the
  connections already queued can still be accepted.  Nothing is lost.
* on a TCP socket a shutdown resets what is queued, so it comes right after the
  last ``accept()`` that found the queue empty: only a connection completed by the
  kernel in the few microseconds between the two can still be reset.

:class:`RecordingEndpoint` wraps the endpoint of a ``--listen`` so that the service
knows the ports it must treat so on stop.  Sockets inherited from systemd or the
``--workers`` supervisor are not wrapped: they stay open in their owner, whose queue
is not reset when our copy closes, and a shutdown would stop them for every process.
"""

from __future__ import annotations

import os
import select
import socket
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger

__all__ = ["RecordingEndpoint", "acceptBacklog"]

_log = Logger()

MAX_PASSES = 1000
"""At most this many accept passes: a backlog refilled faster than it empties is cut."""


def _readable(fd: int) -> bool:
    """Return whether a listening descriptor has a connection queued."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


def acceptBacklog(port: Any, connections: Any) -> int:
    """Accept every connection queued on ``port``, then shut its socket down.

    :param port: a listening port of the reactor, with ``fileno()`` and
        ``doRead()`` (``IListeningPort`` and ``IReadDescriptor``), as the TCP, SSL
        and unix ports are.  Any other port is left alone.
    :param connections: called without arguments, returns how many connections
        the site has: a pass that adds none (the process is out of descriptors)
        ends the accepting.
    :returns: how many connections were taken (the site's count went up by).
    """
    fileno = getattr(port, "fileno", None)
    doRead = getattr(port, "doRead", None)
    if fileno is None or doRead is None:
        return 0
    try:
        fd = fileno()
        copy = socket.socket(fileno=os.dup(fd))
    except (OSError, ValueError):
        return 0
    before = connections()
    with copy:
        unix = copy.family == socket.AF_UNIX
        if unix:
            _shutdown(copy)
        for _ in range(MAX_PASSES):
            if not _readable(fd):
                break
            count = connections()
            doRead()
            if connections() == count and _readable(fd):
                break  # nothing could be accepted: leave the rest to the close
        if not unix:
            _shutdown(copy)
    return int(connections() - before)


def _shutdown(sock: socket.socket) -> None:
    """Stop a listening socket from taking new connections."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError as error:  # pragma: no cover - a listening socket shuts down
        _log.warn("Could not shut the listening socket down: {error}", error=error)


class RecordingEndpoint:
    """A server endpoint that notes the port it listens on.

    :ivar endpoint: the endpoint wrapped.
    :ivar ports: the ports listening now.
    """

    def __init__(self, endpoint: Any) -> None:
        """Wrap ``endpoint``."""
        self.endpoint = endpoint
        self.ports: list[IListeningPort] = []

    def listen(self, factory: Any) -> Deferred[IListeningPort]:
        """Listen as the wrapped endpoint does, noting the port."""

        def record(port: IListeningPort) -> IListeningPort:
            self.ports.append(port)
            return port

        d: Deferred[IListeningPort] = self.endpoint.listen(factory)
        return d.addCallback(record)
