"""The one seam to Twisted's private attributes: every touch of one is here.

The package relies on a few names Twisted does not promise to keep (by its
compatibility policy, a name starting with ``_`` may change in any release).  Each is
read or written only by a function of this module, which:

* says which private name it touches and why the package needs it;
* checks, once at import, that the name is there and behaves as expected, and
  otherwise takes a public fallback that keeps behaviour correct (maybe slower, or
  with a plainer error message; the docstring says which);
* names the public API we would propose to Twisted, so that the touch can go.

``tests/test_internals.py`` runs each function both ways on the installed Twisted and
names the Twisted versions it was checked against; a test there keeps every other
module of the package off Twisted's private names.  ``docs/internals.md`` lists the
same, for users.

This module imports only Twisted and the standard library: it sits below the channel
and beside the environ mapping in the package's layers.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, cast

from twisted.internet import tcp, unix
from twisted.logger import Logger
from twisted.web import resource as _resource
from twisted.web import server as _server
from twisted.web.http import Request
from twisted.web.http_headers import Headers

__all__ = [
    "addRawHeaders",
    "answerStar",
    "applyEncoder",
    "cleanUpRequest",
    "clientEndpointAddress",
    "closeWithoutShutdown",
    "headerKey",
    "initRequest",
    "leanRequest",
    "logRequestInfo",
    "portFromListeningDescriptor",
    "receiveRequest",
    "responseHeaderStore",
    "serverEndpointAddress",
    "shareRequestLogger",
    "siteParsesForms",
    "unixServerEndpointPath",
]

_log = Logger()

HEADER_KEYS_CACHED = 1024
"""How many header names :func:`headerKey` remembers (least recently used first out);
the names come from the peer, so the cache is bounded."""


# --- Headers._rawHeaders ------------------------------------------------------------


def _headersStoreRaw() -> bool:
    """Return whether ``Headers`` keeps its values in a ``_rawHeaders`` dict of lists.

    Every Twisted release since 2010 does (25.5 and 26.10 among them).
    """
    probe = Headers()
    probe.addRawHeader(b"x-probe", b"1")
    raw = getattr(probe, "_rawHeaders", None)
    return isinstance(raw, dict) and list(raw.values()) == [[b"1"]]


RAW_HEADERS = _headersStoreRaw()
"""Whether :func:`addRawHeaders` may fill ``Headers._rawHeaders`` directly."""


@lru_cache(maxsize=HEADER_KEYS_CACHED)
def headerKey(name: bytes) -> bytes:
    """Return the key ``Headers`` files header ``name`` under, asking ``Headers``.

    Only called when :data:`RAW_HEADERS` holds.  The key is what ``addRawHeader``
    made of the name (its canonical form), so no rule of Twisted's is copied here.
    """
    probe = Headers()
    probe.addRawHeader(name, b"")
    (key,) = probe._rawHeaders
    return key


_headerKeys: dict[bytes, bytes] = {}
"""The keys :func:`headerKey` gave, by name, for :func:`addRawHeaders`: a plain dict
is the cheaper look-up per header.  It keeps the first :data:`HEADER_KEYS_CACHED`
names and no more (a frontend's headers come early and stay the same)."""


def addRawHeaders(target: Headers, headers: Sequence[tuple[bytes, bytes]]) -> None:
    """Add request headers to ``target``, as ``addRawHeader`` does for each, in order.

    Private name: ``Headers._rawHeaders`` (the dict of canonical name to values).

    Why: a request's headers are copied into its ``requestHeaders`` once per request;
    ``addRawHeader`` encodes the name and scans the value for line breaks on every
    call.  The values have none (the parser refuses them), and each name's key is
    looked up once (:func:`headerKey`), so the stock ``Headers`` is filled directly.

    Fallback: without a ``_rawHeaders`` dict of lists (:data:`RAW_HEADERS` false),
    or for a subclass of ``Headers``, each header goes through the public
    ``addRawHeader``: the same result, more slowly.

    Upstream: ``Headers.addRawHeaders(pairs)`` (or ``Headers.fromRawPairs``), adding
    many values in one call.

    :param target: the headers to add to (existing values are kept).
    :param headers: ``(name, value)`` pairs, values without line breaks.
    """
    if not RAW_HEADERS or type(target) is not Headers:
        for name, value in headers:
            target.addRawHeader(name, value)
        return
    raw = target._rawHeaders
    known = _headerKeys
    for name, value in headers:
        canonical = known.get(name)
        if canonical is None:
            canonical = headerKey(name)
            if len(known) < HEADER_KEYS_CACHED:
                known[name] = canonical
        values = raw.get(canonical)
        if values is None:
            raw[canonical] = [value]
        else:
            values.append(value)


# --- Request._parsePOSTFormSubmission and Site._parsePOSTFormSubmission ----------

FORM_FLAG = "_parsePOSTFormSubmission" in getattr(Request, "__annotations__", {})
"""Whether ``Request`` declares the ``_parsePOSTFormSubmission`` flag
:func:`receiveRequest` switches (Twisted 22.10 and later do)."""


def _cannotBeForm(request: Any) -> bool:
    """Return whether ``Request.requestReceived`` would surely not parse a form body.

    It parses one when the media type of the Content-Type, as the email package reads
    it, is ``application/x-www-form-urlencoded`` or ``multipart/form-data``.  Both hold
    ``form``, and the email package neither invents nor decodes letters of a media
    type, so a value without ``form`` (in any case) is not a form.  A request without
    the private flag (or with it off) is never skipped.
    """
    if not getattr(request, "_parsePOSTFormSubmission", False):
        return False
    values = request.requestHeaders.getRawHeaders(b"content-type")
    return bool(values) and b"form" not in values[0].lower()


def receiveRequest(request: Any, method: bytes, uri: bytes, clientproto: bytes) -> None:
    """Call ``request.requestReceived``, skipping a form parse that finds no form.

    Private name: ``Request._parsePOSTFormSubmission`` (set from the site's
    ``parsePOSTFormSubmission``), switched off for the call and back on after it.

    Why: for every POST, ``requestReceived`` parses the Content-Type with the email
    package only to find, for a JSON or binary body, that it is not a form.  When
    the type surely is no form (:func:`_cannotBeForm`) the flag is off for the
    call, and the request reaches the same state without that parse.

    Fallback: without the flag (:data:`FORM_FLAG` false, or a request without
    it), the request is handed over as it is: the parse runs, the same result, more
    slowly.  A flag Twisted no longer
    honours costs nothing either: the parse runs.

    Upstream: decide on the media type before the email package, in
    ``Request.requestReceived`` (a cheap test for ``form`` in the Content-Type).
    """
    if method == b"POST" and FORM_FLAG and _cannotBeForm(request):
        request._parsePOSTFormSubmission = False
        try:
            request.requestReceived(method, uri, clientproto)
        finally:
            request._parsePOSTFormSubmission = True
    else:
        request.requestReceived(method, uri, clientproto)


def siteParsesForms(site: Any) -> bool:
    """Return whether ``site`` was made with ``parsePOSTFormSubmission`` on.

    Private name: ``Site._parsePOSTFormSubmission``.

    Why: ``SCGISite.sharing(site)`` serves ``site``'s tree over SCGI with the same
    settings, this one included.

    Fallback: without the attribute, Twisted's default (``True``: forms are parsed).
    A site made with ``parsePOSTFormSubmission=False`` then parses forms over SCGI;
    pass ``parsePOSTFormSubmission=False`` to ``sharing`` to keep it off.

    Upstream: a public read-only ``Site.parsePOSTFormSubmission``.
    """
    value = getattr(site, "_parsePOSTFormSubmission", True)
    return value if isinstance(value, bool) else True


# --- endpoint attributes --------------------------------------------------------------

PRIVATE_ENDPOINTS = True
"""Whether the endpoint functions read the endpoints' private attributes (tests
switch it off to run the fallbacks)."""


def clientEndpointAddress(endpoint: object) -> str | bytes | tuple[str, int] | None:
    """Return where a client endpoint connects: a unix path, or a host and port.

    Private names: ``UNIXClientEndpoint._path``, ``HostnameEndpoint._hostText``,
    ``TCP4ClientEndpoint._host`` / ``TCP6ClientEndpoint._host``, and ``_port`` of
    all three (and ``SSL4ClientEndpoint``).

    Why: only to name the endpoint in the client's error messages.

    Fallback: ``None``, and the message names the endpoint by its ``repr``.

    Upstream: a public ``__repr__`` (or ``host``/``port``/``path`` attributes) for
    every stock endpoint, as ``HostnameEndpoint`` has a ``__repr__`` already.

    :returns: the path (``str`` or ``bytes``), ``(host, port)``, or ``None``.
    """
    if not PRIVATE_ENDPOINTS:
        return None
    path = getattr(endpoint, "_path", None)
    if isinstance(path, str | bytes):
        return path
    host = getattr(endpoint, "_hostText", None) or getattr(endpoint, "_host", None)
    port = getattr(endpoint, "_port", None)
    if isinstance(host, str | bytes) and isinstance(port, int):
        text = host.decode("ascii", "replace") if isinstance(host, bytes) else host
        return text, port
    return None


def _splitDescription(description: str) -> tuple[str, list[str], dict[str, str]]:
    r"""Split a server endpoint string as ``serverFromString`` does.

    Colons separate the arguments, ``\`` escapes the next character, and the first
    unescaped ``=`` of an argument makes it a keyword.

    :returns: the kind (the first argument), the positional arguments after it and
        the keywords.
    """
    arguments: list[tuple[str, str]] = []
    current: list[str] = []
    key: str | None = None
    escaped = False
    for letter in [*description, ":"]:
        if escaped:
            current.append(letter)
            escaped = False
        elif letter == "\\":
            escaped = True
        elif letter == ":":
            arguments.append(("" if key is None else key, "".join(current)))
            current, key = [], None
        elif letter == "=" and key is None:
            key, current = "".join(current), []
        else:
            current.append(letter)
    positional = [value for name, value in arguments[1:] if not name]
    keywords = {name: value for name, value in arguments[1:] if name}
    return arguments[0][1], positional, keywords


_INTERFACES = {"tcp": (1, ""), "tcp6": (2, "::"), "ssl": (4, "")}
"""For each stock kind with an interface: the interface's position among the
positional arguments (after the port), and its default."""


def _parsedServerAddress(description: str) -> tuple[str, int] | None:
    """Return the interface and port a ``tcp:``, ``tcp6:`` or ``ssl:`` string names."""
    kind, positional, keywords = _splitDescription(description)
    if kind not in _INTERFACES:
        return None
    index, default = _INTERFACES[kind]
    port = keywords.get("port", positional[0] if positional else "")
    interface = positional[index] if len(positional) > index else default
    try:
        return keywords.get("interface", interface), int(port)
    except ValueError:
        return None


def serverEndpointAddress(endpoint: object, description: str) -> tuple[str, int] | None:
    """Return the interface and port a TCP, TCP6 or SSL server endpoint listens on.

    Private names: ``_interface`` and ``_port`` of ``TCP4ServerEndpoint``,
    ``TCP6ServerEndpoint`` and ``SSL4ServerEndpoint``.

    Why: to refuse a port outside 0-65535 while the options are parsed (not at
    start-up), and to warn about a listener on every interface.

    Fallback: the endpoint string the endpoint was made from is read instead,
    with ``serverFromString``'s syntax and defaults for ``tcp:``, ``tcp6:`` and
    ``ssl:`` (other kinds give ``None``, as they do with the attributes).

    Upstream: public ``interface`` and ``port`` attributes on these endpoints.

    :param endpoint: the server endpoint.
    :param description: the endpoint string it was parsed from.
    :returns: ``(interface, port)``, or ``None`` for another kind of endpoint.
    """
    if PRIVATE_ENDPOINTS and hasattr(endpoint, "_port"):
        port = getattr(endpoint, "_port", None)
        interface = getattr(endpoint, "_interface", None)
        if isinstance(port, int) and isinstance(interface, str):
            return interface, port
        return None
    return _parsedServerAddress(description)


def unixServerEndpointPath(endpoint: object, description: str) -> str | bytes | None:
    """Return the path a ``UNIXServerEndpoint`` listens on.

    Private name: ``UNIXServerEndpoint._address``.

    Why: to refuse ``unix:`` without a path while the options are parsed.

    Fallback: the path in the endpoint string (``unix:PATH`` or ``address=PATH``).

    Upstream: a public ``address`` attribute on ``UNIXServerEndpoint``.

    :returns: the path, or ``None`` for another kind of endpoint.
    """
    if PRIVATE_ENDPOINTS and hasattr(endpoint, "_address"):
        address = getattr(endpoint, "_address", None)
        return address if isinstance(address, str | bytes) else None
    kind, positional, keywords = _splitDescription(description)
    if kind != "unix":
        return None
    return keywords.get("address", positional[0] if positional else "")


# --- unix.Port._fromListeningDescriptor and tcp._SocketCloser._shouldShutdown -----


ADOPT_PRIVATE = callable(getattr(unix.Port, "_fromListeningDescriptor", None))
"""Whether Twisted's unix port still has ``_fromListeningDescriptor``."""


def portFromListeningDescriptor(
    portClass: type[Any], reactor: Any, fileno: int, factory: Any
) -> Any:
    """Return a ``unix.Port`` (of ``portClass``) on a listening socket, not started.

    Private name: ``unix.Port._fromListeningDescriptor`` (what
    ``reactor.adoptStreamPort`` uses for a unix socket).

    Why: the port must be our subclass (``scgi_twisted._systemd``), which keeps the
    socket file's mode and the file itself; ``adoptStreamPort`` builds Twisted's own
    class, which sets the mode to ``0666`` and removes the file when it stops.

    Fallback: the public ``reactor.adoptStreamPort(fileno, AF_UNIX, factory)``,
    already listening, with a warning logged: requests are served the same, but the
    socket file gets mode ``0666`` and is removed when the port stops, as with
    Twisted's own ``systemd:`` endpoint.  The caller must not start it again; it
    can tell by ``isinstance(port, portClass)``.

    Upstream: a public ``IReactorSocket.adoptStreamPort`` option (or a public
    classmethod) that keeps a unix socket's file and mode, for sockets the process
    does not own.
    """
    if ADOPT_PRIVATE:
        return portClass._fromListeningDescriptor(reactor, fileno, factory)
    _log.warn(
        "This Twisted has no unix.Port._fromListeningDescriptor: the inherited "
        "socket is adopted by Twisted, which sets its file's mode to 0666 and "
        "removes the file when it stops listening"
    )
    return reactor.adoptStreamPort(fileno, socket.AF_UNIX, factory)


SHUTDOWN_FLAG = isinstance(getattr(tcp.Port, "_shouldShutdown", None), bool)
"""Whether Twisted's ports still have the ``_shouldShutdown`` switch."""


class _NoShutdown:
    """A socket whose ``shutdown`` does nothing: closing closes one descriptor."""

    def __init__(self, sock: socket.socket) -> None:
        """Wrap ``sock``."""
        self.wrapped = sock

    def shutdown(self, how: int) -> None:
        """Do nothing: the socket is shared with other processes."""

    def __getattr__(self, name: str) -> Any:
        """Everything else is the socket's."""
        return getattr(self.wrapped, name)


def closeWithoutShutdown(port: Any) -> None:
    """Make a listening ``port`` close only its descriptor when it stops.

    Call it once the port listens.

    Private name: ``_shouldShutdown`` (of ``tcp._SocketCloser``, which ports
    inherit); Twisted turns it off itself for sockets adopted over TCP.

    Why: ``shutdown()`` acts on the socket, not on one descriptor: for a socket
    shared with systemd or other workers it would stop the listening everywhere.

    Fallback: the port's public ``socket`` attribute is wrapped in an object whose
    ``shutdown`` does nothing (every accept then goes through the wrapper).

    Upstream: a public argument of ``unix.Port`` (or of ``adoptStreamPort``) for a
    shared socket, as the TCP port has internally.
    """
    if SHUTDOWN_FLAG:
        port._shouldShutdown = False
    else:
        port.socket = _NoShutdown(port.socket)


# --- server.Request's own state: SCGIRequest's lean paths ---------------------------

_REQUEST_ATTRIBUTES = [
    "notifications",
    "channel",
    "client",
    "host",
    "requestHeaders",
    "received_cookies",
    "responseHeaders",
    "cookies",
    "transport",
    "queued",
    "_parsePOSTFormSubmission",
    "_adapterCache",
]
"""The attributes ``server.Request.__init__`` sets, in its order."""


class _ProbeChannel:
    """The least a channel offers ``Request.__init__``, for :data:`REQUEST_STATE`."""

    transport = None

    def __init__(self) -> None:
        """Be the channel and its site, which parses forms."""
        self.site = self
        self._parsePOSTFormSubmission = True

    def getPeer(self) -> None:
        """No peer."""

    def getHost(self) -> None:
        """No host."""


def _requestStateKnown() -> bool:
    """Return whether ``server.Request`` keeps the state SCGIRequest shares with it.

    The names: ``_inFakeHead`` (``render`` fakes ``HEAD`` with it), ``_encoder``,
    ``_disconnected``, ``_handleStar``, ``_cleanup``, ``_log``, the interface
    ``resource._IEncodingResource``, and the attributes ``__init__`` sets
    (:data:`_REQUEST_ATTRIBUTES`, ``_parsePOSTFormSubmission`` and
    ``_adapterCache`` among them, in that order).
    """
    known = (
        getattr(_resource, "_IEncodingResource", None) is not None
        and hasattr(_server.Request, "_inFakeHead")
        and hasattr(_server.Request, "_encoder")
        and hasattr(Request, "_disconnected")
        and hasattr(_server.Request, "_log")
        and callable(getattr(_server.Request, "_handleStar", None))
        and callable(getattr(Request, "_cleanup", None))
    )
    if not known:
        return False
    try:
        probe = _server.Request(_ProbeChannel())  # type: ignore[no-untyped-call]
    except Exception:
        return False
    return list(vars(probe)) == _REQUEST_ATTRIBUTES


REQUEST_STATE = _requestStateKnown()
"""Whether :class:`~scgi_twisted.SCGIRequest` may take its lean paths, which share
``server.Request``'s private state through the functions below."""


def initRequest(request: Any, channel: Any, parseForms: bool | None) -> None:
    """Set up ``request`` for ``channel`` as ``server.Request.__init__`` does.

    Private names: ``_parsePOSTFormSubmission`` (of the request, and of the site
    when ``parseForms`` is ``None``) and ``_adapterCache`` (``Componentized``).

    Why: the three ``__init__`` of ``server.Request``'s bases, in one step.

    Fallback: without :data:`REQUEST_STATE`, ``SCGIRequest`` calls the stock
    ``__init__``.

    Upstream: nothing to propose; the calls themselves are the cost.
    """
    if parseForms is None:
        parseForms = channel.site._parsePOSTFormSubmission
    # _REQUEST_ATTRIBUTES, in that order.
    request.notifications = []
    request.channel = channel
    request.client = channel.getPeer()
    request.host = channel.getHost()
    request.requestHeaders = Headers()
    request.received_cookies = {}
    request.responseHeaders = Headers()
    request.cookies = []
    request.transport = channel.transport
    request.queued = False
    request._parsePOSTFormSubmission = parseForms
    request._adapterCache = {}


def leanRequest(request: Any) -> bool:
    """Return whether ``request``'s response is in the state the lean paths cover.

    Private names: ``_disconnected``, ``_inFakeHead``, ``_encoder``.

    Why: ``SCGIRequest.write`` and ``finish`` hand a lost request, a faked
    ``HEAD`` and an encoded response to the stock methods.

    Fallback: without :data:`REQUEST_STATE`, every call takes the stock path.

    Upstream: none needed if ``Request`` took the chunked decision in a method of
    its own that a subclass could override.
    """
    return not (
        request._disconnected or request._inFakeHead or request._encoder is not None
    )


def applyEncoder(request: Any, found: object) -> None:
    """Give ``request`` the encoder of an ``EncodingResourceWrapper``, as ``process``.

    Private names: ``resource._IEncodingResource`` and ``Request._encoder``.
    """
    if _resource._IEncodingResource.providedBy(found):
        encoder = cast(Any, found).getEncoder(request)
        if encoder is not None:
            request._encoder = encoder


def answerStar(request: Any) -> None:
    """Answer a request for ``*`` as ``server.Request.process`` does.

    Private name: ``Request._handleStar``.
    """
    request._handleStar()


def cleanUpRequest(request: Any) -> None:
    """End ``request`` once finished, as ``http.Request.finish`` does.

    Private name: ``Request._cleanup``.
    """
    request._cleanup()


def _setStoresValues() -> bool:
    """Return whether ``setRawHeaders`` files a value as it is in ``_rawHeaders``.

    A value without CR or LF (and with every other byte, NUL and tab among them)
    is kept as given, in a list of its own, under the key :func:`headerKey` finds.
    """
    if not RAW_HEADERS:
        return False
    probe = Headers()
    value = b"a\tb\x00c\x7f\xff ;=,"
    given = [value]
    probe.setRawHeaders(b"x-PROBE", given)
    raw = getattr(probe, "_rawHeaders", None)
    return (
        isinstance(raw, dict)
        and raw == {headerKey(b"x-PROBE"): given}
        and raw[headerKey(b"x-PROBE")] is not given
    )


RESPONSE_RAW = _setStoresValues()
"""Whether :func:`responseHeaderStore` may hand out ``Headers._rawHeaders``."""


def responseHeaderStore(headers: object) -> dict[bytes, list[bytes]] | None:
    """Return the dict a stock ``Headers`` keeps its values in, or ``None``.

    Private name: ``Headers._rawHeaders`` (the dict of canonical name to values).

    Why: ``SCGIRequest`` sets ``Server``, ``Date``, the default ``Content-Type``
    and every ``setHeader`` of a bytes name and value without line breaks, and
    looks up ``Content-Type`` and ``Content-Length``, once or twice per request;
    each call of ``setRawHeaders`` or ``getRawHeaders`` encodes the name and
    scans the values again.  The caller files a new list of values under the key
    :func:`headerKey` gives, as ``setRawHeaders`` does for such values (checked
    at import), and treats a missing or empty list as ``getRawHeaders``' ``None``.

    Fallback: without that layout (:data:`RESPONSE_RAW` false), or for anything
    but a stock ``Headers`` (a resource may replace ``responseHeaders``), ``None``:
    the caller uses the public methods, with the same result, more slowly.

    Upstream: nothing to propose beyond cheaper ``setRawHeaders`` and
    ``getRawHeaders`` for a bytes name already in canonical form.
    """
    if RESPONSE_RAW and type(headers) is Headers:
        return headers._rawHeaders
    return None


def logRequestInfo(request: Any, message: str) -> None:
    """Log ``message`` with the request's own logger, as ``Request.write`` does.

    Private name: ``Request._log``.
    """
    request._log.info(message)


class _RequestLogger(Logger):
    """A class's logger that keeps ``server.Request``'s namespace in subclasses.

    A plain ``Logger`` class attribute names its events after the class it is read
    through, so a subclass's events would be ``scgi_twisted._request.SCGIRequest``
    where the stock ``Request`` logs ``twisted.web.server.Request``.
    """

    def __get__(self, instance: object, owner: type | None = None) -> Logger:
        """Return a logger with this namespace, whose source is the request."""
        source: Any = owner if instance is None else instance
        return Logger(self.namespace, source, observer=self.observer)


def shareRequestLogger(cls: type) -> None:
    """Make ``cls`` (a ``server.Request`` subclass) log as the stock ``Request``.

    Private name: ``Request._log``, the logger ``render``, ``processingFailed``
    and ``write`` log with.

    Why: a subclass of ``server.Request`` logs under its own class's name, and an
    observer filtering on ``twisted.web.server.Request`` would miss its events.

    Fallback: without :data:`REQUEST_STATE`, nothing is set; the events then carry
    the subclass's name.

    Upstream: none needed; a subclass may choose its own namespace.
    """
    if REQUEST_STATE:
        cls._log = _RequestLogger(  # type: ignore[attr-defined]
            f"{_server.Request.__module__}.{_server.Request.__name__}"
        )
