"""Endpoints for the SCGI client: endpoint strings, and naming an endpoint in errors.

:func:`clientEndpoint` reads the forms a person types (a Twisted client endpoint
string, the server's own ``--listen`` string, ``HOST:PORT``, a socket path);
:func:`describeEndpoint` names an endpoint object in an error message.  Both the library
client (:mod:`scgi_twisted.client`) and the command line (:mod:`scgi_twisted.cli`) use
them.
"""

from __future__ import annotations

import os
import re
from typing import Any, cast

from twisted.internet.endpoints import (
    HostnameEndpoint,
    UNIXClientEndpoint,
    clientFromString,
)
from twisted.internet.interfaces import IStreamClientEndpoint

from ._internals import clientEndpointAddress

__all__ = ["clientEndpoint", "describeEndpoint"]


def describeEndpoint(endpoint: object) -> str:
    """Describe an endpoint object for error messages, as well as it can."""
    address = clientEndpointAddress(endpoint)
    if isinstance(address, str | bytes):
        return f"unix:{os.fsdecode(address)}"
    if address is not None:
        text, port = address
        return f"[{text}]:{port}" if ":" in text else f"{text}:{port}"
    return repr(endpoint)


_BUILTIN_ENDPOINT_TYPES = frozenset({"tcp", "ssl", "unix", "tls"})
_HOST_PORT = re.compile(r"(?:\[([0-9A-Fa-f:.]+)\]|([^:\[\]/\\]+)):([0-9]{1,5})\Z")


def _isEndpointType(name: str) -> bool:
    """Return whether ``name`` is the prefix of an endpoint string parser."""
    if name.lower() in _BUILTIN_ENDPOINT_TYPES:
        return True
    from twisted.internet.interfaces import (  # noqa: PLC0415 - slow plugin scan
        IStreamClientEndpointStringParserWithReactor,
    )
    from twisted.plugin import getPlugins  # noqa: PLC0415

    return any(
        getattr(plugin, "prefix", "").lower() == name.lower()
        for plugin in getPlugins(IStreamClientEndpointStringParserWithReactor)
    )


def _splitEndpoint(description: str) -> list[str]:
    r"""Split an endpoint string on its unescaped colons, removing the escapes.

    ``tcp6:4000:interface=\:\:1`` is ``["tcp6", "4000", "interface=::1"]``.
    """
    parts = [""]
    characters = iter(description)
    for character in characters:
        if character == "\\":
            parts[-1] += next(characters, "")
        elif character == ":":
            parts.append("")
        else:
            parts[-1] += character
    return parts


_UNIX_SERVER_KEYWORDS = frozenset({"mode", "lockfile", "backlog", "wantPID"})
_LOOPBACK = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1", "::0": "::1"}


def _fromServerEndpoint(reactor: Any, description: str) -> IStreamClientEndpoint | None:
    r"""Turn a *server* endpoint string into the client endpoint that reaches it.

    ``tcp:4000:interface=127.0.0.1`` (as ``twistd scgi`` logs it), ``tcp:4000``,
    ``tcp6:4000:interface=\:\:1`` and ``unix:/run/app/scgi.sock:mode=660``; a
    server on every interface is reached on the loopback address.

    :returns: the endpoint, or ``None`` if ``description`` is no such string.
    :raises ValueError: for a port that is not a number in 0-65535.
    """
    kind, *arguments = _splitEndpoint(description)
    kind = kind.lower()
    positional = [argument for argument in arguments if "=" not in argument]
    keywords = dict(argument.split("=", 1) for argument in arguments if "=" in argument)
    if kind == "unix":
        if not (_UNIX_SERVER_KEYWORDS & keywords.keys()):
            return None
        path = keywords.get("address") or (positional[0] if positional else "")
        if not path:
            raise ValueError(f"{description!r} names no socket path")
        return UNIXClientEndpoint(  # type: ignore[no-untyped-call]
            reactor, os.path.expanduser(path)
        )
    if kind not in ("tcp", "tcp6") or "host" in keywords:
        return None
    port = keywords.get("port") or (positional[0] if positional else "")
    if not port.isdigit():
        if kind == "tcp6":
            raise ValueError(f"{description!r}: the port {port!r} is not a number")
        return None
    if int(port) > 65535:
        raise ValueError(f"the port {port} is not in 0-65535")
    interface = keywords.get("interface", "::" if kind == "tcp6" else "")
    host = _LOOPBACK.get(interface, interface)
    return cast(IStreamClientEndpoint, HostnameEndpoint(reactor, host, int(port)))


def clientEndpoint(reactor: Any, description: str) -> IStreamClientEndpoint:
    """Turn a command-line endpoint into a client endpoint.

    Four forms are accepted:

    * a Twisted client endpoint string: ``tcp:127.0.0.1:4000``,
      ``unix:/run/app/scgi.sock``, ``tcp:host=example.net:port=4000:timeout=5``;
    * the server's own endpoint string, as given to ``twistd scgi --listen`` and
      logged by it: ``tcp:4000:interface=127.0.0.1``, ``tcp:4000``,
      ``unix:/run/app/scgi.sock:mode=660``;
    * ``HOST:PORT`` or ``[IPV6]:PORT``, for ``HostnameEndpoint`` (IPv4 and IPv6);
    * a filesystem path (any text without ``:``, or starting with ``/``, ``./``,
      ``../`` or ``~``), for a unix socket.

    :param reactor: the reactor to connect with.
    :param description: the endpoint, in one of the forms above.
    :returns: the endpoint.
    :raises ValueError: if the text is none of these.
    """
    if not description:
        raise ValueError("the endpoint is empty")
    if ":" not in description or description.startswith(("/", "./", "../", "~")):
        return UNIXClientEndpoint(  # type: ignore[no-untyped-call]
            reactor, os.path.expanduser(description)
        )
    server = _fromServerEndpoint(reactor, description)
    if server is not None:
        return server
    match = _HOST_PORT.match(description)
    if match is not None and not (match.group(2) and _isEndpointType(match.group(2))):
        host = match.group(1) or match.group(2)
        port = int(match.group(3))
        if port > 65535:
            raise ValueError(f"the port {port} is not in 0-65535")
        return cast(IStreamClientEndpoint, HostnameEndpoint(reactor, host, port))
    try:
        endpoint = clientFromString(reactor, description)  # type: ignore[no-untyped-call]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(
            f"{description!r} is not a client endpoint ({error!s})"
        ) from error
    return cast(IStreamClientEndpoint, endpoint)
