"""The sans-I/O core of the SCGI client: the request encoder (and the response parser).

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

:class:`ResponseParser`, which reads the CGI response an SCGI server sends back,
lives in :mod:`scgi_twisted._clientresponse`; its names are found here too.

This module imports nothing from Twisted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import quote_from_bytes, unquote_to_bytes

from ._clientresponse import (
    DEFAULT_MAX_HEAD_SIZE,
    DEFAULT_MAX_RESPONSE_HEADERS,
    ResponseBody,
    ResponseEnded,
    ResponseEvent,
    ResponseHead,
    ResponseParser,
    ResponseState,
)
from ._errors import LocalProtocolError
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

_URI_SAFE = "".join(chr(byte) for byte in range(0x21, 0x7F))

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
