"""The sans-I/O CGI-response parser of the SCGI client.

:class:`ResponseParser` reads the CGI response an SCGI server sends back, in the style
of the server's own parser: :meth:`~ResponseParser.receive_data` only stores bytes
(``b""`` means EOF) and :meth:`~ResponseParser.next_event` parses, one event per call,
raising :class:`~scgi_twisted._errors.MalformedResponseError` for a bad response; errors
are sticky.  The head is scanned line by line as it arrives and refused as soon as it
is over its size limit.  SCGI ends a response by closing the connection, so
:class:`ResponseEnded` comes only at EOF; ``Content-Length``, when present, must match
the body exactly (see :class:`ResponseParser`).  The request side is
:mod:`scgi_twisted._clientsansio`, which re-exports these names.

This module imports nothing from Twisted.
"""

from __future__ import annotations

import enum
import re
from collections import deque
from dataclasses import dataclass

from ._errors import LocalProtocolError, MalformedResponseError
from ._sansio import TOKEN as _TOKEN

__all__ = [
    "DEFAULT_MAX_HEAD_SIZE",
    "DEFAULT_MAX_RESPONSE_HEADERS",
    "ResponseBody",
    "ResponseEnded",
    "ResponseEvent",
    "ResponseHead",
    "ResponseParser",
    "ResponseState",
]

DEFAULT_MAX_HEAD_SIZE = 64 * 1024
"""The default limit on a response head (everything up to the blank line), in bytes."""

DEFAULT_MAX_RESPONSE_HEADERS = 500
"""The default limit on the number of header lines in a response head."""

_MAX_CONTENT_LENGTH_DIGITS = 18
"""Significant digits accepted in a ``Content-Length`` (just under 10**18 bytes)."""

_STATUS = re.compile(rb"([1-9][0-9]{2})(?:[ \t]+(.*))?\Z", re.DOTALL)
_CR = ord("\r")


def _to_bytes(value: str | bytes) -> bytes:
    """Encode text as UTF-8."""
    return value if isinstance(value, bytes) else value.encode("utf-8")


class ResponseState(enum.Enum):
    """Where the response parser is in the response."""

    HEAD = "head"
    """Reading the head: header lines up to the blank line."""

    BODY = "body"
    """Handing on body bytes until the connection ends."""

    DONE = "done"
    """The connection ended after a complete response."""

    ERROR = "error"
    """The response was malformed; every later call raises the same error."""


@dataclass(frozen=True, slots=True)
class ResponseHead:
    """The response head is complete and valid.

    :ivar status: the status code, from the ``Status`` header (200 without one, or 302
        when there is a ``Location`` but no ``Status``, as in CGI).
    :ivar reason: the reason phrase as sent (possibly empty); ``OK`` or ``Found``
        when there was no ``Status`` header.
    :ivar headers: every other header, ``(name, value)`` as sent, in order.
    :ivar content_length: the ``Content-Length``, or ``None`` without one.
    """

    status: int
    reason: bytes
    headers: tuple[tuple[bytes, bytes], ...]
    content_length: int | None


@dataclass(frozen=True, slots=True)
class ResponseBody:
    """A piece of the response body.

    :ivar data: the bytes, never empty, never past ``Content-Length``.
    """

    data: bytes


@dataclass(frozen=True, slots=True)
class ResponseEnded:
    """The connection ended after a complete response."""


ResponseEvent = ResponseHead | ResponseBody | ResponseEnded


class ResponseParser:
    """An incremental parser for the CGI response to one SCGI request.

    Accepted: a ``Status: <code> <reason>`` header anywhere in the head (or none),
    CRLF or bare-LF line endings (even mixed), and empty header values.  Refused, each
    with its own message: an NPH status line (``HTTP/1.1 200 OK``, which Apache
    refuses), an empty head, folded or colon-less lines, names that are not tokens, CR
    or NUL inside a value, a bad or repeated ``Status``, a bad or conflicting
    ``Content-Length``, any ``Transfer-Encoding`` (a CGI body is never chunk-framed),
    and a head over ``max_head_size`` bytes or ``max_headers`` lines.

    The body runs until EOF, the end SCGI gives every response.  With a
    ``Content-Length``, the body must match it exactly: EOF before it is complete is an
    error, and so is any byte beyond it, which is never handed on.  (nginx 1.19.1+
    silently truncates such a body; a client for debugging backends should say so
    instead.)  A response to ``HEAD``, and any 1xx, 204 or 304 response, must have no
    body at all; its ``Content-Length`` is not checked.

    :param method: the request's method; ``HEAD`` expects no body.
    :param max_head_size: the largest head accepted, in bytes, blank line included.
    :param max_headers: the largest number of header lines accepted.

    :ivar bytes_received: how many bytes were given to :meth:`receive_data`.
    :ivar body_received: how many body bytes were handed on.
    """

    ERR_EMPTY = "the server closed the connection without sending a response"
    ERR_EOF_HEAD = "the connection closed before the end of the response head"
    ERR_HEAD_TOO_LARGE = "the response head is longer than {limit} bytes"
    ERR_TOO_MANY_HEADERS = "the response head holds more than {limit} header lines"
    ERR_NPH = (
        "the response starts with an HTTP status line; a CGI response starts with "
        "headers, such as 'Status: 200 OK'"
    )
    ERR_NO_HEADERS = "the response head holds no header lines"
    ERR_FOLDED = "a response header line starts with whitespace (obsolete folding)"
    ERR_NO_COLON = "a response header line has no ':': {line!r}"
    ERR_BAD_NAME = "a response header name is not an HTTP token: {name!r}"
    ERR_BAD_VALUE = "the value of the response header {name!r} holds CR or NUL"
    ERR_BAD_STATUS = "the Status header is not a three-digit code and reason: {value!r}"
    ERR_DUPLICATE_STATUS = "the response holds more than one Status header"
    ERR_BAD_CONTENT_LENGTH = "the Content-Length is not a valid length: {value!r}"
    ERR_CONFLICTING_CONTENT_LENGTH = "the response's Content-Length headers disagree"
    ERR_TRANSFER_ENCODING = (
        "the response has a Transfer-Encoding header; a CGI response body is never "
        "chunk-framed"
    )
    ERR_BODY_TOO_LONG = (
        "the response body is longer than its Content-Length of {length} bytes"
    )
    ERR_BODY_TRUNCATED = (
        "the connection closed with {missing} of the {length} body bytes "
        "(Content-Length) missing"
    )
    ERR_UNEXPECTED_BODY = "a response to {what} must have no body, but body bytes came"
    ERR_DATA_AFTER_EOF = "receive_data was called after EOF"

    def __init__(
        self,
        *,
        method: str | bytes = b"GET",
        max_head_size: int = DEFAULT_MAX_HEAD_SIZE,
        max_headers: int = DEFAULT_MAX_RESPONSE_HEADERS,
    ) -> None:
        """Create a parser waiting for the first byte of a response."""
        if max_head_size < 1 or max_headers < 1:
            raise ValueError("limits must be positive")
        self.method = _to_bytes(method).upper()
        self.max_head_size = max_head_size
        self.max_headers = max_headers
        self._state = ResponseState.HEAD
        self._buffer = bytearray()
        self._body: deque[bytes] = deque()
        self._line_start = 0
        self._searched = 0
        self._lines: list[tuple[bytes, bytes]] = []
        self._status: tuple[int, bytes] | None = None
        self._remaining: int | None = None
        self._content_length: int | None = None
        self._no_body: str | None = None
        self._eof = False
        self._error: MalformedResponseError | None = None
        self.bytes_received = 0
        self.body_received = 0

    @property
    def state(self) -> ResponseState:
        """The parser's current state."""
        return self._state

    @property
    def eof(self) -> bool:
        """Whether the end of the input was signalled."""
        return self._eof

    @property
    def body_remaining(self) -> int | None:
        """How many body bytes ``Content-Length`` still expects.

        ``None`` before the head is parsed and when the response has no
        ``Content-Length``; ``0`` once a sized body is complete (or when no body is
        allowed).
        """
        if self._state is ResponseState.HEAD:
            return None
        if self._no_body is not None:
            return 0
        return self._remaining

    def receive_data(self, data: bytes) -> None:
        """Give the parser more bytes; ``b""`` means the connection ended.

        :param data: the bytes read, or ``b""`` for EOF.
        :raises LocalProtocolError: if called again after EOF.
        """
        if self._eof:
            raise LocalProtocolError(self.ERR_DATA_AFTER_EOF)
        if not data:
            self._eof = True
            return
        self.bytes_received += len(data)
        if self._state is ResponseState.BODY:
            self._body.append(data)
        elif self._state is ResponseState.HEAD:
            self._buffer += data

    def next_event(self) -> ResponseEvent | None:
        """Parse what has arrived and return the next event, or ``None`` for none yet.

        :returns: the next event, or ``None`` when more bytes (or EOF) are needed, or
            when the response is complete and every event was given.
        :raises MalformedResponseError: if the response is malformed; the same error
            is raised on every later call.
        """
        if self._error is not None:
            raise self._error
        try:
            if self._state is ResponseState.HEAD:
                return self._read_head()
            if self._state is ResponseState.BODY:
                return self._next_body_event()
            return None
        except MalformedResponseError as error:
            self._state = ResponseState.ERROR
            self._error = error
            self._buffer.clear()
            self._body.clear()
            raise

    def _fail(self, message: str) -> MalformedResponseError:
        """Build an error carrying the byte count."""
        return MalformedResponseError(message, bytes_received=self.bytes_received)

    # The head.

    def _read_head(self) -> ResponseHead | None:
        """Scan complete lines; parse the head once its blank line has arrived."""
        buffer = self._buffer
        while True:
            newline = buffer.find(b"\n", max(self._line_start, self._searched))
            if newline < 0:
                self._searched = len(buffer)
                if len(buffer) > self.max_head_size:
                    raise self._fail(
                        self.ERR_HEAD_TOO_LARGE.format(limit=self.max_head_size)
                    )
                if self._eof:
                    if not self.bytes_received:
                        raise self._fail(self.ERR_EMPTY)
                    raise self._fail(self.ERR_EOF_HEAD)
                return None
            if newline + 1 > self.max_head_size:
                raise self._fail(
                    self.ERR_HEAD_TOO_LARGE.format(limit=self.max_head_size)
                )
            start = self._line_start
            end = newline
            if end > start and buffer[end - 1] == _CR:
                end -= 1
            self._line_start = newline + 1
            if end == start:
                return self._end_head(newline + 1)
            self._add_line(bytes(buffer[start:end]))

    def _add_line(self, line: bytes) -> None:
        """Check one header line and keep it."""
        if not self._lines and self._status is None and line.startswith(b"HTTP/"):
            raise self._fail(self.ERR_NPH)
        if line[:1] in (b" ", b"\t"):
            raise self._fail(self.ERR_FOLDED)
        name, colon, value = line.partition(b":")
        if not colon:
            raise self._fail(self.ERR_NO_COLON.format(line=line[:80]))
        if not _TOKEN.match(name):
            raise self._fail(self.ERR_BAD_NAME.format(name=name[:80]))
        if b"\r" in value or b"\0" in value:
            raise self._fail(self.ERR_BAD_VALUE.format(name=name))
        value = value.strip(b" \t")
        count = len(self._lines) + (self._status is not None)
        if count >= self.max_headers:
            raise self._fail(self.ERR_TOO_MANY_HEADERS.format(limit=self.max_headers))
        if name.lower() == b"status":
            if self._status is not None:
                raise self._fail(self.ERR_DUPLICATE_STATUS)
            match = _STATUS.match(value)
            if match is None:
                raise self._fail(self.ERR_BAD_STATUS.format(value=value[:80]))
            self._status = (int(match.group(1)), match.group(2) or b"")
            return
        self._lines.append((name, value))

    def _end_head(self, end: int) -> ResponseHead:
        """Finish the head at its blank line and build its event."""
        if not self._lines and self._status is None:
            raise self._fail(self.ERR_NO_HEADERS)
        headers = tuple(self._lines)
        lengths = set()
        for name, value in headers:
            lower = name.lower()
            if lower == b"transfer-encoding":
                raise self._fail(self.ERR_TRANSFER_ENCODING)
            if lower == b"content-length":
                lengths.add(self._parse_length(value))
        if len(lengths) > 1:
            raise self._fail(self.ERR_CONFLICTING_CONTENT_LENGTH)
        content_length = lengths.pop() if lengths else None
        if self._status is not None:
            status, reason = self._status
        elif any(name.lower() == b"location" for name, _ in headers):
            status, reason = 302, b"Found"
        else:
            status, reason = 200, b"OK"
        if self.method == b"HEAD":
            self._no_body = "HEAD"
        elif status < 200 or status in (204, 304):
            self._no_body = f"a {status} status"
        rest = bytes(self._buffer[end:])
        self._buffer = bytearray()
        self._lines = []
        if rest:
            self._body.append(rest)
        self._remaining = content_length
        self._content_length = content_length
        self._state = ResponseState.BODY
        return ResponseHead(status, reason, headers, content_length)

    def _parse_length(self, value: bytes) -> int:
        """Turn a ``Content-Length`` value into a number."""
        significant = value.lstrip(b"0")
        if (
            not value
            or not value.isdigit()
            or len(significant) > _MAX_CONTENT_LENGTH_DIGITS
        ):
            raise self._fail(self.ERR_BAD_CONTENT_LENGTH.format(value=value[:80]))
        return int(significant or b"0")

    # The body.

    def _next_body_event(self) -> ResponseBody | ResponseEnded | None:
        """Hand on the next piece of body, or end the response at EOF."""
        body = self._body
        if body:
            data = body.popleft()
            if self._no_body is not None:
                raise self._fail(self.ERR_UNEXPECTED_BODY.format(what=self._no_body))
            remaining = self._remaining
            if remaining is not None:
                if remaining == 0:
                    raise self._fail(
                        self.ERR_BODY_TOO_LONG.format(length=self._content_length)
                    )
                if len(data) > remaining:
                    body.appendleft(data[remaining:])
                    data = data[:remaining]
                self._remaining = remaining - len(data)
            self.body_received += len(data)
            return ResponseBody(data)
        if not self._eof:
            return None
        if self._no_body is None and self._remaining:
            raise self._fail(
                self.ERR_BODY_TRUNCATED.format(
                    missing=self._remaining, length=self._content_length
                )
            )
        self._state = ResponseState.DONE
        return ResponseEnded()
