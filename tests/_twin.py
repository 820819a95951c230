"""The twin test's corpus, the comparison, and every difference it tolerates.

The same requests (:data:`CORPUS`) go to ``twisted.web``'s own HTTP server and to
scgi_twisted serving the same tree (:mod:`tests.twin_app`); :func:`answer` reduces
each response to what a client and the application can tell apart, and
:func:`compare` lists the differences left once the tolerated ones
(:data:`TOLERATED`) are applied.  ``docs/compatibility.md`` lists the same
differences for users.

:data:`TOLERATED` is the one place where a difference is allowed; each entry says why.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from scgi_twisted._clientsansio import encode_variables, request_variables
from scgi_twisted.testing import TestResponse

__all__ = [
    "CORPUS",
    "TOLERATED",
    "Answer",
    "Tolerance",
    "TwinRequest",
    "answer",
    "compare",
    "hostFor",
    "httpExchange",
    "scgiExchange",
]


def hostFor(port: int) -> str:
    """Return the ``Host`` a twin request sends to both servers.

    Its port is the reference server's: twisted.web builds URLs with the port of
    its listening socket, scgi_twisted with the port of the ``Host`` header, and
    with this ``Host`` the two agree.
    """
    return f"twin.test:{port}"


_BOUNDARY = "twinBOUNDARY42"
_MULTIPART = (
    (
        f"--{_BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="field"\r\n\r\n'
        "value one\r\n"
        f"--{_BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="upload"; filename="a.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    + bytes(range(256))
    + f"\r\n--{_BOUNDARY}--\r\n".encode()
)

_FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class TwinRequest:
    """One request of the corpus.

    :ivar label: a short name, for messages and for :data:`TOLERATED`.
    :ivar method: the method.
    :ivar target: the path and query, below the twin tree (``/seen?a=1``).
    :ivar headers: the headers besides ``Host`` (always :data:`HOST`).
    :ivar body: the body, or ``None`` for none.
    :ivar chunked: send the body with ``Transfer-Encoding: chunked``.
    """

    label: str
    method: str
    target: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    chunked: bool = False


def _lastModified() -> str:
    """Return an ``If-Modified-Since`` date in the future: every file is older."""
    return email.utils.formatdate(2_000_000_000, usegmt=True)


CORPUS: tuple[TwinRequest, ...] = (
    TwinRequest("query repeated and empty keys", "GET", "/seen/q?a=1&a=2&b=&=c&d"),
    TwinRequest("query ; and +", "GET", "/seen/q?x=1;y=2&p=a+b&s=%20%2B"),
    TwinRequest("percent-encoded path", "GET", "/seen/a%20b/c%41d"),
    TwinRequest("UTF-8 path", "GET", "/seen/caf%C3%A9/%E2%82%AC"),
    TwinRequest("double slashes", "GET", "/seen//a//b/"),
    TwinRequest("semicolon in path", "GET", "/seen/a;b=c/d"),
    TwinRequest(
        "urlencoded form",
        "POST",
        "/seen/form?q=1",
        (("Content-Type", _FORM),),
        b"a=1&a=2&b=x+y&c=%C3%A9",
    ),
    TwinRequest(
        "urlencoded form with charset",
        "POST",
        "/seen/form",
        (("Content-Type", _FORM + "; charset=utf-8"),),
        b"name=caf%C3%A9",
    ),
    TwinRequest(
        "multipart form",
        "POST",
        "/seen/multipart",
        (("Content-Type", f"multipart/form-data; boundary={_BOUNDARY}"),),
        _MULTIPART,
    ),
    TwinRequest(
        "getChild routes on a form field",
        "POST",
        "/route/leaf",
        (("Content-Type", _FORM),),
        b"to=beta",
    ),
    TwinRequest(
        "binary PUT",
        "PUT",
        "/seen/put",
        (("Content-Type", "application/octet-stream"),),
        bytes(range(256)) * 64,
    ),
    TwinRequest(
        "chunked upload",
        "POST",
        "/seen/chunked",
        (("Content-Type", "application/octet-stream"),),
        b"chunk" * 30000,
        chunked=True,
    ),
    TwinRequest("empty POST", "POST", "/seen/empty", body=b""),
    TwinRequest("DELETE", "DELETE", "/seen/item"),
    TwinRequest(
        "PATCH", "PATCH", "/seen/item", (("Content-Type", "text/plain"),), b"patch"
    ),
    TwinRequest("OPTIONS", "OPTIONS", "/seen/item"),
    TwinRequest("unknown method", "FROB", "/seen/item"),
    TwinRequest("DELETE not allowed", "DELETE", "/methods"),
    TwinRequest("unknown method not implemented", "FROB", "/methods"),
    TwinRequest("HEAD", "HEAD", "/methods"),
    TwinRequest(
        "auth and cookies seen",
        "GET",
        "/seen/auth",
        (
            ("Authorization", "Basic YWxpY2U6czNjcjN0"),
            ("Cookie", "a=1; b=two words"),
            ("X-Custom", "value"),
        ),
    ),
    TwinRequest("static file", "GET", "/files/a.txt"),
    TwinRequest("range single", "GET", "/files/a.txt", (("Range", "bytes=2-5"),)),
    TwinRequest("range suffix", "GET", "/files/data.bin", (("Range", "bytes=-10"),)),
    TwinRequest("range multiple", "GET", "/files/a.txt", (("Range", "bytes=0-1,5-6"),)),
    TwinRequest(
        "range unsatisfiable", "GET", "/files/a.txt", (("Range", "bytes=500-600"),)
    ),
    TwinRequest(
        "If-Modified-Since", "GET", "/files/a.txt", (("If-Modified-Since", "@IMS@"),)
    ),
    TwinRequest("directory listing", "GET", "/files/"),
    TwinRequest("directory redirect", "GET", "/files/sub"),
    TwinRequest("gzip", "GET", "/gzip", (("Accept-Encoding", "gzip"),)),
    TwinRequest("cookies with attributes", "GET", "/cookies"),
    TwinRequest("session", "GET", "/session"),
    TwinRequest("request.redirect", "GET", "/redirect"),
    TwinRequest("204", "GET", "/status/204"),
    TwinRequest("304", "GET", "/status/304"),
    TwinRequest("418", "GET", "/status/418"),
    TwinRequest("599", "GET", "/status/599"),
    TwinRequest("exception", "GET", "/error"),
    TwinRequest("404", "GET", "/missing/x"),
    TwinRequest("repeated and latin-1 headers", "GET", "/headers"),
    TwinRequest("NOT_DONE_YET stream", "GET", "/stream"),
    TwinRequest("WSGI", "POST", "/wsgi/a/b?x=1", (("Content-Type", _FORM),), b"k=v"),
)
"""The corpus: every request both servers get."""


def resolve(request: TwinRequest) -> TwinRequest:
    """Fill in the placeholders of a request (``@IMS@``)."""
    headers = tuple(
        (name, _lastModified() if value == "@IMS@" else value)
        for name, value in request.headers
    )
    return TwinRequest(
        request.label,
        request.method,
        request.target,
        headers,
        request.body,
        request.chunked,
    )


_COMPARED_HEADERS = (
    "content-type",
    "location",
    "set-cookie",
    "content-range",
    "content-encoding",
    "allow",
    "last-modified",
    "x-multi",
    "x-latin",
)
"""The response headers compared (framing and server headers are the hop's)."""

_SESSION = re.compile(r"(TWISTED_SESSION[^=]*=)[0-9a-f]+")


@dataclass(frozen=True)
class Answer:
    """What a client and the application can tell apart in one response.

    :ivar status: the status code.
    :ivar headers: the values of the compared headers, by name.
    :ivar body: the body, unless it is the application's JSON.
    :ivar seen: the application's JSON (what the resource saw), or ``None``.
    """

    status: int
    headers: dict[str, list[str]]
    body: bytes
    seen: dict[str, Any] | None = field(default=None)


def answer(status: int, headers: Sequence[tuple[str, str]], body: bytes) -> Answer:
    """Reduce a response to an :class:`Answer`.

    Session ids and multipart boundaries are random: each is replaced by a
    placeholder.  A JSON body is parsed.
    """
    values: dict[str, list[str]] = {}
    for name, value in headers:
        key = name.lower()
        if key in _COMPARED_HEADERS:
            values.setdefault(key, []).append(_SESSION.sub(r"\1<id>", value))
    # A multipart/byteranges boundary is random: replaced by <boundary>.
    boundary = re.search(
        r'boundary="?([^";]+)', ",".join(values.get("content-type", []))
    )
    if boundary:
        token = boundary.group(1)
        values["content-type"] = [
            v.replace(token, "<boundary>") for v in values["content-type"]
        ]
        body = body.replace(token.encode("latin-1"), b"<boundary>")
    seen = None
    if "application/json" in ",".join(values.get("content-type", [])):
        try:
            seen = json.loads(body)
        except ValueError:
            seen = None
        else:
            body = b""
    return Answer(status, values, body, seen)


@dataclass(frozen=True)
class Tolerance:
    """One tolerated difference.

    :ivar name: its name in ``docs/compatibility.md``.
    :ivar where: ``"scgi"`` (in-process and every frontend) or a frontend's name.
    :ivar labels: the corpus labels it applies to; empty for every request.
    :ivar reason: why the difference exists (the docs say the same).
    :ivar apply: turns the reference answer into the one expected there.
    """

    name: str
    where: str
    labels: tuple[str, ...]
    reason: str
    apply: Callable[[Answer, TwinRequest], Answer]


_FRAMING = {"content-length", "transfer-encoding", "connection"}


def _withoutFraming(seen: dict[str, Any]) -> dict[str, Any]:
    """Return ``seen`` without the framing request headers."""
    seen = dict(seen)
    seen["headers"] = [h for h in seen.get("headers", []) if h[0] not in _FRAMING]
    return seen


def _framingHeadersDropped(reference: Answer, request: TwinRequest) -> Answer:
    """Leave the framing request headers out of what the resource saw."""
    if reference.seen is None:
        return reference
    seen = _withoutFraming(reference.seen)
    return Answer(reference.status, reference.headers, reference.body, seen)


def _statusOnly(status: int) -> Callable[[Answer, TwinRequest], Answer]:
    """Return a tolerance: the frontend answers ``status`` itself."""

    def change(reference: Answer, request: TwinRequest) -> Answer:
        return Answer(status, {}, b"<frontend>", None)

    return change


def _joinedHeader(name: str) -> Callable[[Answer, TwinRequest], Answer]:
    """Return a tolerance: the values of response header ``name`` arrive joined."""

    def change(reference: Answer, request: TwinRequest) -> Answer:
        headers = dict(reference.headers)
        if name in headers:
            headers[name] = [", ".join(headers[name])]
        return Answer(reference.status, headers, reference.body, reference.seen)

    return change


TOLERATED: tuple[Tolerance, ...] = (
    Tolerance(
        "framing",
        "scgi",
        (),
        "Framing headers (Content-Length, Transfer-Encoding, Connection) belong to "
        "the hop: a frontend de-chunks an upload and sends its length, and it frames "
        "the response itself. They are left out of the comparison of the request "
        "headers the resource saw, and of the response headers.",
        _framingHeadersDropped,
    ),
    Tolerance(
        "apache-chunked",
        "apache",
        ("chunked upload",),
        "Apache's mod_proxy_scgi answers 411 Length Required to a chunked upload "
        "itself; the backend never sees the request.",
        _statusOnly(411),
    ),
    Tolerance(
        "apache-joined-headers",
        "apache",
        ("repeated and latin-1 headers",),
        "Apache joins a repeated response header into one line, values separated "
        "by ', ' (HTTP defines the two as equal; Set-Cookie is kept apart).",
        _joinedHeader("x-multi"),
    ),
    Tolerance(
        "lighttpd-methods",
        "lighttpd",
        ("unknown method", "unknown method not implemented"),
        "lighttpd knows a fixed list of methods and answers 501 itself to others; "
        "the backend never sees the request.",
        _statusOnly(501),
    ),
)
"""Every difference the twin test tolerates, with its reason; the one such list."""


def compare(
    where: Sequence[str],
    request: TwinRequest,
    reference: Answer,
    candidate: Answer,
) -> list[str]:
    """Return the differences between the answers, after the tolerated ones.

    :param where: the :attr:`Tolerance.where` values that apply (``"scgi"`` and a
        frontend's name).
    :returns: one line per difference; empty when the answers agree.
    """
    expected = reference
    for tolerance in TOLERATED:
        if tolerance.where in where and (
            not tolerance.labels or request.label in tolerance.labels
        ):
            expected = tolerance.apply(expected, request)
    problems = []
    if expected.status != candidate.status:
        problems.append(f"status {candidate.status}, expected {expected.status}")
    if expected.body == b"<frontend>":
        return problems
    if expected.headers != candidate.headers:
        problems.append(f"headers {candidate.headers}, expected {expected.headers}")
    if expected.body != candidate.body:
        problems.append(
            f"body {candidate.body[:300]!r}, expected {expected.body[:300]!r}"
        )
    if (expected.seen is None) != (candidate.seen is None):
        problems.append(f"seen {candidate.seen}, expected {expected.seen}")
    elif expected.seen is not None and candidate.seen is not None:
        # What the hop frames is never the application's (the first tolerance).
        want, got = expected.seen, _withoutFraming(candidate.seen)
        for key in sorted(set(want) | set(got)):
            if want.get(key) != got.get(key):
                problems.append(
                    f"seen {key}: {got.get(key)!r}, expected {want.get(key)!r}"
                )
    return problems


def httpExchange(
    port: int, request: TwinRequest, host: str, timeout: float = 30.0
) -> tuple[int, list[tuple[str, str]], bytes]:
    """Send ``request`` over HTTP to 127.0.0.1:``port``; return the response.

    ``Host`` is ``host``; a chunked request sends its body in chunks of 64 KiB.
    Blocking: run it in a thread.
    """
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.putrequest(
            request.method, request.target, skip_host=True, skip_accept_encoding=True
        )
        for name, value in [("Host", host), *request.headers]:
            connection.putheader(name, value)
        body = request.body
        if body is not None and request.chunked:
            connection.putheader("Transfer-Encoding", "chunked")
            chunks = [body[i : i + 65536] for i in range(0, len(body), 65536)]
            connection.endheaders(iter(chunks), encode_chunked=True)
        else:
            if body is not None:
                connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body)
        response = connection.getresponse()
        data = response.read()
        return response.status, list(response.getheaders()), data
    finally:
        connection.close()


def scgiExchange(
    address: tuple[socket.AddressFamily, Any],
    request: TwinRequest,
    host: str,
    timeout: float = 30.0,
) -> tuple[int, list[tuple[str, str]], bytes]:
    """Send ``request`` over SCGI as a frontend would; return the response.

    The variables are those :mod:`scgi_twisted.client` sends (``SCRIPT_NAME`` empty,
    ``PATH_INFO`` the decoded path); a chunked body arrives de-chunked with its
    length, as a frontend sends it.  Blocking: run it in a thread.
    """
    body = request.body or b""
    pairs = request_variables(
        request.method,
        request.target,
        [("Host", host), *request.headers],
        [("SERVER_PORT", host.rsplit(":", 1)[1])],
        len(body),
        script_name=b"",
    )
    family, target = address
    with socket.socket(family, socket.SOCK_STREAM) as client:
        client.settimeout(timeout)
        client.connect(target)
        client.sendall(encode_variables(pairs) + body)
        chunks = []
        while chunk := client.recv(65536):
            chunks.append(chunk)
    response = TestResponse.parse(b"".join(chunks), request.method)
    headers = [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in response.header_pairs
    ]
    return response.status, headers, response.body
