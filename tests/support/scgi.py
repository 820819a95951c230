"""SCGI on the wire: the golden vectors of the spec, one encoder, one parser.

Golden vectors: :data:`DEEPTHOUGHT` is the specification's worked example, byte for
byte, with its parts (:data:`DEEPTHOUGHT_PAIRS`, :data:`DEEPTHOUGHT_HEAD`,
:data:`DEEPTHOUGHT_BLOCK`, :data:`DEEPTHOUGHT_BODY`) and its SHA-256;
:data:`MINIMAL` is the smallest valid request.  ``tests/test_support.py`` checks the
encoder against them.

Requests: :func:`buildRequest` frames variables and a body the way every frontend
does (``CONTENT_LENGTH`` first, then ``SCGI=1``) with the library's own encoder
(:func:`scgi_twisted._clientsansio.encode_variables`), which refuses anything that is
not a valid request.  Malformed input is built on purpose with :func:`rawRequest`,
:func:`netstring` and :func:`headerBlock`, which frame exactly what they are given.
:func:`nginxVariables` gives the variables stock nginx sends for a request line, and
:data:`BASE` with :func:`replace` and :func:`without` a full nginx request to vary.

Responses: :func:`parseResponse` reads what a channel wrote with the library's own
response parser (:class:`scgi_twisted._clientresponse.ResponseParser`), and checks
on top of it that the server wrote the head the strict way (``Status:`` first, CRLF
everywhere, a blank line) into a :class:`CGIResponse`; :class:`Response` is the
same answer keyed by header name, for the tests that read the ``Status`` line whole.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from scgi_twisted._clientresponse import ResponseBody, ResponseHead, ResponseParser
from scgi_twisted._clientsansio import encode_variables

__all__ = [
    "BASE",
    "DEEPTHOUGHT",
    "DEEPTHOUGHT_BLOCK",
    "DEEPTHOUGHT_BODY",
    "DEEPTHOUGHT_HEAD",
    "DEEPTHOUGHT_PAIRS",
    "DEEPTHOUGHT_SHA256",
    "MINIMAL",
    "CGIResponse",
    "Pairs",
    "Response",
    "buildRequest",
    "headerBlock",
    "netstring",
    "nginxVariables",
    "parseHTTPRefusal",
    "parseResponse",
    "rawRequest",
    "replace",
    "without",
]

Pairs = Sequence[tuple[bytes, bytes]]
"""SCGI variables as ``(name, value)`` pairs, in the order they are sent."""

Variables = Pairs | Mapping[str, bytes]
"""Variables as pairs or as a mapping from names (text) to values."""


# The golden vectors.

DEEPTHOUGHT = (
    b"70:"
    b"CONTENT_LENGTH\x0027\x00"
    b"SCGI\x001\x00"
    b"REQUEST_METHOD\x00POST\x00"
    b"REQUEST_URI\x00/deepthought\x00"
    b","
    b"What is the answer to life?"
)
"""The specification's example request, byte for byte."""

DEEPTHOUGHT_PAIRS: tuple[tuple[bytes, bytes], ...] = (
    (b"CONTENT_LENGTH", b"27"),
    (b"SCGI", b"1"),
    (b"REQUEST_METHOD", b"POST"),
    (b"REQUEST_URI", b"/deepthought"),
)
"""Its variables, in order."""

DEEPTHOUGHT_HEAD = DEEPTHOUGHT[:74]
"""Its netstring: ``70:``, the header block, the comma."""

DEEPTHOUGHT_BLOCK = DEEPTHOUGHT[3:73]
"""Its 70-byte header block, without the netstring's length and comma."""

DEEPTHOUGHT_BODY = b"What is the answer to life?"
"""Its 27-byte body."""

DEEPTHOUGHT_SHA256 = "2ae09e033d381f8883e8c3a0497a4fc9afb6f586f97adc780dd2c705fca19331"
"""The SHA-256 of the whole request, as the specification gives it."""

MINIMAL = b"24:CONTENT_LENGTH\x000\x00SCGI\x001\x00,"
"""The smallest valid request: no body, only the two required variables."""


# Building requests.


def headerBlock(pairs: Pairs) -> bytes:
    """Encode exactly ``pairs`` as an SCGI header block (without the netstring).

    For malformed requests only: nothing is checked.
    """
    return b"".join(name + b"\x00" + value + b"\x00" for name, value in pairs)


def netstring(block: bytes) -> bytes:
    """Frame ``block`` as a netstring, computing its length; nothing is checked."""
    return b"%d:%s," % (len(block), block)


def rawRequest(pairs: Pairs, body: bytes = b"") -> bytes:
    """Frame exactly ``pairs`` (nothing added, nothing checked) and append ``body``."""
    return netstring(headerBlock(pairs)) + body


def _pairs(variables: Variables) -> list[tuple[bytes, bytes]]:
    """Turn variables given either way into pairs."""
    if isinstance(variables, Mapping):
        return [(name.encode("latin-1"), value) for name, value in variables.items()]
    return list(variables)


def buildRequest(
    variables: Variables = (), body: bytes = b"", *, contentLength: int | None = None
) -> bytes:
    """Build a valid request: ``CONTENT_LENGTH``, ``SCGI=1``, the variables, the body.

    The library's encoder frames it, so a request it builds is valid: names free of
    NUL and unique, values free of NUL.  The one exception is what real frontends
    send although the spec forbids it and the library's client never does: a repeated
    ``HTTP_*`` name (nginx 1.22 sends one per repeated header line), framed as given.
    A test about invalid requests builds them with :func:`rawRequest`.

    :param variables: the other variables, in order; ``SCGI`` among them is ignored
        (it is always sent second, as ``1``).
    :param body: the bytes sent after the header block.
    :param contentLength: the declared length, if not ``len(body)``.
    :raises scgi_twisted.LocalProtocolError: for variables no valid request holds.
    """
    declared = len(body) if contentLength is None else contentLength
    pairs = [(b"CONTENT_LENGTH", b"%d" % declared), (b"SCGI", b"1")]
    pairs.extend(pair for pair in _pairs(variables) if pair != (b"SCGI", b"1"))
    names = [name for name, _ in pairs]
    repeated = {name for name in names if names.count(name) > 1}
    if repeated and all(name.startswith(b"HTTP_") for name in repeated):
        encode_variables(_firstOfEach(pairs))  # everything else must be valid
        return rawRequest(pairs, body)
    return encode_variables(pairs) + body


def _firstOfEach(pairs: Pairs) -> list[tuple[bytes, bytes]]:
    """Return ``pairs`` with every repeated name after its first use left out."""
    seen: set[bytes] = set()
    first = []
    for name, value in pairs:
        if name not in seen:
            seen.add(name)
            first.append((name, value))
    return first


BASE: tuple[tuple[bytes, bytes], ...] = (
    (b"SCGI", b"1"),
    (b"REQUEST_METHOD", b"GET"),
    (b"REQUEST_URI", b"/"),
    (b"QUERY_STRING", b""),
    (b"SERVER_PROTOCOL", b"HTTP/1.1"),
    (b"REQUEST_SCHEME", b"http"),
    (b"REMOTE_ADDR", b"203.0.113.9"),
    (b"REMOTE_PORT", b"51234"),
    (b"SERVER_PORT", b"8080"),
    (b"SERVER_NAME", b"localhost"),
    (b"HTTP_HOST", b"example.test:8080"),
    (b"HTTP_USER_AGENT", b"curl/8.5.0"),
)
"""A request as nginx with Debian's ``scgi_params`` sends it, minus CONTENT_LENGTH."""


def replace(pairs: Pairs, **values: bytes) -> list[tuple[bytes, bytes]]:
    """Return ``pairs`` with the named variables' values replaced (or added)."""
    result = []
    for name, value in pairs:
        key = name.decode("ascii")
        result.append((name, values.pop(key, value)))
    result.extend((name.encode("ascii"), value) for name, value in values.items())
    return result


def without(pairs: Pairs, *names: bytes) -> list[tuple[bytes, bytes]]:
    """Return ``pairs`` without the named variables."""
    return [(name, value) for name, value in pairs if name not in names]


def nginxVariables(
    uri: bytes = b"/", /, **overrides: bytes | None
) -> list[tuple[bytes, bytes]]:
    """Return what Debian's nginx ``scgi_params`` send for ``GET uri HTTP/1.1``.

    ``QUERY_STRING`` and ``DOCUMENT_URI`` are taken from ``uri``.  Each keyword, named
    as the variable, replaces it (``REQUEST_METHOD=b"POST"``) or is appended when
    nginx would not send it (``SCRIPT_NAME=b"/app"``); a ``None`` value leaves the
    variable out.
    """
    for name in overrides:
        assert name == name.upper(), f"{name!r} is not a CGI variable name"
    path, _, query = uri.partition(b"?")
    variables: dict[str, bytes | None] = {
        "REQUEST_METHOD": b"GET",
        "REQUEST_URI": uri,
        "QUERY_STRING": query,
        "CONTENT_TYPE": b"",
        "DOCUMENT_URI": path,
        "DOCUMENT_ROOT": b"/usr/share/nginx/html",
        "SERVER_PROTOCOL": b"HTTP/1.1",
        "REQUEST_SCHEME": b"http",
        "REMOTE_ADDR": b"203.0.113.9",
        "REMOTE_PORT": b"51234",
        "SERVER_PORT": b"8080",
        "SERVER_NAME": b"localhost",
        "HTTP_HOST": b"example.test",
    }
    variables.update(overrides)
    return [
        (name.encode("latin-1"), value)
        for name, value in variables.items()
        if value is not None
    ]


# Reading responses.


@dataclass(frozen=True)
class CGIResponse:
    """A CGI response as the channel wrote it.

    :ivar status: the code of the ``Status:`` line.
    :ivar reason: its reason phrase.
    :ivar headers: the other header lines, as ``(name, value)``, in order.
    :ivar body: everything after the blank line.
    """

    status: int
    reason: bytes
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes

    def values(self, name: bytes) -> list[bytes]:
        """Return every value of the header ``name`` (any case), in order."""
        wanted = name.lower()
        return [value for key, value in self.headers if key.lower() == wanted]

    def header(self, name: bytes) -> bytes | None:
        """Return the one value of the header ``name``, or ``None`` if absent.

        :raises AssertionError: if the header is repeated.
        """
        found = self.values(name)
        assert len(found) <= 1, f"{name!r} is repeated: {found!r}"
        return found[0] if found else None


def _checkStrictHead(data: bytes) -> None:
    """Check what the library's tolerant parser lets through but a server never writes.

    :raises ValueError: unless the head starts with a ``Status:`` line, ends with a
        blank line, and every line ends with CRLF (no bare CR or LF) and is written
        ``Name: value``.
    """
    head, separator, _ = data.partition(b"\r\n\r\n")
    if not separator:
        raise ValueError(f"no blank line ends the head: {data[:200]!r}")
    lines = head.split(b"\r\n")
    for line in lines:
        if b"\r" in line or b"\n" in line:
            raise ValueError(f"a bare CR or LF in the head: {line!r}")
    if not lines[0].startswith(b"Status: "):
        raise ValueError(f"the first line is not a Status line: {lines[0]!r}")
    for line in lines:
        name, colon, _ = line.partition(b": ")
        if not colon or not name or b" " in name:
            raise ValueError(f"not a header line: {line!r}")


def parseResponse(data: bytes, method: bytes = b"GET") -> CGIResponse:
    """Parse a CGI response strictly, with the library's response parser.

    The bytes need not be the whole connection: the body is what has arrived, and it
    is not checked against its ``Content-Length`` for being short (it is for being
    long).

    :param data: the bytes the server wrote.
    :param method: the request's method (a response to ``HEAD`` has no body).
    :raises ValueError: if ``data`` is not such a response.
    """
    _checkStrictHead(data)
    parser = ResponseParser(method=method, max_head_size=len(data) + 1)
    parser.receive_data(data)
    head: ResponseHead | None = None
    body: list[bytes] = []
    while (event := parser.next_event()) is not None:
        if isinstance(event, ResponseHead):
            head = event
        elif isinstance(event, ResponseBody):
            body.append(event.data)
    assert head is not None, "the strict check found the end of the head"
    return CGIResponse(head.status, head.reason, head.headers, b"".join(body))


def parseHTTPRefusal(data: bytes) -> CGIResponse:
    """Parse the HTTP/1.0 answer to an HTTP request sent to the SCGI port, strictly.

    The first line must be ``HTTP/1.0 <3 digits> <reason>``; the rest is checked as
    :func:`parseResponse` checks a CGI response's head.

    :raises ValueError: if ``data`` is not such a response.
    """
    first, separator, rest = data.partition(b"\r\n")
    version, _, status = first.partition(b" ")
    if version != b"HTTP/1.0" or not separator:
        raise ValueError(f"the first line is not an HTTP/1.0 status line: {first!r}")
    return parseResponse(b"Status: " + status + b"\r\n" + rest)


class Response:
    """A CGI response (parsed by :func:`parseResponse`) keyed by header name.

    :ivar status: the ``Status:`` line's value, such as ``b"200 OK"``.
    :ivar headers: the headers, by lower-case name, every value in order.
    :ivar body: the body.
    """

    def __init__(self, raw: bytes) -> None:
        """Parse ``raw`` strictly."""
        parsed = parseResponse(raw)
        self.status = b"%d %s" % (parsed.status, parsed.reason)
        self.body = parsed.body
        self.headers: dict[bytes, list[bytes]] = {}
        for name, value in parsed.headers:
            self.headers.setdefault(name.lower(), []).append(value)

    def header(self, name: bytes) -> bytes:
        """Return the only value of a header."""
        values = self.headers[name.lower()]
        assert len(values) == 1, values
        return values[0]

    def json(self) -> dict[str, object]:
        """Return the body, parsed as a JSON object."""
        data = json.loads(self.body)
        assert isinstance(data, dict)
        return data
