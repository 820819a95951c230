r"""The built-in page of ``twistd scgi``: the request as the application sees it.

``twistd -n scgi`` without ``--resource``, ``--wsgi`` or ``--path`` serves
:class:`DefaultPage` at every path.  It is the first thing a user sees and the tool to
check a frontend's configuration, so it shows what a ``twisted.web`` application would
see (method, URI, ``prepath``/``postpath``, client address, ``isSecure()``, host and
port, ``prePathURL()``, headers, arguments, body size), each with the SCGI variables it
comes from, and then the raw SCGI variables exactly as the frontend sent them.

Strategy: :func:`_inspect` collects every value once, as text, into a
:class:`_Snapshot`; the HTML and the JSON (``?format=json``) renderings are both made
from it.  Everything that comes from the request is hostile: the HTML rendering passes
every value through :func:`_escape` (HTML-escaping after making control and bidi
characters visible), and the responses carry a strict Content-Security-Policy,
``nosniff`` and ``no-store``.  Bytes are shown as UTF-8, undecodable bytes as ``\xNN``.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import metadata
from typing import IO, Any, Protocol, cast

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IAddress
from twisted.web.http_headers import Headers
from twisted.web.resource import Resource
from twisted.web.server import Request

import twisted

from ._channel import getSCGIVariables
from ._environ import SCGIVariables, client_address

__all__ = ["DefaultPage"]

_INVISIBLE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]"
)


def _visible(character: re.Match[str]) -> str:
    """Spell out one control, format or bidi character."""
    code = ord(character.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _text(value: bytes | str) -> str:
    r"""Return a request value as printable text.

    Bytes are decoded as UTF-8, with undecodable bytes as ``\xNN``; control characters
    and invisible or bidi-reordering characters are spelled out as ``\xNN``/``\uNNNN``
    so that a hostile value cannot hide or reorder text.
    """
    if isinstance(value, bytes):
        value = value.decode("utf-8", "backslashreplace")
    return _INVISIBLE.sub(_visible, value)


def _escape(value: bytes | str) -> str:
    """Return a request value as printable text, escaped for HTML."""
    return html.escape(_text(value), quote=True)


class _Request(Protocol):
    """The part of ``twisted.web.server.Request`` that the page reads.

    It is spelled out here because ``twisted.web.http`` is not typed.
    """

    method: bytes
    uri: bytes
    clientproto: bytes
    prepath: list[bytes] | None
    postpath: list[bytes] | None
    args: dict[bytes, list[bytes]] | None
    content: IO[bytes] | None
    requestHeaders: Headers

    def getClientAddress(self) -> IAddress:
        """Return the client's address."""

    def isSecure(self) -> bool:
        """Return whether the client used TLS."""

    def getRequestHostname(self) -> bytes:
        """Return the host name the client asked for."""

    def getHost(self) -> IPv4Address:
        """Return the address the client connected to."""

    def prePathURL(self) -> bytes:
        """Return the URL of the resource that is rendering."""

    def getHeader(self, name: bytes) -> bytes | None:
        """Return a request header."""

    def setHeader(self, name: bytes, value: bytes) -> None:
        """Set a response header."""


@lru_cache(maxsize=1)
def _versions() -> str:
    """Return the versions shown in the page's footer."""
    try:
        ours = metadata.version("scgi-twisted")
    except metadata.PackageNotFoundError:
        ours = "(not installed)"
    return f"scgi_twisted {ours} on Twisted {twisted.__version__}"


@dataclass
class _Field:
    """One line of the request table.

    :ivar label: what the value is.
    :ivar api: the Twisted API that gives it to the application.
    :ivar source: the SCGI variables it comes from.
    :ivar value: the value, as text (already made printable, not yet escaped).
    :ivar css: a CSS class for the value, if any.
    """

    label: str
    api: str
    source: str
    value: str
    css: str = ""


@dataclass
class _Snapshot:
    """Everything the page shows about one request, as text.

    :ivar request_line: ``(method, uri, protocol)``.
    :ivar fields: the request table, as the application sees the request.
    :ivar args: ``(name, values)`` pairs of ``request.args``.
    :ivar headers: ``(name, value)`` pairs of the request headers.
    :ivar variables: the raw SCGI ``(name, value)`` pairs in arrival order, or
        ``None`` if the request did not arrive over SCGI.
    :ivar notes: advice about what the frontend sent.
    :ivar data: the JSON rendering.
    """

    request_line: tuple[str, str, str]
    fields: list[_Field]
    args: list[tuple[str, list[str]]]
    headers: list[tuple[str, str]]
    variables: list[tuple[str, str]] | None
    notes: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)


def _bodyLength(request: _Request) -> int:
    """Return how many body bytes the request carried, leaving its file at 0."""
    content = request.content
    if content is None:
        return 0
    position = content.tell()
    length = content.seek(0, 2)
    content.seek(position)
    return int(length)


def _client(request: _Request) -> tuple[str, str, int | None]:
    """Return the client's address as ``(kind, host, port)``."""
    address = request.getClientAddress()
    if isinstance(address, IPv6Address):
        return "IPv6", address.host, address.port
    if isinstance(address, IPv4Address):
        return "IPv4", address.host, address.port
    return type(address).__name__, str(address), None


def _notes(
    variables: SCGIVariables | None, secure: bool, headers: Headers
) -> list[str]:
    """Return advice about the variables the frontend sent."""
    if variables is None:
        return [
            "This request did not arrive over SCGI, so there are no SCGI variables "
            "to show."
        ]
    notes = []
    remote = variables.get("REMOTE_ADDR")
    _, host, _ = client_address(variables)
    if not remote or (host == "0.0.0.0" and remote != b"0.0.0.0"):
        notes.append(
            "The frontend sent no IP address in REMOTE_ADDR, so getClientAddress() "
            "gives the placeholder 0.0.0.0 (nginx: include scgi_params)."
        )
    if "REQUEST_URI" not in variables:
        notes.append(
            "The frontend sent no REQUEST_URI: the URI was rebuilt from SCRIPT_NAME, "
            "PATH_INFO and QUERY_STRING."
        )
    script_name = variables.get("SCRIPT_NAME")
    if script_name not in (None, b"", b"/") and "PATH_INFO" not in variables:
        notes.append(
            "The frontend sent SCRIPT_NAME without PATH_INFO, so SCRIPT_NAME was not "
            "used to find the mount point (Apache: SetEnvIf Request_URI . "
            "proxy-scgi-pathinfo; or use --mount)."
        )
    forwarded = headers.getRawHeaders(b"x-forwarded-proto") or []
    if not secure and any(b"https" in value.lower() for value in forwarded):
        notes.append(
            "The request says X-Forwarded-Proto: https, which is never trusted: for "
            "isSecure() to be true the frontend must send HTTPS=on or "
            "REQUEST_SCHEME=https."
        )
    return notes


def _inspect(request: _Request) -> _Snapshot:
    """Collect what the page shows about ``request``."""
    variables = getSCGIVariables(request)
    method, uri, protocol = (
        _text(request.method),
        _text(request.uri),
        _text(request.clientproto),
    )
    prepath = list(request.prepath or [])
    postpath = list(request.postpath or [])
    kind, client_host, client_port = _client(request)
    client = _text(client_host)
    if client_port is not None:
        client += f", port {client_port}"
    secure = bool(request.isSecure())
    hostname = _text(request.getRequestHostname())
    port = request.getHost().port
    url: str | None
    try:
        url = url_text = _text(request.prePathURL())
    except Exception as error:  # a Host that is not ASCII, for one
        url = None
        url_text = f"(cannot be built: {_text(str(error))})"
    body = _bodyLength(request)
    content_type = request.getHeader(b"content-type")
    body_text = f"{body} byte{'' if body == 1 else 's'}"
    if content_type:
        body_text += f", {_text(content_type)}"
    args = [
        (_text(name), [_text(value) for value in values])
        for name, values in (request.args or {}).items()
    ]
    headers = [
        (_text(name), _text(value))
        for name, values in request.requestHeaders.getAllRawHeaders()
        for value in values
    ]
    raw = None if variables is None else variables.raw
    pairs = None if raw is None else [(_text(n), _text(v)) for n, v in raw]
    fields = [
        _Field("Method", "request.method", "REQUEST_METHOD", method),
        _Field("URI", "request.uri", "REQUEST_URI", uri),
        _Field("Protocol", "request.clientproto", "SERVER_PROTOCOL", protocol),
        _Field(
            "prepath",
            "request.prepath",
            "SCRIPT_NAME + PATH_INFO, or --mount",
            _text(repr(prepath)),
        ),
        _Field("postpath", "request.postpath", "REQUEST_URI", _text(repr(postpath))),
        _Field(
            "Client address",
            "request.getClientAddress()",
            "REMOTE_ADDR, REMOTE_PORT",
            f"{client} ({kind})",
        ),
        _Field(
            "Secure",
            "request.isSecure()",
            "HTTPS, REQUEST_SCHEME",
            "yes (https)" if secure else "no (http)",
            "yes" if secure else "no",
        ),
        _Field(
            "Host", "request.getRequestHostname()", "HTTP_HOST, SERVER_NAME", hostname
        ),
        _Field("Port", "request.getHost().port", "HTTP_HOST, SERVER_PORT", str(port)),
        _Field("URL", "request.prePathURL()", "all of the above", url_text),
        _Field("Body", "request.content", "CONTENT_LENGTH, CONTENT_TYPE", body_text),
    ]
    data: dict[str, Any] = {
        "method": method,
        "uri": uri,
        "protocol": protocol,
        "prepath": [_text(segment) for segment in prepath],
        "postpath": [_text(segment) for segment in postpath],
        "client": {"type": kind, "host": _text(client_host), "port": client_port},
        "secure": secure,
        "host": hostname,
        "port": port,
        "url": url,
        "args": {name: values for name, values in args},
        "headers": [list(pair) for pair in headers],
        "body_length": body,
        "scgi": None if pairs is None else [list(pair) for pair in pairs],
    }
    notes = _notes(variables, secure, request.requestHeaders)
    data["notes"] = notes
    return _Snapshot(
        request_line=(method, uri, protocol),
        fields=fields,
        args=args,
        headers=headers,
        variables=pairs,
        notes=notes,
        data=data,
    )


_STYLE = """
:root{color-scheme:light dark;--bg:#f4f6f9;--card:#fff;--text:#1c2330;--muted:#5f6b7c;
--line:#e2e6ec;--accent:#2456a6;--ok:#17693f;--okbg:#e3f3ea;--warn:#7a4d00;
--warnbg:#fff3d1;--chip:#eef1f5}
@media (prefers-color-scheme:dark){:root{--bg:#11151b;--card:#1a2028;--text:#e3e8ef;
--muted:#9aa5b4;--line:#2b333e;--accent:#7fb0ff;--ok:#6ad7a0;--okbg:#15352a;
--warn:#f3c56e;--warnbg:#3a2d10;--chip:#242c37}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--text);
font:15px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif}
main{max-width:1060px;margin:0 auto;padding:36px 20px 56px}
code,td,.line,.api{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,
"Liberation Mono",monospace}
.badge{display:inline-block;padding:3px 12px;border-radius:999px;font-size:13px;
font-weight:600;background:var(--okbg);color:var(--ok)}
h1{font-size:28px;line-height:1.25;margin:12px 0 8px}
.lead{color:var(--muted);margin:0 0 22px;max-width:760px}
.lead code,.next code{background:var(--chip);padding:1px 5px;border-radius:4px;
font-size:13.5px}
.line{background:var(--card);border:1px solid var(--line);border-radius:12px;
padding:16px 18px;font-size:17px;word-break:break-all}
.line .method{color:var(--accent);font-weight:700;margin-right:10px}
.line .protocol{color:var(--muted);margin-left:10px}
.notes{background:var(--warnbg);color:var(--warn);border-radius:12px;
padding:12px 18px;margin:18px 0}
.notes ul{margin:0;padding-left:20px}
section{background:var(--card);border:1px solid var(--line);border-radius:12px;
margin:18px 0;overflow:hidden}
h2{font-size:15px;margin:0;padding:12px 18px;border-bottom:1px solid var(--line)}
h2 code{font-size:13px;font-weight:400;color:var(--muted);margin-left:8px}
h2 .count{float:right;font-size:12px;font-weight:600;color:var(--muted);
background:var(--chip);border-radius:999px;padding:1px 9px}
table{width:100%;border-collapse:collapse;table-layout:fixed}
th,td{text-align:left;vertical-align:top;padding:9px 18px;
border-top:1px solid var(--line)}
tr:first-child th,tr:first-child td{border-top:0}
th{width:34%;font-weight:600;overflow-wrap:anywhere}
.vars th{font:600 13.5px/1.5 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
td{font-size:13.5px;white-space:pre-wrap;word-break:break-all}
.api{display:block;font-weight:400;font-size:12px;color:var(--muted);margin-top:2px;
overflow-wrap:anywhere}
.yes{color:var(--ok);font-weight:600}
.empty,.none{color:var(--muted);font-style:italic;font-family:inherit}
.repeat{font-family:system-ui,sans-serif;font-size:11px;color:var(--muted);
border:1px solid var(--line);border-radius:4px;padding:0 5px;margin-left:6px}
.next{color:var(--muted);font-size:14px;margin-top:26px}
.next p{margin:6px 0}
footer{color:var(--muted);font-size:13px;margin-top:20px}
footer a{color:var(--accent)}
@media (max-width:640px){main{padding:20px 12px 40px}h1{font-size:22px}
table,tbody,tr,th,td{display:block;width:auto}td{border-top:0;padding-top:0}}
"""

_SECURITY_HEADERS = [
    (
        b"Content-Security-Policy",
        b"default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        b"base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    (b"X-Content-Type-Options", b"nosniff"),
    (b"Cache-Control", b"no-store"),
    (b"Referrer-Policy", b"no-referrer"),
]


def _cell(text: str) -> str:
    """Return an escaped table cell's contents; an empty value is marked as such."""
    if not text:
        return '<span class="empty">(empty)</span>'
    return html.escape(text, quote=True)


def _pairsTable(pairs: list[tuple[str, str]], markRepeats: bool = False) -> str:
    """Return the rows of a name/value table, escaped."""
    seen: set[str] = set()
    rows = []
    for name, value in pairs:
        tag = ""
        if markRepeats and name in seen:
            tag = '<span class="repeat">repeated</span>'
        seen.add(name)
        rows.append(f"<tr><th>{_cell(name)}{tag}</th><td>{_cell(value)}</td></tr>")
    return "\n".join(rows)


def _section(title: str, count: int | None, body: str) -> str:
    """Return a titled card."""
    counter = "" if count is None else f'<span class="count">{count}</span>'
    return f"<section><h2>{title}{counter}</h2>\n{body}\n</section>"


def _renderHTML(snapshot: _Snapshot) -> bytes:
    """Return the HTML page for a snapshot."""
    method, uri, protocol = snapshot.request_line
    rows = []
    for item in snapshot.fields:
        css = f' class="{item.css}"' if item.css else ""
        rows.append(
            f'<tr><th>{item.label}<span class="api">{item.api}</span><span class="api">'
            f"\u2190 {item.source}</span></th><td{css}>{_cell(item.value)}</td></tr>"
        )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="robots" content="noindex">',
        '<link rel="icon" href="data:,">',
        "<title>scgi_twisted: request received</title>",
        f"<style>{_STYLE}</style></head><body><main>",
        "<header>",
        '<span class="badge">\u2713 scgi_twisted is serving</span>',
        "<h1>Your frontend reached this application over SCGI.</h1>",
        '<p class="lead">This is the built-in page of <code>twistd scgi</code>. It '
        "shows this request exactly as a <code>twisted.web</code> application behind "
        "your frontend sees it, and where each value comes from. Check it against "
        "the URL you typed, then serve your own application.</p>",
        "</header>",
        '<div class="line"><span class="method">'
        f'{html.escape(method)}</span>{html.escape(uri)}<span class="protocol">'
        f"{html.escape(protocol)}</span></div>",
    ]
    if snapshot.notes:
        items = "".join(f"<li>{html.escape(note)}</li>" for note in snapshot.notes)
        parts.append(f'<div class="notes"><ul>{items}</ul></div>')
    parts.append(
        _section(
            "The request, as the application sees it",
            None,
            "<table>" + "\n".join(rows) + "</table>",
        )
    )
    if snapshot.args:
        argPairs = [(name, ", ".join(values)) for name, values in snapshot.args]
        parts.append(
            _section(
                "Arguments <code>request.args</code>",
                len(snapshot.args),
                "<table>" + _pairsTable(argPairs) + "</table>",
            )
        )
    parts.append(
        _section(
            "Request headers <code>request.requestHeaders</code>",
            len(snapshot.headers),
            "<table>" + _pairsTable(snapshot.headers) + "</table>"
            if snapshot.headers
            else '<table><tr><td class="none">No headers.</td></tr></table>',
        )
    )
    if snapshot.variables is None:
        variables = (
            '<table><tr><td class="none">This request did not arrive over SCGI.'
            "</td></tr></table>"
        )
        count = None
    else:
        variables = (
            '<table class="vars">' + _pairsTable(snapshot.variables, True) + "</table>"
        )
        count = len(snapshot.variables)
    parts.append(
        _section(
            "SCGI variables, as the frontend sent them "
            "<code>getSCGIVariables(request).raw</code>",
            count,
            variables,
        )
    )
    parts += [
        '<div class="next">',
        "<p><strong>Next:</strong> serve your own application with "
        "<code>twistd -n scgi --resource myapp.root</code>, "
        "<code>--wsgi myapp.application</code> or <code>--path /srv/www</code>; "
        "<code>twistd scgi --help</code> lists every option.</p>",
        "</div>",
        f"<footer>{html.escape(_versions())} \u00b7 "
        '<a href="?format=json">this request as JSON</a></footer>',
        "</main></body></html>",
        "",
    ]
    return "\n".join(parts).encode("utf-8")


def _renderJSON(snapshot: _Snapshot) -> bytes:
    """Return the JSON rendering of a snapshot.

    ``<``, ``>`` and ``&`` are escaped too, so the document is inert even if a browser
    were to sniff it as HTML.
    """
    text = json.dumps(snapshot.data, indent=2, ensure_ascii=True)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return text.encode("ascii") + b"\n"


class DefaultPage(Resource):
    """A page that shows the request as the application sees it.

    It answers every method at every path below it (it is a leaf, so ``postpath``
    shows the rest of the path); a ``HEAD`` gets the headers of the ``GET`` only.
    Add ``?format=json`` for a machine-readable rendering with the same facts.
    """

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]

    def render(self, request: Request) -> bytes:
        """Render the page, as HTML or (with ``?format=json``) as JSON.

        :param request: the request to show.
        :returns: the body; empty for ``HEAD``, whose Content-Length is still that of
            the body a ``GET`` would get.
        """
        seen = cast(_Request, request)
        snapshot = _inspect(seen)
        if (seen.args or {}).get(b"format") == [b"json"]:
            body = _renderJSON(snapshot)
            contentType = b"application/json"
        else:
            body = _renderHTML(snapshot)
            contentType = b"text/html; charset=utf-8"
        seen.setHeader(b"Content-Type", contentType)
        for name, value in _SECURITY_HEADERS:
            seen.setHeader(name, value)
        if seen.method == b"HEAD":
            seen.setHeader(b"Content-Length", b"%d" % len(body))
            return b""
        return body
