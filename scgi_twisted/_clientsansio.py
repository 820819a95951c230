"""The sans-I/O core of the SCGI client: a request encoder and a CGI-response parser.

Strategy.  :func:`request_variables` builds the name/value pairs a frontend sends for
one HTTP request, in the order nginx sends them (``docs/deployment.md``, "What each
frontend sends"):
``CONTENT_LENGTH`` first, then ``REQUEST_METHOD``, ``REQUEST_URI``, ``QUERY_STRING``,
``CONTENT_TYPE``, ``SCGI``, ``SERVER_PROTOCOL``, ``REQUEST_SCHEME`` (and ``HTTPS`` when
secure), ``REMOTE_ADDR``, ``REMOTE_PORT``, ``SERVER_PORT``, ``SERVER_NAME``,
``HTTP_HOST``, ``SCRIPT_NAME`` and ``PATH_INFO``, then one ``HTTP_*`` pair per request
header.  :func:`encode_variables` checks pairs against the specification and frames
them as a netstring; :func:`encode_request` does both.  Everything is bytes on the
wire; ``str`` arguments are encoded as UTF-8 (values) or ASCII (names).

:class:`ResponseParser` reads the CGI response an SCGI server sends back, in the style
of the server's own parser: :meth:`~ResponseParser.receive_data` only stores bytes
(``b""`` means EOF) and :meth:`~ResponseParser.next_event` parses, one event per call,
raising :class:`~scgi_twisted._errors.MalformedResponseError` for a bad response; errors
are sticky.  The head is scanned line by line as it arrives and refused as soon as it
is over its size limit.  SCGI ends a response by closing the connection, so
:class:`ResponseEnded` comes only at EOF; ``Content-Length``, when present, must match
the body exactly (see :class:`ResponseParser`).

This module imports nothing from Twisted.
"""

from __future__ import annotations

import enum
import re
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import quote_from_bytes, unquote_to_bytes

from ._errors import LocalProtocolError, MalformedResponseError
from ._sansio import TOKEN as _TOKEN

__all__ = [
    "DEFAULT_MAX_HEAD_SIZE",
    "DEFAULT_MAX_RESPONSE_HEADERS",
    "DEFAULT_PROTOCOL",
    "DEFAULT_REMOTE_ADDR",
    "DEFAULT_REMOTE_PORT",
    "DEFAULT_SERVER_NAME",
    "HeaderPairs",
    "ResponseBody",
    "ResponseEnded",
    "ResponseEvent",
    "ResponseHead",
    "ResponseParser",
    "ResponseState",
    "Text",
    "VariableOverrides",
    "encode_request",
    "encode_variables",
    "request_variables",
]

Text = str | bytes
"""A name or value given as bytes, or as text to be encoded."""

HeaderPairs = Iterable[tuple[Text, Text]] | Mapping[str, Text] | Mapping[bytes, Text]
"""Request headers: ``(name, value)`` pairs (a name may repeat), or a mapping."""

VariableOverrides = (
    Iterable[tuple[Text, Text | None]]
    | Mapping[str, Text | None]
    | Mapping[bytes, Text | None]
)
"""SCGI variables to set (a value) or to leave out (``None``)."""

DEFAULT_SERVER_NAME = b"localhost"
"""``SERVER_NAME`` (and the default ``Host``) unless overridden."""

DEFAULT_PROTOCOL = b"HTTP/1.1"
"""``SERVER_PROTOCOL`` unless overridden."""

DEFAULT_REMOTE_ADDR = b"127.0.0.1"
"""``REMOTE_ADDR`` unless overridden: the HTTP client the frontend would be serving."""

DEFAULT_REMOTE_PORT = b"0"
"""``REMOTE_PORT`` unless overridden; 0 says that there is no real client port."""

DEFAULT_MAX_HEAD_SIZE = 64 * 1024
"""The default limit on a response head (everything up to the blank line), in bytes."""

DEFAULT_MAX_RESPONSE_HEADERS = 500
"""The default limit on the number of header lines in a response head."""

_MAX_CONTENT_LENGTH_DIGITS = 18
"""Significant digits accepted in a ``Content-Length`` (just under 10**18 bytes)."""

_STATUS = re.compile(rb"([1-9][0-9]{2})(?:[ \t]+(.*))?\Z", re.DOTALL)
_URI_SAFE = "".join(chr(byte) for byte in range(0x21, 0x7F))
_CR = ord("\r")

# Messages of the LocalProtocolError raised for arguments no request can carry.
ERR_BAD_METHOD = "the method {method!r} is not an HTTP token"
ERR_BAD_TARGET = "the path {path!r} does not start with '/'"
ERR_NUL_IN_PATH = "the path decodes to a NUL byte, which SCGI cannot carry"
ERR_NOT_UNDER_SCRIPT_NAME = "the path {path!r} is not under the script name {script!r}"
ERR_BAD_CONTENT_LENGTH_ARG = "content_length must be a non-negative integer"
ERR_BAD_HEADER_NAME = "the header name {name!r} is not an HTTP token"
ERR_BAD_HEADER_VALUE = "the value of the header {name!r} holds CR, LF or NUL"
ERR_HEADER_CONTENT_LENGTH = (
    "the Content-Length header ({value!r}) disagrees with the body's length ({length})"
)
ERR_DUPLICATE_CONTENT_TYPE = "the Content-Type header is given more than once"
ERR_BAD_VARIABLE_NAME = "the variable name {name!r} is empty or holds NUL"
ERR_BAD_VARIABLE_VALUE = "the value of the variable {name} holds NUL"
ERR_RESERVED_VARIABLE = (
    "{name} cannot be overridden: the encoder sets it to keep the request valid"
)
ERR_NOT_LATIN1 = "the name {name!r} is not ASCII"
ERR_FIRST_NOT_CONTENT_LENGTH = "the first variable must be CONTENT_LENGTH"
ERR_CONTENT_LENGTH_NOT_DIGITS = "CONTENT_LENGTH must be a non-empty run of digits"
ERR_SCGI_MISSING = "the variable SCGI must be present with the value '1'"
ERR_DUPLICATE_VARIABLE = "the variable {name} is given more than once"


# Encoding a request.


def _to_bytes(value: Text) -> bytes:
    """Encode a value: bytes as they are, text as UTF-8."""
    return value if isinstance(value, bytes) else value.encode("utf-8")


def _name_bytes(name: Text) -> bytes:
    """Encode a name: bytes as they are, text as ASCII."""
    if isinstance(name, bytes):
        return name
    try:
        return name.encode("ascii")
    except UnicodeEncodeError:
        raise LocalProtocolError(ERR_NOT_LATIN1.format(name=name)) from None


def _pairs(items: VariableOverrides) -> list[tuple[Text, Text | None]]:
    """Return ``(name, value)`` pairs from pairs or from a mapping."""
    if isinstance(items, Mapping):
        return list(items.items())
    return list(items)


def _normalise(path: bytes) -> bytes:
    """Merge ``//``, drop ``.`` and resolve ``..`` in a decoded path, as nginx does.

    A ``..`` above the root stays at the root; a trailing ``/`` is kept.
    """
    segments = path.split(b"/")[1:]
    out: list[bytes] = []
    last = len(segments) - 1
    for index, segment in enumerate(segments):
        kept = segment
        if segment == b"..":
            if out:
                out.pop()
            kept = b""
        elif segment == b".":
            kept = b""
        if kept or index == last:
            out.append(kept)
    return b"/" + b"/".join(out)


def _split_target(target: bytes) -> tuple[bytes, bytes, bytes]:
    """Return the ``REQUEST_URI``, the decoded path and the query of a target.

    A fragment is dropped, as HTTP clients do.  Bytes that may not appear raw in a
    request target (space, controls, non-ASCII) are percent-encoded; existing escapes
    are kept.
    """
    target = target.partition(b"#")[0]
    if not target.startswith(b"/"):
        raise LocalProtocolError(ERR_BAD_TARGET.format(path=target))
    uri = quote_from_bytes(target, safe=_URI_SAFE).encode("ascii")
    raw_path, _, query = uri.partition(b"?")
    decoded = unquote_to_bytes(raw_path)
    if b"\0" in decoded:
        raise LocalProtocolError(ERR_NUL_IN_PATH)
    return uri, _normalise(decoded), query


def _script_split(path: bytes, script_name: bytes) -> tuple[bytes, bytes]:
    """Split a normalised path into ``SCRIPT_NAME`` and ``PATH_INFO``."""
    script = script_name.rstrip(b"/")
    if not script:
        return b"", path
    if path == script or path.startswith(script + b"/"):
        return script, path[len(script) :]
    raise LocalProtocolError(
        ERR_NOT_UNDER_SCRIPT_NAME.format(path=path, script=script_name)
    )


def _check_header_value(name: bytes, value: bytes) -> bytes:
    """Strip a header value's surrounding whitespace and refuse CR, LF and NUL."""
    if b"\r" in value or b"\n" in value or b"\0" in value:
        raise LocalProtocolError(ERR_BAD_HEADER_VALUE.format(name=name))
    return value.strip(b" \t")


def request_variables(
    method: Text = b"GET",
    path_and_query: Text = b"/",
    headers: HeaderPairs = (),
    variables: VariableOverrides = (),
    content_length: int = 0,
    *,
    script_name: Text | None = b"",
    secure: bool = False,
) -> list[tuple[bytes, bytes]]:
    """Return the SCGI variables a frontend would send for one HTTP request.

    :param method: the request method, an HTTP token such as ``GET``.
    :param path_and_query: the request target, ``/path?query``.  A fragment is dropped;
        spaces, controls and non-ASCII bytes are percent-encoded in ``REQUEST_URI``.
    :param headers: the request headers.  Each becomes ``HTTP_<NAME>`` (upper case,
        ``-`` as ``_``), in order; a repeated header is merged at its first position
        with ``, `` (``; `` for ``Cookie``), as nginx 1.23+, Apache and lighttpd do.
        ``Content-Type`` becomes ``CONTENT_TYPE`` only; ``Content-Length`` is not sent
        (``CONTENT_LENGTH`` is) and must agree with ``content_length``.  Without a
        ``Host`` header, ``HTTP_HOST`` is ``localhost``, with the port when it is not
        the scheme's default.
    :param variables: SCGI variables to set after the others are built: a new name is
        appended, a known one is replaced in place, and ``None`` removes it.
        ``CONTENT_LENGTH`` and ``SCGI`` cannot be overridden.
    :param content_length: the number of body bytes that will follow.
    :param script_name: where the frontend mounts the application, such as ``/app``:
        ``SCRIPT_NAME`` is this prefix and ``PATH_INFO`` the rest of the
        percent-decoded, normalised path (``//`` merged, ``.`` and ``..`` resolved), as
        nginx sends them.
        ``""`` (the default) is the root mount; ``None`` sends neither variable, like
        nginx's stock ``scgi_params``.
    :param secure: whether the client used TLS: ``REQUEST_SCHEME=https``, ``HTTPS=on``
        and a default ``SERVER_PORT`` of 443 instead of 80.
    :returns: the ``(name, value)`` pairs, ``CONTENT_LENGTH`` first.
    :raises LocalProtocolError: for a method that is not a token, a path that does not
        start with ``/`` or is not under ``script_name``, a bad header or variable, or
        a ``Content-Length`` header that disagrees with ``content_length``.
    """
    if (
        isinstance(content_length, bool)
        or not isinstance(content_length, int)
        or content_length < 0
    ):
        raise LocalProtocolError(ERR_BAD_CONTENT_LENGTH_ARG)
    method_bytes = _to_bytes(method)
    if not _TOKEN.match(method_bytes):
        raise LocalProtocolError(ERR_BAD_METHOD.format(method=method_bytes))
    uri, path, query = _split_target(_to_bytes(path_and_query))

    content_type = b""
    seen_content_type = False
    merged: dict[bytes, tuple[bytes, list[bytes]]] = {}
    for raw_name, raw_value in _pairs(headers):
        name = _name_bytes(raw_name)
        if not _TOKEN.match(name):
            raise LocalProtocolError(ERR_BAD_HEADER_NAME.format(name=name))
        value = _check_header_value(name, _to_bytes(raw_value or b""))
        lower = name.lower()
        if lower == b"content-type":
            if seen_content_type:
                raise LocalProtocolError(ERR_DUPLICATE_CONTENT_TYPE)
            seen_content_type = True
            content_type = value
        elif lower == b"content-length":
            if value != b"%d" % content_length:
                raise LocalProtocolError(
                    ERR_HEADER_CONTENT_LENGTH.format(value=value, length=content_length)
                )
        else:
            key = b"HTTP_" + lower.upper().replace(b"-", b"_")
            merged.setdefault(key, (lower, []))[1].append(value)

    port = b"443" if secure else b"80"
    host_entry = merged.pop(b"HTTP_HOST", None)
    host = DEFAULT_SERVER_NAME if host_entry is None else b", ".join(host_entry[1])
    pairs: list[tuple[bytes, bytes]] = [
        (b"CONTENT_LENGTH", b"%d" % content_length),
        (b"REQUEST_METHOD", method_bytes),
        (b"REQUEST_URI", uri),
        (b"QUERY_STRING", query),
        (b"CONTENT_TYPE", content_type),
        (b"SCGI", b"1"),
        (b"SERVER_PROTOCOL", DEFAULT_PROTOCOL),
        (b"REQUEST_SCHEME", b"https" if secure else b"http"),
    ]
    if secure:
        pairs.append((b"HTTPS", b"on"))
    pairs += [
        (b"REMOTE_ADDR", DEFAULT_REMOTE_ADDR),
        (b"REMOTE_PORT", DEFAULT_REMOTE_PORT),
        (b"SERVER_PORT", port),
        (b"SERVER_NAME", DEFAULT_SERVER_NAME),
        (b"HTTP_HOST", host),
    ]
    if script_name is not None:
        script, path_info = _script_split(path, _to_bytes(script_name))
        pairs += [(b"SCRIPT_NAME", script), (b"PATH_INFO", path_info)]
    for key, (lower, values) in merged.items():
        separator = b"; " if lower == b"cookie" else b", "
        pairs.append((key, separator.join(values)))
    return _override(pairs, variables)


def _override(
    pairs: list[tuple[bytes, bytes]], variables: VariableOverrides
) -> list[tuple[bytes, bytes]]:
    """Apply variable overrides: replace in place, append, or remove (``None``)."""
    for raw_name, raw_value in _pairs(variables):
        name = _name_bytes(raw_name)
        if not name or b"\0" in name:
            raise LocalProtocolError(ERR_BAD_VARIABLE_NAME.format(name=name))
        if name in (b"CONTENT_LENGTH", b"SCGI"):
            raise LocalProtocolError(
                ERR_RESERVED_VARIABLE.format(name=name.decode("ascii"))
            )
        index = next((i for i, (n, _) in enumerate(pairs) if n == name), None)
        if raw_value is None:
            if index is not None:
                del pairs[index]
            continue
        value = _to_bytes(raw_value)
        if b"\0" in value:
            raise LocalProtocolError(
                ERR_BAD_VARIABLE_VALUE.format(name=name.decode("latin-1"))
            )
        if index is None:
            pairs.append((name, value))
        else:
            pairs[index] = (name, value)
    return pairs


def encode_variables(pairs: Iterable[tuple[bytes, bytes]]) -> bytes:
    r"""Frame SCGI variables as the netstring that starts a request.

    :param pairs: the ``(name, value)`` pairs, in order.
    :returns: ``<len>:<name>\0<value>\0...,``; the body must follow it.
    :raises LocalProtocolError: unless the pairs make a valid SCGI header block:
        ``CONTENT_LENGTH`` first with a value of digits, ``SCGI`` equal to ``1``,
        names non-empty and unique, no NUL in a name or value.
    """
    parts: list[bytes] = []
    seen: set[bytes] = set()
    for index, (name, value) in enumerate(pairs):
        if not name or b"\0" in name:
            raise LocalProtocolError(ERR_BAD_VARIABLE_NAME.format(name=name))
        if b"\0" in value:
            raise LocalProtocolError(
                ERR_BAD_VARIABLE_VALUE.format(name=name.decode("latin-1"))
            )
        if name in seen:
            raise LocalProtocolError(
                ERR_DUPLICATE_VARIABLE.format(name=name.decode("latin-1"))
            )
        seen.add(name)
        if index == 0:
            if name != b"CONTENT_LENGTH":
                raise LocalProtocolError(ERR_FIRST_NOT_CONTENT_LENGTH)
            if not value.isdigit():
                raise LocalProtocolError(ERR_CONTENT_LENGTH_NOT_DIGITS)
        elif name == b"SCGI" and value != b"1":
            raise LocalProtocolError(ERR_SCGI_MISSING)
        parts += [name, b"\0", value, b"\0"]
    if not parts:
        raise LocalProtocolError(ERR_FIRST_NOT_CONTENT_LENGTH)
    if b"SCGI" not in seen:
        raise LocalProtocolError(ERR_SCGI_MISSING)
    block = b"".join(parts)
    return b"%d:%s," % (len(block), block)


def encode_request(
    method: Text = b"GET",
    path_and_query: Text = b"/",
    headers: HeaderPairs = (),
    variables: VariableOverrides = (),
    content_length: int = 0,
    *,
    script_name: Text | None = b"",
    secure: bool = False,
) -> bytes:
    """Encode the start of an SCGI request: the netstring of its variables.

    The parameters are those of :func:`request_variables`.  Exactly
    ``content_length`` body bytes must be sent after the result.

    :returns: the netstring, ready to write.
    :raises LocalProtocolError: as :func:`request_variables` does.
    """
    return encode_variables(
        request_variables(
            method,
            path_and_query,
            headers,
            variables,
            content_length,
            script_name=script_name,
            secure=secure,
        )
    )


# Parsing a response.


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
        method: Text = b"GET",
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
