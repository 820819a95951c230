"""A sans-I/O SCGI request parser and CGI response-head encoder.

Strategy: :meth:`SCGIParser.receive_data` only stores bytes (``b""`` means EOF) and
:meth:`SCGIParser.next_event` does all the parsing, one event per call, returning
``None`` when it needs more bytes. Protocol errors are raised from ``next_event`` and
are sticky: once the parser has failed, every later call raises the same error.

The request is ``netstring(headers) body``. The length prefix is checked on bytes as it
arrives (digits only, no leading zero, no more digits than the header limit allows), so
a hostile prefix is refused before anything is buffered. The header block is split once,
when it is complete, and checked against the specification: NUL-terminated, an even
number of strings, non-empty names, ``CONTENT_LENGTH`` first and made of ASCII digits,
``SCGI`` equal to ``1``. What depends on the names alone (their text, an empty or
repeated name, where ``SCGI`` is) is worked out once per run of names and remembered,
since a frontend sends the same names request after request. Body bytes are handed
on as they come and never past ``CONTENT_LENGTH``; bytes after the body are counted
and dropped.

This module imports nothing from Twisted.
"""

from __future__ import annotations

import enum
import re
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from http import HTTPStatus
from typing import Any

from ._errors import (
    BodyTooLargeError,
    HeaderTooLargeError,
    HTTPRequestError,
    LocalProtocolError,
    PrematureEOFError,
    RemoteProtocolError,
)
from ._pairs import Pairs

__all__ = [
    "DEFAULT_MAX_HEADER_SIZE",
    "DEFAULT_MAX_VARIABLES",
    "MAX_CONTENT_LENGTH",
    "BodyReceived",
    "Event",
    "HeadersReceived",
    "RequestEnded",
    "SCGIParser",
    "State",
    "encode_http_error",
    "encode_response_head",
]

DEFAULT_MAX_HEADER_SIZE = 64 * 1024
"""The default limit on the header block (the netstring's length), in bytes."""

DEFAULT_MAX_VARIABLES = 500
"""The default limit on the number of name/value pairs in the header block."""

MAX_CONTENT_LENGTH = 2**63 - 1
"""The largest ``CONTENT_LENGTH`` any real body can have; larger values are refused."""

_HTTP_METHODS = tuple(
    method + b" "
    for method in (
        b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"CONNECT", b"OPTIONS",
        b"TRACE", b"PATCH", b"PRI", b"PROPFIND", b"PROPPATCH", b"MKCOL", b"COPY",
        b"MOVE", b"LOCK", b"UNLOCK",
    )
)  # fmt: skip
"""The request lines that mark an HTTP request: a method token, then a space."""

_LONGEST_METHOD = max(len(method) for method in _HTTP_METHODS)

_DIGITS = frozenset(b"0123456789")
_COLON = ord(":")
_COMMA = ord(",")
_ZERO = ord("0")
_LENGTH_WINDOW = 24
"""How far the fast path looks for the length prefix's ``:``: past the digits of any
header limit a parser has in practice (a longer prefix takes the careful path)."""


class State(enum.Enum):
    """Where the parser is in the request."""

    LENGTH = "length"
    """Reading the netstring's length prefix, up to its ``:``."""

    HEADERS = "headers"
    """Reading the header block and the ``,`` that ends it."""

    BODY = "body"
    """Handing on ``CONTENT_LENGTH`` bytes of body."""

    DONE = "done"
    """The request is complete; later bytes are counted and dropped."""

    ERROR = "error"
    """The peer broke the protocol; every later call raises the same error."""


@dataclass(frozen=True, slots=True)
class HeadersReceived:
    """The header block is complete and valid.

    :ivar environ: the variables by name.  Names are decoded as Latin-1; values are the
        bytes as sent.  Repeated ``HTTP_*`` names are merged (``, ``, or ``; `` for
        ``HTTP_COOKIE``; the last ``HTTP_HOST`` replaces the others) unless the
        parser is strict.
    :ivar raw: every name/value pair exactly as it arrived, in order, duplicates kept:
        a read-only sequence of ``(name, value)`` tuples, equal to the tuple of them.
    :ivar content_length: the declared body length.
    """

    environ: dict[str, bytes]
    raw: Sequence[tuple[bytes, bytes]]
    content_length: int


@dataclass(frozen=True, slots=True)
class BodyReceived:
    """A piece of the request body.

    :ivar data: the bytes, never empty, never past ``CONTENT_LENGTH``.
    """

    data: bytes


@dataclass(frozen=True, slots=True)
class RequestEnded:
    """The whole body has arrived: the request is complete."""


Event = HeadersReceived | BodyReceived | RequestEnded

# The parser builds its HeadersReceived through the slots themselves: a frozen
# dataclass's __init__ assigns each field through object.__setattr__, the slower way
# to the same instance.
_new_object = object.__new__
_slots: dict[str, Any] = dict(vars(HeadersReceived))
_set_environ = _slots["environ"].__set__
_set_raw = _slots["raw"].__set__
_set_content_length = _slots["content_length"].__set__
del _slots


def _headers_received(
    environ: dict[str, bytes], raw: Sequence[tuple[bytes, bytes]], length: int
) -> HeadersReceived:
    """Return ``HeadersReceived(environ, raw, length)``, built field by field."""
    event = _new_object(HeadersReceived)
    _set_environ(event, environ)
    _set_raw(event, raw)
    _set_content_length(event, length)
    return event


_REQUEST_ENDED = RequestEnded()
"""The one ``RequestEnded`` event: it has no fields, so every request can share it."""

# The states as module constants: the hot path compares them on every event.
_LENGTH = State.LENGTH
_HEADERS = State.HEADERS
_BODY = State.BODY
_DONE = State.DONE
_ERROR = State.ERROR


class SCGIParser:
    """An incremental parser for one SCGI request.

    :param max_header_size: the largest header block accepted, in bytes; a longer
        declared length is refused (431) as soon as its digits are read.
    :param max_variables: the largest number of name/value pairs accepted (431).
    :param max_body_size: the largest ``CONTENT_LENGTH`` accepted (413), or ``None``
        for no limit other than :data:`MAX_CONTENT_LENGTH`.
    :param merge_duplicates: if true (the default), merge repeated ``HTTP_*`` names as
        HTTP merges repeated header lines; nginx 1.22 sends them.  A repeated
        ``HTTP_HOST`` (a frontend's configuration overriding its own) takes the last
        value.  If false, any repeated name is an error, as the specification says.
        A repeated name that is not ``HTTP_*`` is always an error.

    :ivar bytes_received: how many bytes were given to :meth:`receive_data`.
    :ivar trailing_bytes: how many bytes arrived after the body and were dropped.
    :ivar body_offset: the offset in the stream at which the body starts, known once
        the length prefix is read (``None`` before); with :attr:`bytes_received` it
        tells how much body has arrived, even after an error.
    """

    ERR_EMPTY_LENGTH = "the netstring length is empty"
    ERR_LENGTH_NOT_DIGITS = "the netstring length is not ASCII digits"
    ERR_HTTP_REQUEST = (
        "this is an HTTP request, but this port speaks SCGI: put an HTTP server such "
        "as nginx in front of it (scgi_pass), or send SCGI requests with scgi-client"
    )
    ERR_LENGTH_LEADING_ZERO = "the netstring length has a leading zero"
    ERR_LENGTH_TOO_LARGE = "the header block is longer than {limit} bytes"
    ERR_BAD_TERMINATOR = "the header block is not followed by ','"
    ERR_NOT_NUL_TERMINATED = "the header block does not end with NUL"
    ERR_ODD_STRINGS = "the header block holds an odd number of strings"
    ERR_TOO_MANY_VARIABLES = "the header block holds more than {limit} variables"
    ERR_EMPTY_NAME = "a variable has an empty name"
    ERR_NO_CONTENT_LENGTH = "CONTENT_LENGTH is missing"
    ERR_CONTENT_LENGTH_NOT_FIRST = "CONTENT_LENGTH is not the first variable"
    ERR_CONTENT_LENGTH_NOT_DIGITS = "CONTENT_LENGTH is not a non-empty run of digits"
    ERR_CONTENT_LENGTH_TOO_LARGE = "CONTENT_LENGTH is larger than {limit} bytes"
    ERR_DUPLICATE = "the variable {name} is repeated"
    ERR_NO_SCGI = "the SCGI variable is missing"
    ERR_BAD_SCGI = "the SCGI variable is not '1'"
    ERR_EOF_LENGTH = "the connection closed in the netstring length"
    ERR_EOF_HEADERS = "the connection closed in the header block"
    ERR_EOF_BODY = (
        "the connection closed before the body was complete ({missing} missing)"
    )
    ERR_DATA_AFTER_EOF = "receive_data was called after EOF"

    def __init__(
        self,
        *,
        max_header_size: int = DEFAULT_MAX_HEADER_SIZE,
        max_variables: int = DEFAULT_MAX_VARIABLES,
        max_body_size: int | None = None,
        merge_duplicates: bool = True,
    ) -> None:
        """Create a parser waiting for the first byte of a request."""
        if max_header_size < 1 or max_variables < 1:
            raise ValueError("limits must be positive")
        if max_body_size is not None and max_body_size < 0:
            raise ValueError("max_body_size must not be negative")
        self.max_header_size = max_header_size
        self.max_variables = max_variables
        self.max_body_size = max_body_size
        self.merge_duplicates = merge_duplicates
        self._state = State.LENGTH
        self._buffer = bytearray()
        self._body: deque[bytes] = deque()
        self._header_length = 0
        self._body_remaining = 0
        self._eof = False
        self._error: RemoteProtocolError | None = None
        self.bytes_received = 0
        self.trailing_bytes = 0
        self.body_offset: int | None = None

    @property
    def state(self) -> State:
        """The parser's current state."""
        return self._state

    @property
    def body_remaining(self) -> int:
        """How many body bytes are still expected (0 before the headers are parsed)."""
        return self._body_remaining

    @property
    def eof(self) -> bool:
        """Whether the end of the input was signalled."""
        return self._eof

    def receive_data(self, data: bytes) -> None:
        """Give the parser more bytes; ``b""`` means the connection's input ended.

        :param data: the bytes read, or ``b""`` for EOF.
        :raises LocalProtocolError: if called again after EOF.
        """
        if self._eof:
            raise LocalProtocolError(self.ERR_DATA_AFTER_EOF)
        if not data:
            self._eof = True
            return
        self.bytes_received += len(data)
        state = self._state
        if state is _BODY:
            self._body.append(data)
        elif state is _DONE:
            self.trailing_bytes += len(data)
        elif state is not _ERROR:
            self._buffer += data

    def next_event(self) -> Event | None:
        """Parse what has arrived and return the next event, or ``None`` for none yet.

        :returns: the next event, or ``None`` when more bytes are needed (or the request
            is complete and every event was given).
        :raises RemoteProtocolError: if the peer broke the protocol; the same error is
            raised on every later call.
        """
        if self._error is not None:
            raise self._error.with_traceback(None)
        try:
            state = self._state
            if state is _BODY:
                return self._next_body_event()
            if state is _LENGTH:
                if not self._read_length():
                    return None
            elif state is not _HEADERS:
                return None
            return self._read_headers()
        except RemoteProtocolError as error:
            self._state = _ERROR
            self._error = error
            self._buffer.clear()
            self._body.clear()
            raise

    # The transitions, one method per state.

    def _read_length(self) -> bool:
        """Read the length prefix; return whether it is complete.

        The bytes are judged in order, as if they arrived one at a time, so the
        verdict on a bad prefix never depends on how the reads split it.
        """
        buffer = self._buffer
        # The usual case in one go: the whole prefix is here and valid.  A length
        # within the limit, without a leading zero, has no more digits than the
        # limit, so the window searched only has to be wide enough for any limit.
        colon = buffer.find(b":", 0, _LENGTH_WINDOW)
        if colon > 0 and (colon == 1 or buffer[0] != _ZERO):
            digits = buffer[:colon]
            if digits.isdigit():
                length = int(digits)
                if length <= self.max_header_size:
                    return self._length_read(colon, length)
        # Anything else is judged byte by byte, in arrival order.
        limit = len(str(self.max_header_size))
        colon = -1
        for index in range(min(len(buffer), limit + 1)):
            byte = buffer[index]
            if byte == _COLON:
                colon = index
                break
            if byte not in _DIGITS:
                if index == 0 and not self._http_judged(buffer):
                    return False
                raise RemoteProtocolError(self.ERR_LENGTH_NOT_DIGITS)
            if index == 1 and buffer[0] == _ZERO:
                raise RemoteProtocolError(self.ERR_LENGTH_LEADING_ZERO)
            if index + 1 > limit or (
                index + 1 == limit and int(buffer[:limit]) > self.max_header_size
            ):
                raise self._too_large()
        if colon < 0:
            if self._eof:
                raise PrematureEOFError(
                    self.ERR_EOF_LENGTH, bytes_received=self.bytes_received
                )
            return False
        if colon == 0:
            raise RemoteProtocolError(self.ERR_EMPTY_LENGTH)
        return self._length_read(colon, int(buffer[:colon]))

    def _http_judged(self, buffer: bytearray) -> bool:
        """Judge whether a stream that starts with a non-digit is an HTTP request.

        A netstring starts with a digit; an HTTP request starts with a method and a
        space.  The verdict waits only while the bytes so far begin such a request
        line (at most the longest method), so it never depends on how reads split.

        :returns: ``False`` while undecided, ``True`` if it is not HTTP.
        :raises HTTPRequestError: if it is an HTTP request.
        """
        head = bytes(buffer[:_LONGEST_METHOD])
        if head.startswith(_HTTP_METHODS):
            raise HTTPRequestError(self.ERR_HTTP_REQUEST)
        return self._eof or not any(method.startswith(head) for method in _HTTP_METHODS)

    def _length_read(self, colon: int, length: int) -> bool:
        """Drop the length prefix (ending at ``colon``) and expect ``length`` bytes."""
        del self._buffer[: colon + 1]
        self.body_offset = colon + 1 + length + 1
        self._header_length = length
        self._state = _HEADERS
        return True

    def _too_large(self) -> HeaderTooLargeError:
        """Build the error for a declared header block over the limit."""
        return HeaderTooLargeError(
            self.ERR_LENGTH_TOO_LARGE.format(limit=self.max_header_size)
        )

    def _read_headers(self) -> HeadersReceived | None:
        """Read and check the header block once it and its terminator are complete."""
        buffer = self._buffer
        length = self._header_length
        if len(buffer) <= length:
            if self._eof:
                raise PrematureEOFError(
                    self.ERR_EOF_HEADERS, bytes_received=self.bytes_received
                )
            return None
        if buffer[length] != _COMMA:
            raise RemoteProtocolError(self.ERR_BAD_TERMINATOR)
        event = self._parse_block(bytes(buffer[:length]))
        rest = bytes(buffer[length + 1 :]) if len(buffer) > length + 1 else b""
        buffer.clear()
        self._body_remaining = event.content_length
        self._state = _BODY
        if rest:
            self._body.appendleft(rest)
        return event

    def _parse_block(self, block: bytes) -> HeadersReceived:
        """Check a complete header block and build its event."""
        if block[-1:] != b"\0":
            if not block:
                raise RemoteProtocolError(self.ERR_NO_CONTENT_LENGTH)
            raise RemoteProtocolError(self.ERR_NOT_NUL_TERMINATED)
        strings = block.split(b"\0")
        strings.pop()
        count = len(strings)
        if count % 2:
            raise RemoteProtocolError(self.ERR_ODD_STRINGS)
        if count // 2 > self.max_variables:
            raise HeaderTooLargeError(
                self.ERR_TOO_MANY_VARIABLES.format(limit=self.max_variables)
            )
        names = strings[0::2]
        values = strings[1::2]
        if names[0] != b"CONTENT_LENGTH":
            if b"CONTENT_LENGTH" in names:
                raise RemoteProtocolError(self.ERR_CONTENT_LENGTH_NOT_FIRST)
            raise RemoteProtocolError(self.ERR_NO_CONTENT_LENGTH)
        declared = values[0]
        if not declared or not declared.isdigit():
            raise RemoteProtocolError(self.ERR_CONTENT_LENGTH_NOT_DIGITS)
        # Everything that depends on the names alone (their text, the empty name,
        # the repeated ones, where SCGI is) is the block's layout: a frontend sends
        # the same names in the same order request after request.
        shape = b"\0".join(names)
        if len(shape) <= LAYOUT_CACHED_SIZE and len(names) <= LAYOUT_CACHED_NAMES:
            keys, scgi, merges, template = _cached_layout(shape, self.merge_duplicates)
        else:
            keys, scgi, merges, template = _layout(shape, self.merge_duplicates)
        # A copy of the layout's dict already holds the names, in order, sized for
        # them: filling in the values needs no resizing and no new key table.
        environ = template.copy()
        environ.update(zip(keys, values, strict=True))
        for key, indexes, separator in merges:
            if separator is None:  # a repeated HTTP_HOST: the last one was kept
                continue
            environ[key] = separator.join([values[index] for index in indexes])
        if values[scgi] != b"1":
            raise RemoteProtocolError(self.ERR_BAD_SCGI)
        limit = self.max_body_size
        if len(declared) < 19:  # below 10**18: int() is quick and cannot overflow
            content_length = int(declared)
            if limit is not None and content_length > limit:
                content_length = self._check_content_length(declared)  # raises
        else:
            content_length = self._check_content_length(declared)
        return _headers_received(environ, Pairs(strings), content_length)

    def _check_content_length(self, declared: bytes) -> int:
        """Turn checked digits into a length, refusing any over a limit."""
        limit = self.max_body_size
        if len(declared) < 19:  # the usual case: below 10**18, no overflow possible
            content_length = int(declared)
            if limit is None or content_length <= limit:
                return content_length
        significant = declared.lstrip(b"0")
        # Compare digit counts before int(): a huge run of digits is refused without
        # being converted (int() of more than 4300 digits raises ValueError).
        if len(significant) > len(str(MAX_CONTENT_LENGTH)) or (
            int(significant or b"0") > MAX_CONTENT_LENGTH
        ):
            raise BodyTooLargeError(
                self.ERR_CONTENT_LENGTH_TOO_LARGE.format(limit=MAX_CONTENT_LENGTH)
            )
        content_length = int(significant or b"0")
        if limit is not None and content_length > limit:
            raise BodyTooLargeError(
                self.ERR_CONTENT_LENGTH_TOO_LARGE.format(limit=limit),
                content_length=content_length,
            )
        return content_length

    def _next_body_event(self) -> BodyReceived | RequestEnded | None:
        """Hand on the next piece of body, or end the request."""
        remaining = self._body_remaining
        if remaining == 0:
            self._state = _DONE
            while self._body:
                self.trailing_bytes += len(self._body.popleft())
            return _REQUEST_ENDED
        body = self._body
        if not body:
            if self._eof:
                raise PrematureEOFError(
                    self.ERR_EOF_BODY.format(missing=remaining),
                    bytes_received=self.bytes_received,
                )
            return None
        data = body.popleft()
        if len(data) > remaining:
            self.trailing_bytes += len(data) - remaining
            data = data[:remaining]
        self._body_remaining = remaining - len(data)
        return BodyReceived(data)


LAYOUTS_CACHED = 128
"""How many layouts :func:`_cached_layout` remembers (least recently used first
out): one per frontend configuration and set of client headers."""

LAYOUT_CACHED_NAMES = 100
"""The most names a remembered layout has (a frontend sends a few dozen)."""

LAYOUT_CACHED_SIZE = 4096
"""The most bytes of names, joined by NUL, a remembered layout has.

A block with more names, or longer ones, is laid out anew each time, so the memory of
the layouts stays bounded (:data:`LAYOUTS_CACHED` of these at most)."""

_Merge = tuple[str, tuple[int, ...], bytes | None]
"""A repeated name, the indexes of its values in arrival order, and the separator
that joins them (``None``: the last value replaces the others)."""

_Layout = tuple[tuple[str, ...], int, tuple[_Merge, ...], dict[str, bytes]]
"""The names decoded, the index of ``SCGI``, the repeated names to merge, and a dict
of the distinct names in arrival order (with empty values), which is never changed:
each request's environment starts as a copy of it."""


def _layout(shape: bytes, merge: bool) -> _Layout:
    """Lay out a header block from its names, joined by NUL.

    The block's first name is ``CONTENT_LENGTH`` (already checked).

    :param shape: the names, in arrival order, joined by NUL.
    :param merge: whether repeated ``HTTP_*`` names may be merged.
    :raises RemoteProtocolError: for an empty name, a repeated name that may not be
        merged (the first such repetition in arrival order), or no ``SCGI``.
    """
    # One decode for all the names (NUL is in no name).
    keys = shape.decode("latin-1").split("\0")
    if "" in keys:
        raise RemoteProtocolError(SCGIParser.ERR_EMPTY_NAME)
    merges: tuple[_Merge, ...] = ()
    if len(set(keys)) != len(keys):
        merges = _merges(keys, merge)
    try:
        scgi = keys.index("SCGI")
    except ValueError:
        raise RemoteProtocolError(SCGIParser.ERR_NO_SCGI) from None
    return tuple(keys), scgi, merges, dict.fromkeys(keys, b"")


_cached_layout = lru_cache(maxsize=LAYOUTS_CACHED)(_layout)


def _merges(keys: list[str], merge: bool) -> tuple[_Merge, ...]:
    """Say how to merge the repeated names of a block.

    :raises RemoteProtocolError: for the first repetition, in arrival order, of a
        name that may not be merged.
    """
    seen: set[str] = set()
    repeated: dict[str, None] = {}
    for key in keys:
        if key not in seen:
            seen.add(key)
        elif key not in repeated:
            if not (merge and key.startswith("HTTP_")):
                raise RemoteProtocolError(SCGIParser.ERR_DUPLICATE.format(name=key))
            repeated[key] = None
    merges: list[_Merge] = []
    for key in repeated:
        indexes = tuple(index for index, name in enumerate(keys) if name == key)
        if key == "HTTP_HOST":
            # A client cannot send two Host headers (every frontend refuses that),
            # so a repeated HTTP_HOST comes from the frontend's own configuration,
            # such as nginx's "scgi_param HTTP_HOST $http_host;" after "include
            # scgi_params;": the later one is meant to replace the earlier.
            separator = None
        elif key == "HTTP_COOKIE":
            separator = b"; "
        else:
            separator = b", "
        merges.append((key, indexes, separator))
    return tuple(merges)


TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
"""An HTTP token (RFC 9110), such as a header name or a method; the whole string."""
_FORBIDDEN_IN_VALUE = re.compile(rb"[\r\n\0]")


def encode_response_head(
    status: int, reason: bytes, headers: Iterable[tuple[bytes, bytes]]
) -> bytes:
    """Encode the head of a CGI-form response.

    The result is ``Status: <code> <reason>`` and one line per header, each ended by
    CRLF, then a blank line.  A ``Status`` header among ``headers`` is dropped: the
    status line carries the status.  An empty reason becomes the standard phrase (an
    empty one broke nginx before 1.25.3).

    :param status: the three-digit status code.
    :param reason: the reason phrase.
    :param headers: ``(name, value)`` pairs, in order; a name may repeat.
    :returns: the encoded head, ready to write.
    :raises LocalProtocolError: for a status outside 100-999, a header name that is not
        an HTTP token, or CR, LF or NUL in the reason or a value.
    """
    if not 100 <= status <= 999:
        raise LocalProtocolError(f"status {status!r} is not a three-digit code")
    if not reason:
        try:
            reason = HTTPStatus(status).phrase.encode("ascii")
        except ValueError:
            reason = b"Unknown"
    if not isinstance(headers, (list, tuple)):  # a tuple of types: faster than a union
        headers = list(headers)  # read twice when a value is refused
    # One flat list of pieces, joined once: cheaper than a line formatted per
    # header.
    parts = [b"Status: %d %s\r\n" % (status, reason)]
    written = _written
    dropped = False
    for name, value in headers:
        if written(name):
            parts += (name, b": ", value, b"\r\n")
        else:
            dropped = True
    parts.append(b"\r\n")
    # The status code, the names (tokens) and the separators hold no CR, LF or
    # NUL: only the reason or a value can, and the values are every fourth piece.
    # (Looked for as ints: a bytes needle is first tried as one, and fails.)
    values = b"".join(parts[3::4])
    if (
        dropped
        or 13 in values
        or 10 in values
        or 0 in values
        or 13 in reason
        or 10 in reason
        or 0 in reason
    ):
        if _FORBIDDEN_IN_VALUE.search(reason):
            raise LocalProtocolError("the reason phrase holds CR, LF or NUL")
        _check_values(headers)
    return b"".join(parts)


def encode_http_error(status: int, message: str) -> bytes:
    """Return a complete HTTP/1.0 error response, for a peer that spoke HTTP to us.

    :param status: the status code, such as 400.
    :param message: the text of the body (one line); ``Connection: close`` is sent.
    :raises LocalProtocolError: for a status outside 100-999.
    """
    if not 100 <= status <= 999:
        raise LocalProtocolError(f"status {status!r} is not a three-digit code")
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Error"
    body = f"{status} {reason}: {message}\n".encode("utf-8", "replace")
    return (
        b"HTTP/1.0 %d %s\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: %d\r\n"
        b"Connection: close\r\n"
        b"\r\n" % (status, reason.encode("ascii"), len(body))
    ) + body


def _check_values(headers: Iterable[tuple[bytes, bytes]]) -> None:
    """Refuse the first value that holds CR, LF or NUL.

    :raises LocalProtocolError: naming the header.
    """
    for name, value in headers:
        if b"\r" in value or b"\n" in value or b"\0" in value:
            raise LocalProtocolError(f"the value of {name!r} holds CR, LF or NUL")


RESPONSE_NAMES_CACHED = 1024
"""How many response header names :func:`_written` remembers (least recently used
first out)."""


@lru_cache(maxsize=RESPONSE_NAMES_CACHED)
def _written(name: bytes) -> bool:
    """Check a response header name and say whether it is written (not ``Status``).

    :raises LocalProtocolError: if the name is not an HTTP token.
    """
    if not TOKEN.match(name):
        raise LocalProtocolError(f"the header name {name!r} is not a token")
    return name.lower() != b"status"
