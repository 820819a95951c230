"""Pure mappings from a CGI environment to the fields of an HTTP request.

Each function takes the environment the parser produced (names as ``str``, values as
``bytes``) and returns plain values: no Twisted types, no I/O. Every CGI variable other
than ``CONTENT_LENGTH`` and ``SCGI`` is optional: a missing, empty or malformed one
gives a documented default, never an exception. The one exception is a request header
that cannot be a header at all (a name that is not an HTTP token, or CR, LF in a value),
which is refused as the peer's error (400).

The mount rules follow what nginx, Apache and lighttpd really send (see
``docs/mounting``): ``SCRIPT_NAME`` is trusted only together with ``PATH_INFO`` and only
when the two agree with the raw ``REQUEST_URI``.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import lru_cache
from operator import itemgetter
from typing import Any, Literal, overload
from urllib.parse import quote_from_bytes, unquote_to_bytes

from ._errors import RemoteProtocolError

__all__ = [
    "SCGIVariables",
    "client_address",
    "is_secure",
    "mount_depth",
    "path_segments",
    "request_headers",
    "request_method",
    "request_protocol",
    "request_uri",
    "server_address",
]

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")

_SKIPPED_HEADERS = frozenset(
    {
        # The CGI variables CONTENT_TYPE and CONTENT_LENGTH are the truth; nginx and
        # lighttpd also copy the client's headers as HTTP_CONTENT_*.
        "HTTP_CONTENT_TYPE",
        "HTTP_CONTENT_LENGTH",
        # nginx forwards this with a body it has already de-chunked.
        "HTTP_TRANSFER_ENCODING",
        # httpoxy: a client-sent "Proxy" header must never look like configuration.
        "HTTP_PROXY",
    }
)


class SCGIVariables(Mapping[str, bytes]):
    """The SCGI variables of one request, as the frontend sent them.

    As a mapping it gives each variable's value by name, with repeated ``HTTP_*`` names
    merged (``, ``, or ``; `` for ``HTTP_COOKIE``).  :attr:`raw` keeps every pair
    exactly as it arrived, in order, duplicates included.

    :ivar raw: the ``(name, value)`` pairs, as bytes, in arrival order: a read-only
        sequence of tuples, equal to the tuple of them.
    """

    __slots__ = ("_environ", "raw")

    def __init__(
        self, environ: dict[str, bytes], raw: Sequence[tuple[bytes, bytes]]
    ) -> None:
        """Wrap a parsed environment.

        :param environ: the merged variables by name.
        :param raw: every pair as received.
        """
        self._environ = environ
        self.raw = raw

    def __getitem__(self, name: str) -> bytes:
        """Return the (merged) value of ``name``.

        :raises KeyError: if the frontend did not send it.
        """
        return self._environ[name]

    def __iter__(self) -> Iterator[str]:
        """Iterate over the names, in the order of their first arrival."""
        return iter(self._environ)

    def __len__(self) -> int:
        """Return the number of distinct names."""
        return len(self._environ)

    def __contains__(self, name: object) -> bool:
        """Return whether the frontend sent ``name``."""
        return name in self._environ

    def get(self, name: str, default: bytes | None = None) -> bytes | None:  # type: ignore[override]
        """Return the (merged) value of ``name``, or ``default`` if it was not sent."""
        return self._environ.get(name, default)

    def __repr__(self) -> str:
        """Show the variables."""
        return f"SCGIVariables({self._environ!r})"

    def getAll(self, name: str) -> list[bytes]:
        """Return every value sent under ``name``, in arrival order, unmerged.

        :param name: the variable's name, e.g. ``"HTTP_COOKIE"``.
        :returns: the values; an empty list if the name was not sent.
        """
        key = name.encode("latin-1")
        return [value for raw_name, value in self.raw if raw_name == key]

    @overload
    def header(self, name: str) -> bytes | None: ...

    @overload
    def header(self, name: str, encoding: Literal["buffer"]) -> bytes | None: ...

    @overload
    def header(self, name: str, encoding: str) -> str | bytes | None: ...

    def header(self, name: str, encoding: str = "buffer") -> str | bytes | None:
        """Return one variable as bytes or as text, like node's ``headers(name, enc)``.

        :param name: the variable's name, e.g. ``"REQUEST_URI"``.
        :param encoding: ``"buffer"`` (the default) for the bytes exactly as sent, or a
            codec name such as ``"utf-8"`` or ``"latin-1"`` to decode them (undecodable
            bytes are replaced).
        :returns: the value, or ``None`` if the frontend did not send it.
        """
        value = self._environ.get(name)
        if value is None or encoding == "buffer":
            return value
        return value.decode(encoding, "replace")


def request_method(environ: Mapping[str, bytes]) -> bytes:
    """Return ``REQUEST_METHOD``, or ``GET`` when it is missing or empty."""
    return environ.get("REQUEST_METHOD") or b"GET"


def request_protocol(environ: Mapping[str, bytes]) -> bytes:
    """Return ``SERVER_PROTOCOL`` unchanged, or ``HTTP/1.0`` when missing or empty."""
    return environ.get("SERVER_PROTOCOL") or b"HTTP/1.0"


def request_uri(environ: Mapping[str, bytes]) -> bytes:
    """Return the raw request target, path and query.

    ``REQUEST_URI`` is used as sent (it is never decoded).  An absolute-form target
    (``http://host/path``) is reduced to its path.  Without ``REQUEST_URI`` the target
    is rebuilt from ``SCRIPT_NAME`` + ``PATH_INFO`` (percent-encoded) and
    ``QUERY_STRING``.  The result always starts with ``/`` (or is ``*``).
    """
    uri = environ.get("REQUEST_URI")
    if not uri:
        path = environ.get("SCRIPT_NAME", b"") + environ.get("PATH_INFO", b"")
        uri = quote_from_bytes(path, safe="/;=,~!$&'()*+:@").encode("ascii") or b"/"
        query = environ.get("QUERY_STRING")
        if query:
            uri += b"?" + query
    if uri[:1] == b"/" or uri == b"*":
        return uri
    scheme_end = uri.find(b"://")
    if scheme_end > 0 and uri[:scheme_end].isalpha():
        slash = uri.find(b"/", scheme_end + 3)
        query_start = uri.find(b"?", scheme_end + 3)
        if slash < 0 or 0 <= query_start < slash:
            rest = uri[query_start:] if query_start >= 0 else b""
            return b"/" + rest
        return uri[slash:]
    return b"/" + uri


def request_headers(environ: Mapping[str, bytes]) -> list[tuple[bytes, bytes]]:
    """Return the request's HTTP headers as ``(lower-case name, value)`` pairs.

    ``HTTP_FOO_BAR`` becomes ``foo-bar``.  ``CONTENT_TYPE`` (when not empty) and
    ``CONTENT_LENGTH`` (when not ``0``) become ``content-type`` and ``content-length``;
    their ``HTTP_`` copies, ``HTTP_TRANSFER_ENCODING`` and ``HTTP_PROXY`` are skipped.

    :raises RemoteProtocolError: (400) for a header name that is not an HTTP token, or
        a value holding CR or LF.
    """
    # A frontend sends the same names in the same order request after request:
    # which of them are headers, and under which names, is planned once per order.
    shape = tuple(environ)
    try:
        if len(shape) <= PLAN_CACHED_NAMES and len("".join(shape)) <= PLAN_CACHED_SIZE:
            names, values_of = _cached_plan(shape)
        else:
            names, values_of = _plan(shape)
    except RemoteProtocolError:
        _refuse(environ)  # names the first variable at fault, in arrival order
        raise
    headers: list[tuple[bytes, bytes]] = []
    if names:
        values = values_of(environ)
        if len(names) == 1:
            values = (values,)
        joined = b"".join(values)
        if b"\r" in joined or b"\n" in joined:
            _refuse(environ)
        headers = list(zip(names, values, strict=True))
    content_type = environ.get("CONTENT_TYPE")
    if content_type:
        if b"\r" in content_type or b"\n" in content_type:
            raise RemoteProtocolError("the value of CONTENT_TYPE holds CR or LF")
        headers.append((b"content-type", content_type))
    content_length = environ.get("CONTENT_LENGTH", b"0").lstrip(b"0")
    if content_length:
        headers.append((b"content-length", content_length))
    return headers


PLANS_CACHED = 128
"""How many plans :func:`_cached_plan` remembers (least recently used first out): one
per frontend configuration and set of client headers."""

PLAN_CACHED_NAMES = 100
"""The most variables a remembered plan has (a frontend sends a few dozen)."""

PLAN_CACHED_SIZE = 4096
"""The most characters of names a remembered plan has.

A request with more variables, or longer names, is planned anew each time, so the
memory of the plans stays bounded (:data:`PLANS_CACHED` of these at most)."""


def _plan(shape: tuple[str, ...]) -> tuple[tuple[bytes, ...], Callable[..., Any]]:
    """Plan the headers of requests whose variables have these names, in this order.

    :returns: the header names, in order, and a function that takes an environment
        and returns the values of those variables (a tuple when there are several).
    :raises RemoteProtocolError: if a header name is not an HTTP token.
    """
    keys: list[str] = []
    names: list[bytes] = []
    for key in shape:
        name = _header_name(key)
        if name is not None:
            keys.append(key)
            names.append(name)
    if not keys:
        return (), _NO_VALUES
    return tuple(names), itemgetter(*keys)


_cached_plan = lru_cache(maxsize=PLANS_CACHED)(_plan)


def _NO_VALUES(environ: Mapping[str, bytes]) -> tuple[bytes, ...]:
    """Return the values of no variable."""
    return ()


def _refuse(environ: Mapping[str, bytes]) -> None:
    """Raise the error for the first variable, in order, that cannot be a header.

    :raises RemoteProtocolError: for a name that is not a token or a value holding
        CR or LF.
    """
    for key, value in environ.items():
        if _header_name(key) is not None and (b"\r" in value or b"\n" in value):
            raise RemoteProtocolError(f"the value of {key} holds CR or LF")


HEADER_NAMES_CACHED = 1024
"""How many variable names :func:`_header_name` remembers (least recently used first
out); real traffic uses a few dozen."""


@lru_cache(maxsize=HEADER_NAMES_CACHED)
def _header_name(key: str) -> bytes | None:
    """Translate ``HTTP_FOO_BAR`` to ``foo-bar``.

    :returns: the header name, or ``None`` if the variable is not a request header.
    :raises RemoteProtocolError: if the result is not an HTTP token.
    """
    if key.startswith("HTTP_") and key not in _SKIPPED_HEADERS:
        name = key[5:].replace("_", "-")
        if not _TOKEN.match(name):
            raise RemoteProtocolError(f"the header name in {key!r} is not a token")
        return name.lower().encode("latin-1")
    return None


def is_secure(environ: Mapping[str, bytes]) -> bool:
    """Return whether the client reached the frontend over TLS.

    True when ``HTTPS`` is ``on`` or ``1`` (any case) or ``REQUEST_SCHEME`` is
    ``https``.  Client-sent headers such as ``X-Forwarded-Proto`` are never consulted.
    """
    https = environ.get("HTTPS")
    if https is not None and https.lower() in (b"on", b"1"):
        return True
    scheme = environ.get("REQUEST_SCHEME")
    return scheme is not None and scheme.lower() == b"https"


def client_address(environ: Mapping[str, bytes]) -> tuple[int, str, int]:
    """Return the client's ``(family, host, port)`` from ``REMOTE_ADDR``/``_PORT``.

    :returns: ``socket.AF_INET`` or ``socket.AF_INET6`` with the address text and the
        port (0 when ``REMOTE_PORT`` is missing or not a number in 0-65535).  A
        ``REMOTE_ADDR`` that is not an IP address (missing, empty, or nginx's ``unix:``
        for clients of a unix listener) gives ``(AF_INET, "0.0.0.0", 0)``.
    """
    raw = environ.get("REMOTE_ADDR")
    if not raw:
        return socket.AF_INET, "0.0.0.0", 0
    family, host = _client_host(raw)
    if family == 0:
        return socket.AF_INET, "0.0.0.0", 0
    return family, host, _port(environ.get("REMOTE_PORT"))


CLIENT_HOSTS_CACHED = 4096
"""How many ``REMOTE_ADDR`` verdicts :func:`_client_host` remembers (least recently
used first out)."""


@lru_cache(maxsize=CLIENT_HOSTS_CACHED)
def _client_host(raw: bytes) -> tuple[int, str]:
    """Check a ``REMOTE_ADDR`` value.

    :returns: its family and text, or family 0 for a value that is not an IP address.
    """
    host = raw.decode("latin-1")
    family: int = socket.AF_INET6 if b":" in raw else socket.AF_INET
    try:
        socket.inet_pton(family, host)
    except (OSError, ValueError):
        family = 0
    return family, host


def server_address(environ: Mapping[str, bytes], secure: bool) -> tuple[str, int]:
    """Return the ``(host, port)`` the client addressed.

    The host is ``SERVER_NAME``, else the host part of ``HTTP_HOST``, else
    ``localhost``; a name that is not ASCII is passed over (twisted.web encodes the
    host as ASCII when the request has no Host header).  The port is the explicit port
    of ``HTTP_HOST`` when it has one (the public port, when another proxy stands in
    front), else ``SERVER_PORT``, else the scheme's default (443 or 80).
    """
    get = environ.get
    return _server_address(
        get("SERVER_NAME"), get("HTTP_HOST", b""), get("SERVER_PORT"), secure
    )


SERVER_ADDRESSES_CACHED = 1024
"""How many answers :func:`_server_address` remembers (least recently used first
out): a site sees a handful of them."""


@lru_cache(maxsize=SERVER_ADDRESSES_CACHED)
def _server_address(
    server_name: bytes | None,
    host_header: bytes,
    server_port: bytes | None,
    secure: bool,
) -> tuple[str, int]:
    """Compute :func:`server_address` from the variables it depends on."""
    header_host, header_port = _split_host(host_header)
    candidates = (server_name, header_host)
    name = next((n for n in candidates if n and n.isascii()), b"localhost")
    port = header_port
    if port is None:
        port = _port(server_port) or None
    if port is None:
        port = 443 if secure else 80
    return name.decode("latin-1"), port


def path_segments(path: bytes) -> list[bytes]:
    """Split a raw URL path into decoded segments, as ``twisted.web`` does.

    The path is split on ``/`` first and each segment is then percent-decoded, so an
    encoded ``%2F`` stays inside its segment.
    """
    segments = path[1:].split(b"/")
    if b"%" not in path:
        return segments  # nothing to decode (unquote_to_bytes would return each)
    return [unquote_to_bytes(segment) for segment in segments]


def mount_depth(
    segments: list[bytes], environ: Mapping[str, bytes], mount: bytes | None
) -> int:
    """Return how many leading path segments belong to the mount point.

    :param segments: the request path's decoded segments (:func:`path_segments`).
    :param environ: the request's variables.
    :param mount: the configured mount prefix (``--mount``), used when the frontend's
        ``SCRIPT_NAME``/``PATH_INFO`` do not settle it.
    :returns: the number of segments that go to ``prepath``.

    The frontend's split is used when it sends both ``SCRIPT_NAME`` and ``PATH_INFO``:

    1. ``SCRIPT_NAME`` is a segment-wise prefix of the path and ``PATH_INFO`` is exactly
       the rest (nginx, lighttpd, and Apache for plain paths);
    2. else the decoded ``PATH_INFO`` is a segment-wise suffix of the path (Apache,
       which computes ``SCRIPT_NAME`` on the decoded path but re-encodes ``PATH_INFO``);
    3. else ``SCRIPT_NAME`` is a segment-wise prefix (nginx, whose ``PATH_INFO`` is
       normalised: ``..`` resolved, ``//`` merged).

    Otherwise the configured ``mount`` applies when it is a prefix of the path, and
    failing that the application sits at the root.
    """
    script_name = environ.get("SCRIPT_NAME")
    path_info = environ.get("PATH_INFO")
    if script_name is not None and path_info is not None:
        prefix = _mount_segments(script_name)
        depth = len(prefix)
        is_prefix = depth <= len(segments) and segments[:depth] == prefix
        if is_prefix and _joined(segments[depth:]) == path_info:
            return depth
        suffix = [unquote_to_bytes(s) for s in path_info.split(b"/")[1:]]
        start = len(segments) - len(suffix)
        if path_info[:1] == b"/" and start >= 0 and segments[start:] == suffix:
            return start
        if is_prefix:
            return depth
    if mount:
        prefix = _mount_segments(mount)
        if segments[: len(prefix)] == prefix:
            return len(prefix)
    return 0


def _mount_segments(prefix: bytes) -> list[bytes]:
    """Return the segments of a mount prefix; ``""`` and ``"/"`` have none."""
    stripped = prefix.strip(b"/")
    return stripped.split(b"/") if stripped else []


def _joined(segments: list[bytes]) -> bytes:
    """Join path segments back into a ``PATH_INFO``-shaped value."""
    return b"/" + b"/".join(segments) if segments else b""


def _port(raw: bytes | None) -> int:
    """Return a port number from digits, or 0 for anything else."""
    if raw and raw.isdigit() and len(raw) <= 5:
        port = int(raw)
        if port <= 65535:
            return port
    return 0


def _split_host(host: bytes) -> tuple[bytes, int | None]:
    """Split a ``Host`` value into its host name and explicit port, if any."""
    if host.startswith(b"["):
        end = host.find(b"]")
        if end < 0:
            return host, None
        name, rest = host[: end + 1], host[end + 1 :]
    else:
        name, colon, port = host.partition(b":")
        rest = b":" + port if colon else b""
    if rest.startswith(b":") and rest[1:]:
        port_number = _port(rest[1:])
        return name, port_number or None
    return name, None
