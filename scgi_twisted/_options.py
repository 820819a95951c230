"""The options of ``twistd scgi``: parsing and checking the command line.

Every value is checked while the command line is parsed (endpoint strings are parsed
against a :class:`~twisted.internet.testing.MemoryReactor`, names are imported, sizes
and networks are read), so a bad value is a usage error that names the option and the
problem, never a traceback at start-up.  Nothing here imports the reactor.

:mod:`scgi_twisted.tap` re-exports the public names; :mod:`scgi_twisted._service`
builds what the options describe.
"""

from __future__ import annotations

import importlib.util
import inspect
import ipaddress
import math
import os
import re
import sys
import traceback
from collections.abc import Callable
from typing import ClassVar

from twisted.internet.endpoints import UNIXServerEndpoint, serverFromString
from twisted.internet.testing import MemoryReactor
from twisted.python import reflect, usage
from twisted.web.resource import IResource

from ._internals import serverEndpointAddress, unixServerEndpointPath
from ._sansio import DEFAULT_MAX_HEADER_SIZE
from ._site import DEFAULT_WRITE_TIMEOUT, resourceOf

__all__ = [
    "ACCESS_LOG_NONE",
    "DEFAULT_ABORT_TIMEOUT",
    "DEFAULT_GRACE_PERIOD",
    "DEFAULT_LISTEN",
    "DEFAULT_TIMEOUT",
    "Options",
    "commandName",
    "parseSize",
]

ACCESS_LOG_NONE = "none"
"""The ``--access-log`` value that turns the access log off (a file of that name is
``./none``)."""

DEFAULT_LISTEN = "tcp:4000:interface=127.0.0.1"
"""Where ``twistd scgi`` listens without ``--listen``: loopback only, since SCGI trusts
``REMOTE_ADDR`` and ``HTTPS`` from whoever connects."""

DEFAULT_TIMEOUT = 60.0
"""The default ``--timeout``, in seconds."""

DEFAULT_GRACE_PERIOD = 10.0
"""The default ``--grace-period``, in seconds."""

DEFAULT_ABORT_TIMEOUT = 15.0
"""The default ``--abort-timeout``, in seconds (``HTTPChannel.abortTimeout``)."""

_SIZE = re.compile(r"([0-9]+)(?:([kmg])(?:i?b)?|b)?", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parseSize(text: str) -> int:
    """Parse a size in bytes, with an optional binary suffix.

    ``"65536"``, ``"64k"``, ``"10M"``, ``"1G"`` (also ``"10MB"``, ``"10MiB"`` and
    ``"512b"``; any case).  ``k``, ``M`` and ``G`` are 1024, 1024² and 1024³, as in
    nginx's ``client_max_body_size``.

    :param text: the size as given on the command line.
    :returns: the number of bytes.
    :raises ValueError: if ``text`` is not such a size.
    """
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise ValueError(
            f"{text!r} is not a size: give a number of bytes, optionally followed by "
            "k, M or G (such as 65536, 64k or 10M)"
        )
    digits, unit = match.groups()
    return int(digits) * _UNITS[(unit or "").lower()]


def _fail(option: str, problem: str) -> usage.UsageError:
    """Return the usage error for a bad value of ``--option``."""
    return usage.UsageError(f"--{option}: {problem}")


def _accessLogPath(path: str) -> str:
    """Check an ``--access-log`` value; return it (a file's, made absolute).

    :raises usage.UsageError: for a directory, or a file in a missing directory.
    """
    if path in (ACCESS_LOG_NONE, "-"):
        return path
    full = os.path.abspath(os.path.expanduser(path))
    if os.path.isdir(full):
        raise _fail("access-log", f"{path!r} is a directory")
    if not os.path.isdir(os.path.dirname(full)):
        raise _fail("access-log", f"the directory of {path!r} does not exist")
    return full


_NO_PROMETHEUS = (
    "prometheus_client is not installed: pip install 'scgi-twisted[metrics]'"
)


def _named(option: str, name: str) -> object:
    """Import and return the object that ``name`` (``package.module.attribute``) names.

    :raises usage.UsageError: if there is no such object or its module cannot be
        imported.
    """
    try:
        return reflect.namedAny(name)  # type: ignore[no-untyped-call]
    except (
        reflect.InvalidName,
        reflect.ModuleNotFound,
        reflect.ObjectNotFound,
        AttributeError,
    ) as error:
        hint = ""
        top = name.split(".", 1)[0]
        here = os.getcwd()
        inCwd = bool(top) and (
            os.path.exists(os.path.join(here, top + ".py"))
            or os.path.isdir(os.path.join(here, top))
        )
        onPath = any(os.path.abspath(entry or ".") == here for entry in sys.path)
        if inCwd and not onPath:
            hint = (
                " (the current directory is not on the Python path: run "
                "PYTHONPATH=. twistd ..., or install your application)"
            )
        raise _fail(option, f"cannot find {name!r}: {error}{hint}") from None
    except ImportError as error:
        raise _fail(
            option, f"importing {name!r} failed: {type(error).__name__}: {error}"
        ) from None
    except Exception as error:
        raise _fail(
            option, f"importing {name!r} raised {_raised(error)}{_TRACEBACK_HINT}"
        ) from error


_TRACEBACK_HINT = " (add --traceback to see the whole traceback)"


def _raised(error: BaseException) -> str:
    """Describe an exception raised by the user's code: what, and on which line."""
    where = ""
    frames = traceback.extract_tb(error.__traceback__)
    if frames:
        last = frames[-1]
        where = f" at {last.filename}, line {last.lineno}"
    return f"{type(error).__name__}: {error}{where}"


def _call(option: str, what: str, call: Callable[[], object]) -> object:
    """Call the user's ``call``, turning what it raises into a usage error."""
    try:
        return call()
    except usage.UsageError:
        raise
    except Exception as error:
        raise _fail(
            option, f"{what} raised {_raised(error)}{_TRACEBACK_HINT}"
        ) from error


def _requiredParameters(factory: Callable[..., object]) -> list[str]:
    """Return the names of the parameters ``factory`` cannot be called without."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # some built-ins have no signature
        return []
    return [
        parameter.name
        for parameter in signature.parameters.values()
        if parameter.default is parameter.empty
        and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
    ]


def _resourceOf(obj: object) -> IResource | None:
    """Return ``obj`` if it is a resource, ``obj.resource()`` if it has that method.

    The rule is :func:`~scgi_twisted._site.resourceOf`, which ``SCGISite`` shares.
    """
    try:
        return resourceOf(obj)
    except TypeError as error:
        raise _fail("resource", str(error)) from None
    except Exception as error:
        raise _fail(
            "resource",
            f"calling {obj!r}.resource() raised {_raised(error)}{_TRACEBACK_HINT}",
        ) from error


def _asResource(name: str, obj: object) -> IResource:
    """Turn what ``--resource`` named into the root resource.

    :param name: the name given, for messages.
    :param obj: a resource, a resource class or other zero-argument factory, or an
        object with a ``resource()`` method (a Klein app).
    :raises usage.UsageError: if ``obj`` is none of those.
    """
    resource = _resourceOf(obj)
    if resource is not None:
        return resource
    if not callable(obj):
        raise _fail(
            "resource",
            f"{name!r} is {obj!r}, which is not a twisted.web resource, a resource "
            "class or factory, or an object with a resource() method",
        )
    required = _requiredParameters(obj)
    if required:
        hint = ""
        if len(required) == 2:
            hint = "; if it is a WSGI application, use --wsgi"
        raise _fail(
            "resource",
            f"{name!r} cannot be called without arguments (it needs "
            f"{', '.join(required)}){hint}",
        )
    made = _call("resource", f"calling {name}()", obj)
    resource = _resourceOf(made)
    if resource is None:
        raise _fail(
            "resource",
            f"{name}() returned {made!r}, which is not a twisted.web resource",
        )
    return resource


_HOST_PORT = re.compile(
    r"(?:(?:\[(?P<ipv6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:\[\]]*)):)?(?P<port>[0-9]+)"
)
"""``host:port``, ``[::1]:port``, ``:port`` or a bare port: not an endpoint string."""


def _endpointHint(description: str) -> str:
    """Suggest the endpoint string for what looks like ``host:port`` or a port."""
    match = _HOST_PORT.fullmatch(description)
    if match is None:
        return ""
    port = match["port"]
    if match["ipv6"]:
        interface = match["ipv6"].replace(":", "\\:")
        return f"; did you mean tcp6:{port}:interface={interface}?"
    if match["host"]:
        return f"; did you mean tcp:{port}:interface={match['host']}?"
    return f"; did you mean tcp:{port}:interface=127.0.0.1?"


def _badEndpoint(description: str, error: Exception) -> str:
    """Describe why an endpoint string could not be parsed."""
    return (
        f"{description!r} is not a server endpoint: {type(error).__name__}: {error}"
        f"{_endpointHint(description)}"
    )


def _endpointProblem(endpoint: object, description: str) -> str | None:
    """Return what is wrong with a parsed endpoint that would fail only at start-up.

    The checks read where Twisted's TCP, SSL and unix endpoints listen, and pass
    any other endpoint.
    """
    address = serverEndpointAddress(endpoint, description)
    if address is not None and not 0 <= address[1] <= 65535:
        return f"the port {address[1]} is not in 0-65535"
    if isinstance(endpoint, UNIXServerEndpoint) and not unixServerEndpointPath(
        endpoint, description
    ):
        return "the unix socket needs a path, such as unix:/run/app/scgi.sock"
    return None


class Options(usage.Options):
    """The options of ``twistd scgi``.

    After parsing, the keys are the long option names.  ``"listen"``, ``"allow"``
    and ``"stream-uploads"`` are lists of strings; ``"resource"`` is the root
    resource or ``None``; ``"wsgi"`` the WSGI application or ``None``; ``"path"``
    an absolute directory or ``None``; ``"root"`` names the one of those that was
    given (``None`` for the built-in page) and ``"root-name"`` the value it was
    given; the sizes are ``int`` (``"max-body-size"`` may be ``None``),
    ``"timeout"`` a ``float``, and the flags are ``bool``.
    """

    synopsis = "[scgi options]"

    longdesc = (
        "Serve a twisted.web resource, a WSGI application or a directory to an SCGI "
        "frontend (nginx scgi_pass, Apache mod_proxy_scgi, lighttpd mod_scgi). "
        "Without --resource, --wsgi or --path it serves a page that shows each "
        "request as the application sees it. By default it listens on "
        f"{DEFAULT_LISTEN}. SCGI trusts REMOTE_ADDR and HTTPS from its peer: let only "
        "your frontend connect (a loopback address, a unix socket with mode=660, or "
        "--allow)."
    )

    optFlags: ClassVar[list[list[str | None]]] = [
        [
            "display-tracebacks",
            None,
            "Show the tracebacks of uncaught exceptions to the client. WARNING: this "
            "may expose private data.",
        ],
        [
            "no-form-parsing",
            None,
            "Do not parse urlencoded and multipart POST bodies into request.args "
            "(twisted.web reads them into memory to parse them).",
        ],
        [
            "traceback",
            None,
            "When the command line or start-up fails, also show the Python traceback "
            "(the short message alone is shown by default).",
        ],
        [
            "half-close",
            None,
            "Treat the frontend closing its sending side after a complete request as "
            "a half-close and still answer (lighttpd with tcp-fin-propagate). By "
            "default it means the client went away, as nginx signals it.",
        ],
    ]

    compData = usage.Completions(  # type: ignore[no-untyped-call]
        optActions={
            "path": usage.CompleteDirs(  # type: ignore[no-untyped-call]
                descr="directory to serve"
            ),
            "access-log": usage.CompleteFiles(  # type: ignore[no-untyped-call]
                "*.log", descr="access log file"
            ),
        }
    )

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self["listen"] = []
        self["allow"] = []
        self["root"] = None
        self["root-name"] = None
        self["resource"] = None
        self["wsgi"] = None
        self["path"] = None
        self["mount"] = None
        self["max-body-size"] = None
        self["max-header-size"] = DEFAULT_MAX_HEADER_SIZE
        self["timeout"] = DEFAULT_TIMEOUT
        self["access-log"] = None
        self["header-timeout"] = None
        self["grace-period"] = DEFAULT_GRACE_PERIOD
        self["abort-timeout"] = DEFAULT_ABORT_TIMEOUT
        self["write-timeout"] = DEFAULT_WRITE_TIMEOUT
        self["max-connections"] = None
        self["stream-uploads"] = []
        self["metrics"] = None
        self.defaults.update(
            {
                "abort-timeout": f"{DEFAULT_ABORT_TIMEOUT:g}",
                "grace-period": f"{DEFAULT_GRACE_PERIOD:g}",
                "listen": DEFAULT_LISTEN,
                "max-header-size": str(DEFAULT_MAX_HEADER_SIZE),
                "timeout": f"{DEFAULT_TIMEOUT:g}",
                "write-timeout": f"{DEFAULT_WRITE_TIMEOUT:g}",
            }
        )
        # The help text comes from docstrings: fold their lines into one paragraph.
        for key, text in self.docs.items():
            if text:
                self.docs[key] = " ".join(text.split())

    def _checkRoot(self, option: str) -> None:
        """Refuse a second root: give only one of --resource, --wsgi and --path."""
        if self["root"] is not None:
            raise _fail(
                option,
                f"give only one of --resource, --wsgi and --path (--{self['root']} "
                "was given already)",
            )

    def _setRoot(self, option: str, value: object, name: str) -> None:
        """Record the root, and the name it was given by."""
        self["root"] = option
        self["root-name"] = name
        self[option] = value

    def opt_listen(self, description: str) -> None:
        r"""Listen on this Twisted server endpoint; repeat to listen on several.

        For example tcp:4000:interface=127.0.0.1, tcp6:4000:interface=\:\:1,
        unix:/run/app/scgi.sock:mode=660 or systemd:domain=UNIX:index=0.
        """
        try:
            endpoint = serverFromString(  # type: ignore[no-untyped-call]
                MemoryReactor(),  # type: ignore[no-untyped-call]
                description,
            )
        except (IndexError, KeyError) as error:
            if not description.startswith("systemd:"):
                raise _fail("listen", _badEndpoint(description, error)) from None
            raise _fail(
                "listen",
                f"{description!r}: no such socket was passed by systemd "
                f"(LISTEN_FDS, LISTEN_FDNAMES): {type(error).__name__}: {error}",
            ) from None
        except Exception as error:
            raise _fail("listen", _badEndpoint(description, error)) from None
        problem = _endpointProblem(endpoint, description)
        if problem:
            raise _fail("listen", f"{description!r}: {problem}")
        self["listen"].append(description)

    def opt_resource(self, name: str) -> None:
        """Serve this twisted.web resource, given as package.module.name.

        It may be a resource, a resource class or zero-argument factory, or an object
        with a resource() method, such as a Klein app.
        """
        self._checkRoot("resource")
        self._setRoot("resource", _asResource(name, _named("resource", name)), name)

    def opt_wsgi(self, name: str) -> None:
        """Serve this WSGI application, given as package.module.name.

        It runs in the reactor's thread pool.
        """
        self._checkRoot("wsgi")
        application = _named("wsgi", name)
        if (
            IResource.providedBy(application)
            or (isinstance(application, type) and IResource.implementedBy(application))
            or (
                not isinstance(application, type)
                and callable(getattr(application, "resource", None))
            )
        ):
            raise _fail(
                "wsgi",
                f"{name!r} is a twisted.web resource (or, like a Klein app, has a "
                f"resource() method), not a WSGI application: use --resource {name}",
            )
        if not callable(application):
            raise _fail(
                "wsgi",
                f"{name!r} is {application!r}, which is not a WSGI application (a "
                "callable taking environ and start_response)",
            )
        try:
            signature = inspect.signature(application)
        except (TypeError, ValueError):  # some built-ins have no signature
            signature = None
        if signature is not None:
            try:
                signature.bind(object(), object())
            except TypeError:
                raise _fail(
                    "wsgi",
                    f"{name!r} cannot be called as {name}{signature}: a WSGI "
                    "application is called with two arguments, environ and "
                    "start_response",
                ) from None
        self._setRoot("wsgi", application, name)

    def opt_path(self, directory: str) -> None:
        """Serve the files in this directory (static, with directory listings)."""
        self._checkRoot("path")
        path = os.path.abspath(os.path.expanduser(directory))
        if not os.path.isdir(path):
            raise _fail("path", f"{directory!r} is not a directory")
        self._setRoot("path", path, path)

    def opt_mount(self, prefix: str) -> None:
        """Serve the application below this path prefix, such as /app.

        Used when the frontend sends no usable SCRIPT_NAME and PATH_INFO (stock nginx
        sends neither).
        """
        if not prefix.startswith("/"):
            raise _fail("mount", f"{prefix!r} does not start with '/'")
        self["mount"] = prefix

    def opt_stream_uploads(self, prefix: str) -> None:
        """Stream uploads to IStreamingUploadResource below this path prefix.

        / streams at every path; repeat for several prefixes. Below them the tree is
        traversed when a request's headers arrive, so getChild sees no form
        arguments and no body. [default: nowhere: the tree is traversed once the
        body is in, as under twisted.web]
        """
        if not prefix.startswith("/"):
            raise _fail("stream-uploads", f"{prefix!r} does not start with '/'")
        self["stream-uploads"].append(prefix)

    def opt_max_body_size(self, size: str) -> None:
        """Refuse request bodies larger than this with 413, such as 10M.

        A number of bytes, optionally followed by k, M or G. [default: no limit]
        """
        try:
            self["max-body-size"] = parseSize(size)
        except ValueError as error:
            raise _fail("max-body-size", str(error)) from None

    def opt_max_header_size(self, size: str) -> None:
        """Refuse SCGI header blocks larger than this with 431, such as 64k.

        A number of bytes, optionally followed by k, M or G.
        """
        try:
            value = parseSize(size)
        except ValueError as error:
            raise _fail("max-header-size", str(error)) from None
        if value < 1:
            raise _fail("max-header-size", "the size must be at least 1 byte")
        self["max-header-size"] = value

    def opt_timeout(self, seconds: str) -> None:
        """Seconds to wait for the SCGI header block, and idle while a body arrives.

        The application itself has all the time it needs.
        """
        try:
            value = float(seconds)
        except ValueError:
            raise _fail("timeout", f"{seconds!r} is not a number of seconds") from None
        if not (math.isfinite(value) and value > 0):
            raise _fail("timeout", f"{seconds!r} is not a positive number of seconds")
        self["timeout"] = value

    def _seconds(self, option: str, seconds: str, *, allowZero: bool = False) -> float:
        """Parse a number of seconds for ``--option``, or raise a usage error."""
        try:
            value = float(seconds)
        except ValueError:
            raise _fail(option, f"{seconds!r} is not a number of seconds") from None
        if not math.isfinite(value) or value < 0 or (value == 0 and not allowZero):
            kind = "non-negative" if allowZero else "positive"
            raise _fail(option, f"{seconds!r} is not a {kind} number of seconds")
        return value

    def opt_header_timeout(self, seconds: str) -> None:
        """Seconds the whole SCGI header block may take to arrive (slowloris).

        Defaults to --timeout.
        """
        self["header-timeout"] = self._seconds("header-timeout", seconds)

    def opt_grace_period(self, seconds: str) -> None:
        """On SIGTERM, seconds to let requests in flight finish before closing them.

        The listeners stop accepting at once.
        """
        self["grace-period"] = self._seconds("grace-period", seconds, allowZero=True)

    def opt_abort_timeout(self, seconds: str) -> None:
        """Seconds a connection may leave our close unanswered before it is aborted.

        Applies after a timeout and after the grace period.
        """
        self["abort-timeout"] = self._seconds("abort-timeout", seconds, allowZero=True)

    def opt_write_timeout(self, seconds: str) -> None:
        """Seconds the frontend may take none of a response before it is aborted.

        While our send buffer stays full, and from the end of a response until the
        close completes. 0 turns it off.
        """
        value = self._seconds("write-timeout", seconds, allowZero=True)
        self["write-timeout"] = value or None

    def opt_max_connections(self, count: str) -> None:
        """Serve at most this many connections at once.

        Past it, new connections wait in the listen backlog until one ends.
        """
        if not count.isdigit() or int(count) < 1:
            raise _fail("max-connections", f"{count!r} is not a positive whole number")
        self["max-connections"] = int(count)

    def opt_allow(self, network: str) -> None:
        """Serve only peers in this IPv4 or IPv6 network; repeat to allow several.

        For example 127.0.0.1, 10.0.0.0/8 or ::1. IPv4-mapped IPv6 peers match as
        IPv4; unix-socket peers are always served; others are closed at once and
        logged. [default: every peer]
        """
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError as error:
            raise _fail(
                "allow", f"{network!r} is not an IPv4 or IPv6 network: {error}"
            ) from None
        self["allow"].append(network)

    def opt_access_log(self, path: str) -> None:
        """Write the access log to this file, in combined log format; - for stdout.

        none turns it off (the frontend keeps its own); the file is reopened on
        SIGUSR1 (logrotate). Lines are written in batches, within a second.
        [default: the twistd log]
        """
        self["access-log"] = _accessLogPath(path)

    def opt_metrics(self, endpoint: str) -> None:
        """Serve Prometheus metrics at /metrics on this endpoint, over HTTP.

        Such as tcp:9100:interface=127.0.0.1; never on the SCGI listener. With
        --workers, summed across the workers. Needs the scgi-twisted[metrics]
        extra. [default: no metrics]
        """
        if importlib.util.find_spec("prometheus_client") is None:
            raise _fail("metrics", _NO_PROMETHEUS)
        self["metrics"] = endpoint

    def opt_workers(self, count: str) -> None:
        """Serve with this many worker processes sharing the listening sockets.

        A supervisor binds every --listen, restarts workers that die, reloads
        gracefully on SIGHUP (new workers start, old ones finish their requests) and
        relays the workers' logs. 0 serves in this process. [default: 0]
        """
        if not count.isdigit():
            raise _fail("workers", f"{count!r} is not a whole number of processes")
        self["workers"] = int(count)

    def parseOptions(self, options: list[str] | None = None) -> None:
        """Parse the options, keeping them as given (``--workers`` passes them on).

        As a ``twistd`` or ``twist`` subcommand (the command line), a usage error is
        printed as two lines (the problem, and where the help is), without the whole
        help text, and ends the process with status 1.  Used from Python, it is
        raised as a :class:`~twisted.python.usage.UsageError`.
        """
        self.arguments = list(sys.argv[1:] if options is None else options)
        parent = getattr(self, "parent", None)
        if parent is None:
            super().parseOptions(options)  # type: ignore[no-untyped-call]
            return
        try:
            super().parseOptions(options)  # type: ignore[no-untyped-call]
        except usage.UsageError as error:
            # Say what is wrong and exit 1 ourselves: twistd would print the whole
            # help first (and Twisted 25.5's twistd then exited 0).
            command = f"{commandName(parent)} scgi"
            lines = []
            cause = error.__cause__
            if "--traceback" in self.arguments and cause is not None:
                lines.append("".join(traceback.format_exception(cause)).rstrip())
            lines.append(f"{command}: {error}")
            lines.append(f"Run '{command} --help' for the options.")
            print("\n".join(lines), file=sys.stderr)
            raise SystemExit(1) from None

    def parseArgs(self, *arguments: str) -> None:
        """Refuse arguments that are not options."""
        if arguments:
            raise usage.UsageError(
                f"unexpected argument {arguments[0]!r}: every value follows its "
                "option, such as --resource myapp.root"
            )

    def postOptions(self) -> None:
        """Listen on :data:`DEFAULT_LISTEN` when no ``--listen`` was given."""
        if not self["listen"]:
            self["listen"] = [DEFAULT_LISTEN]


def commandName(parent: object) -> str:
    """Return ``twist`` or ``twistd``: the command whose subcommand we are."""
    if type(parent).__module__.startswith("twisted.application.twist"):
        return "twist"
    return "twistd"
