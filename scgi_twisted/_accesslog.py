"""The access log of ``twistd scgi``: combined log lines, written in batches.

Each request is formatted at once into the line twisted.web's
``combinedLogFormatter`` writes for it (byte for byte), and appended to a buffer.
The buffer is written out in one piece when a short timer fires
(:data:`FLUSH_INTERVAL`, on the site's clock), when it grows past
:data:`BUFFER_LIMIT`, when the log is reopened and when it is closed: one system
call (or one log event) per batch instead of one logger event per request.

Where the lines go is a *sink*:

* :class:`FileSink` appends to a file opened with ``O_APPEND`` and writes every batch
  in one ``write``, so that several processes (``--workers``) appending to the same
  file never mix their lines; :meth:`FileSink.reopen` opens the path again (after
  logrotate renamed the file, on ``SIGUSR1``);
* :class:`StreamSink` writes to a descriptor such as standard output (``-``), in
  pieces of whole lines no larger than ``PIPE_BUF``, which a pipe writes atomically;
* :class:`LoggerSink` hands each batch to the ``twisted.logger`` log (the ``twistd``
  log) as one event.

Requests the channel refuses itself (``400``, ``408``, ``413``, ``431``) are logged
by :meth:`AccessLog.refused`, from what the channel knows of them.
"""

from __future__ import annotations

import functools
import os
import re
import select
from collections.abc import Mapping
from typing import Any, Protocol

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.web.http import datetimeToLogString

from ._environ import request_uri

__all__ = [
    "BUFFER_LIMIT",
    "FLUSH_INTERVAL",
    "AccessLog",
    "FileSink",
    "LoggerSink",
    "Sink",
    "StreamSink",
    "combinedLine",
    "escape",
    "refusedLine",
]

FLUSH_INTERVAL = 1.0
"""Seconds a line may wait in the buffer before the batch is written."""

BUFFER_LIMIT = 64 * 1024
"""Characters buffered before the batch is written at once, whatever the timer."""

PIPE_BUF = getattr(select, "PIPE_BUF", 4096)
"""The largest write a pipe performs atomically (4096 bytes on Linux)."""

_log = Logger()

_accessLog = Logger(namespace="scgi_twisted.access")
"""The logger of :class:`LoggerSink`: its events are the access log's batches."""

_IP = (IPv4Address, IPv6Address)

_SAFE = re.compile(rb"[ !#-\[\]-~]*")
"""Printable ASCII without ``"`` and ``\\``: what :func:`escape` leaves unchanged."""


@functools.lru_cache(maxsize=4096)
def escape(value: bytes | str) -> str:
    r"""Escape a value for a quoted field of a log line, as twisted.web does.

    The result equals twisted.web's own escaping: Python's ``repr`` of the bytes
    without the quotes, with ``"`` (and not ``'``) escaped.  Printable ASCII without
    ``"`` or ``\`` (nearly every value) is returned as it is, without ``repr``.
    Results are cached: methods, protocols, agents and addresses recur.

    :param value: bytes, or text that is ASCII.
    :raises UnicodeEncodeError: for text that is not ASCII, as twisted.web.
    """
    if not isinstance(value, bytes):
        value = value.encode("ascii")
    if _SAFE.fullmatch(value):
        return value.decode("ascii")
    text = repr(value)[1:]
    if text.startswith("'"):
        return text[1:-1].replace('"', '\\"').replace("\\'", "'")
    return text[1:-1]


def combinedLine(timestamp: str, request: Any) -> str:
    """Return the combined log line for ``request`` (without the newline).

    The same text as ``twisted.web.http.combinedLogFormatter(timestamp, request)``.

    :param timestamp: the time, as ``datetimeToLogString`` formats it.
    :param request: a finished ``twisted.web`` request.
    """
    address = request.getClientAddress()
    ip = escape(address.host) if isinstance(address, _IP) else "-"
    getHeader = request.getHeader
    referrer = escape(getHeader(b"referer") or b"-")
    agent = escape(getHeader(b"user-agent") or b"-")
    return (
        f'"{ip}" - - {timestamp} "{escape(request.method)} {escape(request.uri)} '
        f'{escape(request.clientproto)}" {request.code:d} '
        f'{request.sentLength or "-"} "{referrer}" "{agent}"'
    )


def refusedLine(
    timestamp: str,
    variables: Mapping[str, bytes] | None,
    client: object,
    status: int,
    length: int,
) -> str:
    """Return the log line of a request the channel answered itself.

    :param timestamp: the time, as ``datetimeToLogString`` formats it.
    :param variables: the request's SCGI variables, or ``None`` if its header block
        was not read (the client, the request line and the headers are then ``-``).
    :param client: the client's address (from ``REMOTE_ADDR``).
    :param status: the status answered, such as 413.
    :param length: the length of the body answered, in bytes.
    """
    if variables is None:
        return f'"-" - - {timestamp} "-" {status:d} {length or "-"} "-" "-"'
    ip = escape(client.host) if isinstance(client, _IP) else "-"
    method = escape(variables.get("REQUEST_METHOD", b"-"))
    protocol = escape(variables.get("SERVER_PROTOCOL", b"-"))
    referrer = escape(variables.get("HTTP_REFERER") or b"-")
    agent = escape(variables.get("HTTP_USER_AGENT") or b"-")
    return (
        f'"{ip}" - - {timestamp} "{method} {escape(request_uri(variables))} '
        f'{protocol}" {status:d} {length or "-"} "{referrer}" "{agent}"'
    )


class Sink(Protocol):
    """Where an :class:`AccessLog` writes its batches."""

    def write(self, text: str) -> None:
        """Write a batch: whole lines, each ending with a newline."""

    def reopen(self) -> None:
        """Open the destination again (after log rotation), if that means anything."""

    def close(self) -> None:
        """Release the destination; nothing is written after this."""


def _writeAll(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` (a write may be partial, or interrupted)."""
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except InterruptedError:
            continue
        view = view[written:]


class FileSink:
    """Append to a file, one ``write`` per batch (``O_APPEND``).

    Writes to a local file opened with ``O_APPEND`` are not interleaved with other
    processes' writes to the same file, so each batch, made of whole lines, lands
    whole even when several workers append to the file.

    :ivar path: the file's path.
    """

    def __init__(self, path: str) -> None:
        """Open ``path`` for appending, creating it if needed.

        :raises OSError: if it cannot be opened.
        """
        self.path = path
        self._fd: int | None = self._open()

    def _open(self) -> int:
        """Open the path for appending; return the descriptor."""
        return os.open(
            self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666
        )

    def write(self, text: str) -> None:
        """Append the batch in one write."""
        if self._fd is not None:
            _writeAll(self._fd, text.encode("utf-8", "replace"))

    def reopen(self) -> None:
        """Open the path again: a renamed (rotated) file is left, a new one begun.

        If the path cannot be opened, the old file stays in use (and the error is
        logged).
        """
        try:
            fd = self._open()
        except OSError as error:
            _log.error(
                "Could not reopen the access log {path}: {error}; still writing to "
                "the old file",
                path=self.path,
                error=error,
            )
            return
        old, self._fd = self._fd, fd
        if old is not None:
            os.close(old)

    def close(self) -> None:
        """Close the file."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


class StreamSink:
    """Write to a descriptor shared with other processes, such as standard output.

    A batch is written in pieces of whole lines of at most ``PIPE_BUF`` bytes (a line
    longer than that alone), which a pipe writes atomically: the lines of several
    workers writing to the same pipe never mix.
    """

    def __init__(self, fd: int) -> None:
        """Write to ``fd``, which stays open after :meth:`close`."""
        self._fd: int | None = fd

    def write(self, text: str) -> None:
        """Write the batch, a few whole lines at a time."""
        fd = self._fd
        if fd is None:
            return
        data = text.encode("utf-8", "replace")
        start, size = 0, len(data)
        while start < size:
            end = start + PIPE_BUF
            if end < size:
                cut = data.rfind(b"\n", start, end)
                end = data.find(b"\n", end) + 1 if cut < 0 else cut + 1
                if end <= 0:
                    end = size
            else:
                end = size
            _writeAll(fd, data[start:end])
            start = end

    def reopen(self) -> None:
        """Nothing to reopen: the descriptor is inherited."""

    def close(self) -> None:
        """Stop writing (the descriptor itself is not ours to close)."""
        self._fd = None


class LoggerSink:
    """Hand each batch to the ``twisted.logger`` log as one event.

    Under ``twistd`` that is the ``twistd`` log: the event's first line says how
    many requests follow, and each access-log line follows on a line of its own
    (indented with a tab by the ``twistd`` text log).  The event's ``lines`` field
    holds the lines as a list, for other observers.
    """

    def write(self, text: str) -> None:
        """Log the batch as one event."""
        lines = text.splitlines()
        _accessLog.info(
            "Access log, {count} request(s):\n{text}",
            count=len(lines),
            text=text.rstrip("\n"),
            lines=lines,
        )

    def reopen(self) -> None:
        """Nothing to reopen: ``twistd`` rotates its own log."""

    def close(self) -> None:
        """Nothing to close."""


class AccessLog:
    """Combined log lines, buffered and written in batches to a :class:`Sink`.

    :param sink: where the batches go.
    :param clock: the clock of the timer and of the lines' timestamps (the site's
        reactor).
    :param interval: seconds a line may wait before its batch is written.
    :param limit: characters buffered before the batch is written at once.

    :ivar sink: the sink (``None`` once closed).
    """

    def __init__(
        self,
        sink: Sink,
        clock: IReactorTime,
        *,
        interval: float = FLUSH_INTERVAL,
        limit: int = BUFFER_LIMIT,
    ) -> None:
        """Create the log; see the class docstring for the parameters."""
        self.sink: Sink | None = sink
        self._clock = clock
        self._interval = interval
        self._limit = limit
        self._lines: list[str] = []
        self._size = 0
        self._timer: IDelayedCall | None = None
        self._second = -1
        self._timestamp = ""

    def timestamp(self) -> str:
        """Return the time for a line now, formatted once per second."""
        now = self._clock.seconds()
        second = int(now)
        if second != self._second:
            self._second = second
            self._timestamp = datetimeToLogString(now)  # type: ignore[no-untyped-call]
        return self._timestamp

    def request(self, request: Any) -> None:
        """Log a finished request (what ``Site.log`` is given)."""
        if self.sink is not None:
            self.append(combinedLine(self.timestamp(), request))

    def refused(self, channel: Any, status: int, length: int) -> None:
        """Log a request the channel refused and answered itself.

        :param channel: the channel; its ``variables`` (``None`` before the header
            block was read) and ``getPeer()`` describe the request.
        :param status: the status answered.
        :param length: the length of the body answered, in bytes.
        """
        if self.sink is None:
            return
        variables = getattr(channel, "variables", None)
        client = channel.getPeer() if variables is not None else None
        self.append(refusedLine(self.timestamp(), variables, client, status, length))

    def append(self, line: str) -> None:
        """Buffer one line (without its newline); write the batch if it is large."""
        self._lines.append(line)
        self._size += len(line) + 1
        if self._size >= self._limit:
            self.flush()
        elif self._timer is None:
            self._timer = self._clock.callLater(self._interval, self._timeUp)

    def _timeUp(self) -> None:
        """The timer fired: write the batch."""
        self._timer = None
        self.flush()

    def flush(self) -> None:
        """Write every buffered line now, in one batch."""
        timer, self._timer = self._timer, None
        if timer is not None and timer.active():
            timer.cancel()
        if not self._lines:
            return
        lines, self._lines, self._size = self._lines, [], 0
        lines.append("")
        sink = self.sink
        if sink is None:
            return
        try:
            sink.write("\n".join(lines))
        except OSError as error:
            # A full disk must not stop the server: the batch is lost, and said so.
            _log.error(
                "Could not write {count} access log line(s): {error}",
                count=len(lines) - 1,
                error=os.strerror(error.errno) if error.errno else error,
            )

    def reopen(self) -> None:
        """Write the batch to the old destination, then open the destination again."""
        self.flush()
        if self.sink is not None:
            self.sink.reopen()

    def close(self) -> None:
        """Write the batch and close the sink; later lines are dropped."""
        self.flush()
        sink, self.sink = self.sink, None
        if sink is not None:
            sink.close()
