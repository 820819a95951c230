"""Tests for ``twistd scgi``'s options and service (:mod:`scgi_twisted.tap`).

Strategy: :class:`OptionsTests` and its siblings parse real command lines with
``Options().parseOptions([...])``, one test per option and one per kind of bad value,
checking that a bad value is a ``UsageError`` whose message starts with the option's
name.  :class:`MakeServiceTests` builds the service on a ``MemoryReactorClock`` (no
sockets, no real reactor), starts it so that its listening calls are recorded, and
feeds real SCGI requests to the site it built.  The objects named by ``--resource`` and
``--wsgi`` are defined in this module and named through ``__name__``.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Iterable
from typing import Any, cast

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.interfaces import IReactorThreads
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import (
    ILogObserver,
    LogEvent,
    LogLevel,
    formatEvent,
    globalLogPublisher,
)
from twisted.python import threadpool, usage
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import Request
from twisted.web.static import File
from twisted.web.wsgi import WSGIResource
from zope.interface import implementer

from scgi_twisted import SCGIChannel, SCGISite
from scgi_twisted._defaultpage import DefaultPage
from scgi_twisted._site import RefusedConnection
from scgi_twisted.tap import DEFAULT_LISTEN, Options, makeService, parseSize

from .support.memory import serveSCGI
from .support.scgi import BASE, Response, buildRequest, replace

HERE = __name__


class ExampleResource(Resource):
    """A leaf resource that says what it is."""

    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        """Say what this is."""
        return b"example resource"


EXAMPLE_RESOURCE = ExampleResource()


def makeExampleResource() -> ExampleResource:
    """A zero-argument factory of resources."""
    return ExampleResource()


class KleinLike:
    """An object with a ``resource()`` method, as a Klein app is."""

    def __init__(self) -> None:
        self.root = ExampleResource()

    def resource(self) -> ExampleResource:
        """Return the app's resource."""
        return self.root


KLEIN_APP = KleinLike()


def makeKleinApp() -> KleinLike:
    """A factory of Klein-like apps."""
    return KleinLike()


class BadKleinLike:
    """An object whose ``resource()`` returns something that is not a resource."""

    def resource(self) -> int:
        """Return a number."""
        return 42


BAD_KLEIN_APP = BadKleinLike()


def makeNumber() -> int:
    """A factory that does not make a resource."""
    return 42


class NeedsArguments(Resource):
    """A resource class whose constructor needs an argument."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path


NOT_A_RESOURCE = 42


def wsgiApplication(
    environ: dict[str, Any], startResponse: Callable[..., object]
) -> Iterable[bytes]:
    """A WSGI application that echoes its SCRIPT_NAME and PATH_INFO."""
    startResponse("200 OK", [("Content-Type", "text/plain")])
    return [f"wsgi {environ['SCRIPT_NAME']} {environ['PATH_INFO']}".encode()]


def temporaryDirectory(case: SynchronousTestCase) -> FilePath[str]:
    """Make an empty directory, outside the working tree, removed after the test."""
    path = tempfile.mkdtemp(prefix="scgi-tap-")
    case.addCleanup(shutil.rmtree, path, True)
    return FilePath(path)


def parse(*arguments: str) -> Options:
    """Parse a ``twistd scgi`` command line."""
    options = Options()
    options.parseOptions(list(arguments))
    return options


class UsageErrorMixin:
    """Check the usage errors of bad command lines."""

    assertRaises: Any
    assertTrue: Any
    assertIn: Any

    def assertUsageError(self, arguments: list[str], *fragments: str) -> str:
        """Assert that ``arguments`` are refused with a message holding ``fragments``.

        :returns: the message.
        """
        with self.assertRaises(usage.UsageError) as context:
            parse(*arguments)
        message = str(context.exception)
        for fragment in fragments:
            self.assertIn(fragment, message)
        return message

    def assertBadValue(self, option: str, value: str, *fragments: str) -> str:
        """Assert that ``--option value`` is refused, naming the option first."""
        message = self.assertUsageError([f"--{option}", value], *fragments)
        self.assertTrue(
            message.startswith(f"--{option}: "), f"{message!r} names no option"
        )
        return message


class OptionsTests(UsageErrorMixin, SynchronousTestCase):
    """The defaults, the flags and the documentation of the options."""

    def test_defaults(self) -> None:
        """Without options: loopback port 4000, the built-in page, stock limits."""
        options = parse()
        self.assertEqual(options["listen"], [DEFAULT_LISTEN])
        self.assertEqual(DEFAULT_LISTEN, "tcp:4000:interface=127.0.0.1")
        self.assertIsNone(options["root"])
        self.assertIsNone(options["resource"])
        self.assertIsNone(options["wsgi"])
        self.assertIsNone(options["path"])
        self.assertIsNone(options["mount"])
        self.assertIsNone(options["max-body-size"])
        self.assertEqual(options["max-header-size"], 65536)
        self.assertEqual(options["timeout"], 60.0)
        self.assertEqual(options["allow"], [])
        self.assertIsNone(options["access-log"])
        self.assertFalse(options["display-tracebacks"])
        self.assertFalse(options["no-form-parsing"])
        self.assertFalse(options["half-close"])
        self.assertEqual(options["stream-uploads"], [])

    def test_flags(self) -> None:
        """Each flag sets its key."""
        options = parse("--display-tracebacks", "--no-form-parsing", "--half-close")
        self.assertTrue(options["display-tracebacks"])
        self.assertTrue(options["no-form-parsing"])
        self.assertTrue(options["half-close"])

    def test_help(self) -> None:
        """The help lists every option, each line wrapped without runs of spaces."""
        text = str(Options())
        for name in (
            "listen=",
            "resource=",
            "wsgi=",
            "path=",
            "mount=",
            "max-body-size=",
            "max-header-size=",
            "timeout=",
            "allow=",
            "access-log=",
            "display-tracebacks",
            "no-form-parsing",
            "half-close",
            "stream-uploads=",
        ):
            self.assertIn(f"--{name}", text)
        self.assertIn(f"[default: {DEFAULT_LISTEN}]", " ".join(text.split()))
        self.assertIn("tcp6:4000:interface=\\:\\:1,", text)
        self.assertNotIn("\\\\", text)
        for line in text.splitlines():
            self.assertNotIn("  ", line.strip().split("  ", 1)[-1].strip())

    def test_unknownOption(self) -> None:
        """An unknown option is a usage error naming it."""
        self.assertUsageError(["--port", "4000"], "port")

    def test_strayArgument(self) -> None:
        """An argument that follows no option is a usage error naming it."""
        self.assertUsageError(["myapp.root"], "unexpected argument 'myapp.root'")

    def test_missingValue(self) -> None:
        """An option without its value is a usage error."""
        self.assertUsageError(["--listen"], "listen")


class ListenOptionTests(UsageErrorMixin, SynchronousTestCase):
    """``--listen`` takes any Twisted server endpoint string, repeatedly."""

    def test_repeatable(self) -> None:
        """Every ``--listen`` is kept, in order, and the default is not added."""
        options = parse(
            "--listen",
            "tcp:4001:interface=127.0.0.1",
            "--listen",
            "tcp6:4002:interface=\\:\\:1",
            "--listen",
            "unix:/run/app/scgi.sock:mode=660",
        )
        self.assertEqual(
            options["listen"],
            [
                "tcp:4001:interface=127.0.0.1",
                "tcp6:4002:interface=\\:\\:1",
                "unix:/run/app/scgi.sock:mode=660",
            ],
        )

    def test_unknownType(self) -> None:
        """An unknown endpoint type is refused."""
        self.assertBadValue(
            "listen", "bogus:4000", "'bogus:4000' is not a server endpoint", "bogus"
        )

    def test_badPort(self) -> None:
        """A port that is not a number is refused."""
        self.assertBadValue("listen", "tcp:http", "'tcp:http' is not a server endpoint")

    def test_portOutOfRange(self) -> None:
        """A port beyond 65535 is refused at once, not when binding."""
        self.assertBadValue("listen", "tcp:65536", "the port 65536 is not in 0-65535")

    def test_unknownArgument(self) -> None:
        """An argument the endpoint type does not take is refused."""
        self.assertBadValue("listen", "tcp:4000:colour=blue", "colour")

    def test_empty(self) -> None:
        """An empty endpoint string is refused."""
        self.assertBadValue("listen", "", "'' is not a server endpoint")

    def test_unixWithoutPath(self) -> None:
        """A unix endpoint without a path is refused."""
        self.assertBadValue("listen", "unix:", "the unix socket needs a path")

    def test_systemdWithoutSockets(self) -> None:
        """A systemd endpoint when systemd passed no such socket is refused."""
        self.assertBadValue(
            "listen",
            "systemd:domain=UNIX:name=scgi-test-missing",
            "no such socket was passed by systemd",
        )

    def test_systemdWithoutIndexOrName(self) -> None:
        """A systemd endpoint needs an index or a name."""
        self.assertBadValue(
            "listen", "systemd:domain=UNIX", "Specify exactly one of descriptor"
        )


class RootOptionTests(UsageErrorMixin, SynchronousTestCase):
    """``--resource``, ``--wsgi`` and ``--path`` choose the root; at most one."""

    def test_resourceInstance(self) -> None:
        """``--resource`` naming a resource serves that resource."""
        options = parse("--resource", f"{HERE}.EXAMPLE_RESOURCE")
        self.assertEqual(options["root"], "resource")
        self.assertIs(options["resource"], EXAMPLE_RESOURCE)

    def test_resourceClass(self) -> None:
        """``--resource`` naming a resource class serves a new instance of it."""
        options = parse("--resource", f"{HERE}.ExampleResource")
        self.assertIsInstance(options["resource"], ExampleResource)
        self.assertIsNot(options["resource"], EXAMPLE_RESOURCE)

    def test_resourceFactory(self) -> None:
        """``--resource`` naming a zero-argument factory serves what it returns."""
        options = parse("--resource", f"{HERE}.makeExampleResource")
        self.assertIsInstance(options["resource"], ExampleResource)

    def test_resourceMethod(self) -> None:
        """``--resource`` naming a Klein-like app serves its ``resource()``."""
        options = parse("--resource", f"{HERE}.KLEIN_APP")
        self.assertIs(options["resource"], KLEIN_APP.root)

    def test_resourceFactoryOfApps(self) -> None:
        """A factory that returns a Klein-like app serves that app's resource."""
        options = parse("--resource", f"{HERE}.makeKleinApp")
        self.assertIsInstance(options["resource"], ExampleResource)

    def test_resourceKleinClass(self) -> None:
        """A Klein-like class is a factory: its instance's ``resource()`` is served."""
        options = parse("--resource", f"{HERE}.KleinLike")
        self.assertIsInstance(options["resource"], ExampleResource)

    def test_resourceUnknownModule(self) -> None:
        """A module that does not exist is refused."""
        self.assertBadValue(
            "resource",
            "no_such_module_for_scgi.root",
            "cannot find 'no_such_module_for_scgi.root'",
        )

    def test_resourceUnknownAttribute(self) -> None:
        """A name the module does not have is refused."""
        self.assertBadValue(
            "resource", f"{HERE}.noSuchRoot", f"cannot find '{HERE}.noSuchRoot'"
        )

    def test_resourceEmptyName(self) -> None:
        """An empty name is refused."""
        self.assertBadValue("resource", "", "cannot find ''")

    def test_resourceBrokenModule(self) -> None:
        """A module that fails to import is refused with its import error."""
        directory = temporaryDirectory(self)
        directory.child("scgi_broken_app.py").setContent(
            b"import scgi_missing_dependency\nroot = None\n"
        )
        self.patch(sys, "path", [directory.path, *sys.path])
        self.addCleanup(sys.modules.pop, "scgi_broken_app", None)
        self.assertBadValue(
            "resource",
            "scgi_broken_app.root",
            "importing 'scgi_broken_app.root' failed: ModuleNotFoundError",
            "scgi_missing_dependency",
        )

    def test_resourceHintCurrentDirectory(self) -> None:
        """A module in the current directory, which is not on the path, gets a hint."""
        directory = temporaryDirectory(self)
        directory.child("scgi_hint_app.py").setContent(b"root = None\n")
        self.addCleanup(os.chdir, os.getcwd())
        os.chdir(directory.path)
        here = os.getcwd()
        self.patch(
            sys,
            "path",
            [entry for entry in sys.path if os.path.abspath(entry or ".") != here],
        )
        self.assertBadValue(
            "resource", "scgi_hint_app.root", "PYTHONPATH=. twistd", "not on the"
        )

    def test_resourceNotAResource(self) -> None:
        """An object that is not a resource, a factory or an app is refused."""
        self.assertBadValue(
            "resource",
            f"{HERE}.NOT_A_RESOURCE",
            "is 42, which is not a twisted.web resource",
        )

    def test_resourceModule(self) -> None:
        """A module is refused."""
        self.assertBadValue(
            "resource", "twisted.web.resource", "which is not a twisted.web resource"
        )

    def test_resourceNeedsArguments(self) -> None:
        """A class whose constructor needs arguments is refused, naming them."""
        self.assertBadValue(
            "resource",
            f"{HERE}.NeedsArguments",
            "cannot be called without arguments (it needs path)",
        )

    def test_resourceWSGIApplication(self) -> None:
        """A WSGI application given to ``--resource`` is refused with a hint."""
        self.assertBadValue(
            "resource", f"{HERE}.wsgiApplication", "if it is a WSGI application"
        )

    def test_resourceFactoryOfNumbers(self) -> None:
        """A factory that does not return a resource is refused."""
        self.assertBadValue(
            "resource",
            f"{HERE}.makeNumber",
            "makeNumber() returned 42, which is not a twisted.web resource",
        )

    def test_resourceBadApp(self) -> None:
        """An app whose ``resource()`` does not return a resource is refused."""
        self.assertBadValue(
            "resource",
            f"{HERE}.BAD_KLEIN_APP",
            ".resource() returned 42, which is not a twisted.web resource",
        )

    def test_wsgi(self) -> None:
        """``--wsgi`` keeps the application to serve."""
        options = parse("--wsgi", f"{HERE}.wsgiApplication")
        self.assertEqual(options["root"], "wsgi")
        self.assertIs(options["wsgi"], wsgiApplication)

    def test_wsgiUnknown(self) -> None:
        """``--wsgi`` naming nothing is refused."""
        self.assertBadValue(
            "wsgi", f"{HERE}.noSuchApplication", f"cannot find '{HERE}.noSuchApp"
        )

    def test_wsgiNotCallable(self) -> None:
        """``--wsgi`` naming something that cannot be called is refused."""
        self.assertBadValue(
            "wsgi", f"{HERE}.NOT_A_RESOURCE", "is 42, which is not a WSGI application"
        )

    def test_path(self) -> None:
        """``--path`` keeps the directory, made absolute."""
        directory = temporaryDirectory(self)
        relative = os.path.relpath(directory.path)
        options = parse("--path", relative)
        self.assertEqual(options["root"], "path")
        self.assertEqual(options["path"], directory.path)

    def test_pathMissing(self) -> None:
        """``--path`` naming nothing is refused."""
        missing = temporaryDirectory(self).child("missing").path
        self.assertBadValue("path", missing, f"{missing!r} is not a directory")

    def test_pathFile(self) -> None:
        """``--path`` naming a file is refused."""
        self.assertBadValue("path", __file__, "is not a directory")

    def test_twoRoots(self) -> None:
        """Two different roots are refused, naming both options."""
        directory = temporaryDirectory(self)
        roots = {
            "resource": f"{HERE}.EXAMPLE_RESOURCE",
            "wsgi": f"{HERE}.wsgiApplication",
            "path": directory.path,
        }
        for first, second in [
            ("resource", "wsgi"),
            ("wsgi", "path"),
            ("path", "resource"),
        ]:
            message = self.assertUsageError(
                [f"--{first}", roots[first], f"--{second}", roots[second]],
                "give only one of --resource, --wsgi and --path",
                f"--{first} was given already",
            )
            self.assertTrue(message.startswith(f"--{second}: "), message)

    def test_secondRootNotImported(self) -> None:
        """A second root is refused before its name is even looked up."""
        self.assertUsageError(
            ["--resource", f"{HERE}.EXAMPLE_RESOURCE", "--wsgi", "no_such_module.app"],
            "--wsgi: give only one of",
        )

    def test_rootName(self) -> None:
        """The name the root was given by is kept, for the log."""
        self.assertIsNone(parse()["root-name"])
        name = f"{HERE}.EXAMPLE_RESOURCE"
        self.assertEqual(parse("--resource", name)["root-name"], name)

    def test_sameRootTwice(self) -> None:
        """The same root option twice is refused too."""
        self.assertUsageError(
            ["--resource", f"{HERE}.EXAMPLE_RESOURCE"] * 2,
            "--resource: give only one of",
        )


class ValueOptionTests(UsageErrorMixin, SynchronousTestCase):
    """The options that take a prefix, a size, a duration, a network or a file."""

    def test_mount(self) -> None:
        """``--mount`` keeps the prefix."""
        self.assertEqual(parse("--mount", "/app")["mount"], "/app")

    def test_mountRelative(self) -> None:
        """A prefix that does not start with ``/`` is refused."""
        self.assertBadValue("mount", "app", "'app' does not start with '/'")

    def test_maxBodySize(self) -> None:
        """``--max-body-size`` takes bytes or a size with a suffix."""
        self.assertEqual(parse("--max-body-size", "10M")["max-body-size"], 10485760)
        self.assertEqual(parse("--max-body-size", "0")["max-body-size"], 0)

    def test_maxBodySizeBad(self) -> None:
        """A bad body size is refused, saying what a size is."""
        for value in ("10Q", "-1", "1.5M", "", "M", "ten"):
            self.assertBadValue(
                "max-body-size", value, f"{value!r} is not a size", "k, M or G"
            )

    def test_maxHeaderSize(self) -> None:
        """``--max-header-size`` takes bytes or a size with a suffix."""
        self.assertEqual(parse("--max-header-size", "16k")["max-header-size"], 16384)

    def test_maxHeaderSizeBad(self) -> None:
        """A bad header size, or zero, is refused."""
        self.assertBadValue("max-header-size", "big", "'big' is not a size")
        self.assertBadValue("max-header-size", "0", "at least 1 byte")

    def test_timeout(self) -> None:
        """``--timeout`` takes seconds, with a fraction if wanted."""
        self.assertEqual(parse("--timeout", "2.5")["timeout"], 2.5)
        self.assertEqual(parse("--timeout", "300")["timeout"], 300.0)

    def test_timeoutBad(self) -> None:
        """A timeout that is not a positive, finite number is refused."""
        self.assertBadValue("timeout", "soon", "'soon' is not a number of seconds")
        for value in ("0", "-1", "inf", "nan"):
            self.assertBadValue(
                "timeout", value, f"{value!r} is not a positive number of seconds"
            )

    def test_allow(self) -> None:
        """``--allow`` is repeatable and takes addresses and networks, v4 and v6."""
        options = parse(
            "--allow", "127.0.0.1", "--allow", "10.0.0.0/8", "--allow", "::1"
        )
        self.assertEqual(options["allow"], ["127.0.0.1", "10.0.0.0/8", "::1"])

    def test_allowBad(self) -> None:
        """Something that is not a network is refused."""
        for value in ("10.0.0.0/33", "example.com", "", "10.0.0.256"):
            self.assertBadValue(
                "allow", value, f"{value!r} is not an IPv4 or IPv6 network"
            )

    def test_accessLog(self) -> None:
        """``--access-log`` keeps an absolute path, ``-``, or ``none`` (off)."""
        relative = os.path.relpath(temporaryDirectory(self).child("access.log").path)
        self.assertEqual(
            parse("--access-log", relative)["access-log"], os.path.abspath(relative)
        )
        self.assertEqual(parse("--access-log", "-")["access-log"], "-")
        self.assertEqual(parse("--access-log", "none")["access-log"], "none")
        self.assertEqual(
            parse("--access-log", "./none")["access-log"], os.path.abspath("none")
        )

    def test_accessLogMissingDirectory(self) -> None:
        """A log file in a directory that does not exist is refused."""
        path = temporaryDirectory(self).descendant(["missing", "access.log"]).path
        self.assertBadValue("access-log", path, "the directory of", "does not exist")

    def test_streamUploadsRelative(self) -> None:
        """A ``--stream-uploads`` prefix must start with ``/``."""
        self.assertBadValue("stream-uploads", "upload", "does not start with '/'")

    def test_accessLogDirectory(self) -> None:
        """A directory is refused as the log file."""
        self.assertBadValue("access-log", os.getcwd(), "is a directory")


class ParseSizeTests(SynchronousTestCase):
    """:func:`parseSize` reads byte counts with binary suffixes."""

    def test_sizes(self) -> None:
        """Bytes, k, M and G (any case, with or without B or iB) are read."""
        for text, size in [
            ("0", 0),
            ("65536", 65536),
            ("512b", 512),
            ("64k", 65536),
            ("64K", 65536),
            ("64kB", 65536),
            ("10M", 10 * 1024**2),
            ("10m", 10 * 1024**2),
            ("10MiB", 10 * 1024**2),
            ("1G", 1024**3),
            (" 7 ", 7),
        ]:
            self.assertEqual(parseSize(text), size, text)

    def test_bad(self) -> None:
        """Anything else raises ValueError."""
        for text in ("", "k", "1.5k", "-1", "1T", "1 k", "0x10", "1kk", "\uff11"):
            self.assertRaises(ValueError, parseSize, text)


class SynchronousThreadPool:
    """A stand-in for a thread pool that runs everything at once."""

    def callInThread(self, f: Callable[..., object], *a: object, **kw: object) -> None:
        """Call ``f`` now."""
        f(*a, **kw)


@implementer(IReactorThreads)
class ThreadedMemoryReactor(MemoryReactorClock):
    """A memory reactor with a synchronous thread pool, for WSGI applications."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = SynchronousThreadPool()

    def getThreadPool(self) -> threadpool.ThreadPool:
        """Return the synchronous pool."""
        return self.pool  # type: ignore[return-value]

    def suggestThreadPoolSize(self, size: int) -> None:
        """Ignore the suggestion."""

    def callInThread(
        self, callable: Callable[..., Any], *args: object, **kwargs: object
    ) -> None:
        """Call now."""
        callable(*args, **kwargs)

    def callFromThread(
        self, callable: Callable[..., Any], *args: object, **kwargs: object
    ) -> None:
        """Call now."""
        callable(*args, **kwargs)


class MakeServiceTests(SynchronousTestCase):
    """:func:`makeService` builds one SCGI site and listens with it everywhere."""

    def setUp(self) -> None:
        self.reactor = ThreadedMemoryReactor()

    def start(self, *arguments: str) -> SCGISite:
        """Parse, make the service, start it, and return the site it listens with."""
        service = makeService(parse(*arguments), self.reactor)
        service.startService()
        self.addCleanup(service.stopService)
        factories = [server[1] for server in self.reactor.tcpServers]
        factories += [server[1] for server in self.reactor.unixServers]
        self.assertTrue(factories, "the service listens nowhere")
        site = factories[0]
        for factory in factories:
            self.assertIs(factory, site)
        assert isinstance(site, SCGISite)
        return site

    def serve(self, site: SCGISite, pairs: Any = BASE, body: bytes = b"") -> Response:
        """Serve one SCGI request with ``site``."""
        return serveSCGI(site, buildRequest(pairs, body))

    def test_default(self) -> None:
        """By default: the built-in page on 127.0.0.1 port 4000, and nothing else."""
        site = self.start()
        self.assertEqual(self.reactor.tcpServers, [(4000, site, 50, "127.0.0.1")])
        self.assertEqual(self.reactor.unixServers, [])
        self.assertIsInstance(site.resource, DefaultPage)
        response = self.serve(site)
        self.assertEqual(response.status, b"200 OK")
        self.assertIn(b"scgi_twisted is serving", response.body)

    def test_listenSeveral(self) -> None:
        """Every ``--listen`` listens, all with the same site."""
        socket = temporaryDirectory(self).child("scgi.sock").path
        site = self.start(
            "--listen",
            "tcp:4001:interface=127.0.0.1",
            "--listen",
            "tcp6:4002:interface=\\:\\:1",
            "--listen",
            f"unix:{socket}:mode=660",
        )
        self.assertEqual(
            self.reactor.tcpServers,
            [(4001, site, 50, "127.0.0.1"), (4002, site, 50, "::1")],
        )
        self.assertEqual(self.reactor.unixServers, [(socket, site, 50, 0o660, True)])

    def test_resource(self) -> None:
        """``--resource`` serves that resource."""
        site = self.start("--resource", f"{HERE}.EXAMPLE_RESOURCE")
        self.assertIs(site.resource, EXAMPLE_RESOURCE)
        self.assertEqual(self.serve(site).body, b"example resource")

    def test_resourceApp(self) -> None:
        """``--resource`` naming a Klein-like app serves its resource."""
        site = self.start("--resource", f"{HERE}.KLEIN_APP")
        self.assertIs(site.resource, KLEIN_APP.root)

    def test_wsgi(self) -> None:
        """``--wsgi`` serves the application on the reactor's thread pool."""
        site = self.start("--wsgi", f"{HERE}.wsgiApplication", "--mount", "/app")
        self.assertIsInstance(site.resource, WSGIResource)
        response = self.serve(site, replace(BASE, REQUEST_URI=b"/app/a/b"))
        self.assertEqual(response.status, b"200 OK")
        self.assertEqual(response.body, b"wsgi /app /a/b")

    def test_wsgiNeedsThreads(self) -> None:
        """A reactor without threads cannot run a WSGI application."""
        options = parse("--wsgi", f"{HERE}.wsgiApplication")
        self.assertRaises(TypeError, makeService, options, MemoryReactorClock())

    def test_path(self) -> None:
        """``--path`` serves the directory's files."""
        directory = temporaryDirectory(self)
        directory.child("hello.txt").setContent(b"hello, file")
        site = self.start("--path", directory.path)
        self.assertIsInstance(site.resource, File)
        response = self.serve(site, replace(BASE, REQUEST_URI=b"/hello.txt"))
        self.assertEqual(response.status, b"200 OK")
        self.assertEqual(response.body, b"hello, file")

    def test_mount(self) -> None:
        """``--mount`` moves the prefix into ``prepath``."""
        site = self.start("--mount", "/app/")
        self.assertEqual(site.config.mount, b"/app")
        response = self.serve(site, replace(BASE, REQUEST_URI=b"/app/x?format=json"))
        self.assertEqual(response.json()["prepath"], ["app"])

    def test_maxBodySize(self) -> None:
        """A body beyond ``--max-body-size`` is answered 413."""
        site = self.start("--max-body-size", "10")
        self.assertEqual(site.config.max_body_size, 10)
        post = replace(BASE, REQUEST_METHOD=b"POST")
        self.assertEqual(self.serve(site, post, b"x" * 10).status, b"200 OK")
        self.assertEqual(
            self.serve(site, post, b"x" * 11).status, b"413 Content Too Large"
        )

    def test_maxHeaderSize(self) -> None:
        """A header block beyond ``--max-header-size`` is answered 431."""
        site = self.start("--max-header-size", "64")
        self.assertEqual(site.config.max_header_size, 64)
        self.assertEqual(
            self.serve(site).status, b"431 Request Header Fields Too Large"
        )

    def test_timeout(self) -> None:
        """``--timeout`` is the site's timeout: a stalled header block gets 408."""
        site = self.start("--timeout", "2.5")
        self.assertEqual(site.timeOut, 2.5)
        channel = site.buildProtocol(None)
        assert channel is not None
        transport = StringTransport()
        channel.makeConnection(transport)
        channel.dataReceived(buildRequest(BASE)[:10])
        self.reactor.advance(2.4)
        self.assertFalse(transport.disconnecting)
        self.reactor.advance(0.1)
        self.assertTrue(transport.value().startswith(b"Status: 408 "))

    def test_allow(self) -> None:
        """Only ``--allow`` networks are served; unix peers always are."""
        site = self.start("--allow", "10.0.0.0/8", "--allow", "2001:db8::/32")
        for address, served in [
            (IPv4Address("TCP", "192.0.2.1", 1), False),
            (IPv4Address("TCP", "10.1.2.3", 1), True),
            (IPv6Address("TCP", "::ffff:10.1.2.3", 1), True),
            (IPv6Address("TCP", "2001:db8::1", 1), True),
            (IPv6Address("TCP", "::1", 1), False),
            (UNIXAddress(None), True),
        ]:
            protocol = site.buildProtocol(address)
            self.assertIsInstance(protocol, SCGIChannel, address)
            self.assertEqual(
                not isinstance(protocol, RefusedConnection), served, address
            )

    def test_allowEveryone(self) -> None:
        """Without ``--allow`` every peer is served."""
        self.assertIsNone(self.start().allow)

    def test_halfClose(self) -> None:
        """``--half-close`` sets the site's half-close policy."""
        self.assertFalse(self.start().config.half_close)
        self.reactor = ThreadedMemoryReactor()
        self.assertTrue(self.start("--half-close").config.half_close)

    def test_streamUploads(self) -> None:
        """``--stream-uploads`` scopes streaming; without it the site streams nowhere.

        ``/`` means every path; several prefixes are kept in order.
        """
        self.assertIs(self.start().config.stream_uploads, False)
        self.reactor = ThreadedMemoryReactor()
        site = self.start("--stream-uploads", "/upload", "--stream-uploads", "/m/")
        self.assertEqual(site.config.stream_uploads, (b"/upload", b"/m"))
        self.reactor = ThreadedMemoryReactor()
        self.assertIs(self.start("--stream-uploads", "/").config.stream_uploads, True)

    def test_displayTracebacks(self) -> None:
        """``--display-tracebacks`` sets the site's flag."""
        self.assertFalse(self.start().displayTracebacks)
        self.reactor = ThreadedMemoryReactor()
        self.assertTrue(self.start("--display-tracebacks").displayTracebacks)

    def test_formParsing(self) -> None:
        """Form bodies are parsed into ``request.args`` unless ``--no-form-parsing``."""
        pairs = [
            *replace(BASE, REQUEST_METHOD=b"POST", REQUEST_URI=b"/?format=json"),
            (b"CONTENT_TYPE", b"application/x-www-form-urlencoded"),
        ]
        parsed = self.serve(self.start(), pairs, b"a=1")
        self.assertEqual(parsed.json()["args"], {"format": ["json"], "a": ["1"]})
        self.reactor = ThreadedMemoryReactor()
        unparsed = self.serve(self.start("--no-form-parsing"), pairs, b"a=1")
        self.assertEqual(unparsed.json()["args"], {"format": ["json"]})

    def test_accessLogFile(self) -> None:
        """``--access-log PATH`` appends combined-format lines to the file."""
        path = temporaryDirectory(self).child("access.log").path
        site = self.start("--access-log", path)
        site.doStart()
        self.serve(site, replace(BASE, REQUEST_URI=b"/logged"))
        site.doStop()
        with open(path) as log:
            (line,) = log.read().splitlines()
        self.assertTrue(line.startswith('"203.0.113.9" - - ['), line)
        self.assertIn('"GET /logged HTTP/1.1" 200 ', line)
        self.assertTrue(line.endswith('"-" "curl/8.5.0"'), line)

    def test_accessLogStandardOutput(self) -> None:
        """``--access-log -`` writes the lines to the real standard output's descriptor.

        The descriptor stays open when the site stops.
        """
        readEnd, writeEnd = os.pipe()
        self.addCleanup(os.close, readEnd)
        self.addCleanup(os.close, writeEnd)
        output = io.TextIOWrapper(io.FileIO(writeEnd, "w", closefd=False))
        self.patch(sys, "__stdout__", output)
        site = self.start("--access-log", "-")
        site.doStart()
        self.serve(site, replace(BASE, REQUEST_URI=b"/logged"))
        site.doStop()
        os.fstat(writeEnd)  # still open
        (line,) = os.read(readEnd, 65536).decode("ascii").splitlines()
        self.assertIn('"GET /logged HTTP/1.1" 200 ', line)

    def test_accessLogDefault(self) -> None:
        """Without ``--access-log`` a batch of lines goes to the log as one event.

        The event (namespace ``scgi_twisted.access``) says how many requests follow,
        then has each combined log line on a line of its own; nothing is logged per
        request.
        """
        events: list[LogEvent] = []
        observer = cast(ILogObserver, events.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        site = self.start()
        site.doStart()
        for uri in (b"/one", b"/two"):
            self.serve(site, replace(BASE, REQUEST_URI=uri))
        access = [e for e in events if e.get("log_namespace") == "scgi_twisted.access"]
        self.assertEqual(access, [])
        site.doStop()
        (event,) = [
            e for e in events if e.get("log_namespace") == "scgi_twisted.access"
        ]
        first, *lines = formatEvent(event).split("\n")
        self.assertEqual(first, "Access log, 2 request(s):")
        self.assertEqual(len(lines), 2)
        self.assertEqual(event["lines"], lines)
        self.assertIn('"GET /one HTTP/1.1" 200 ', lines[0])
        self.assertIn('"GET /two HTTP/1.1" 200 ', lines[1])

    def test_accessLogNone(self) -> None:
        """``--access-log none`` logs nothing, neither to the log nor to a file."""
        events: list[LogEvent] = []
        observer = cast(ILogObserver, events.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        site = self.start("--access-log", "none")
        site.doStart()
        self.serve(site, replace(BASE, REQUEST_URI=b"/unlogged"))
        site.doStop()
        self.assertNotIn("/unlogged", "".join(formatEvent(e) for e in events))
        self.assertIsNone(site.accessLog)  # type: ignore[attr-defined]
        self.assertFalse(os.path.exists("none"))

    def test_accessLogRefused(self) -> None:
        """Requests the channel refuses itself are logged, once each.

        A body over ``--max-body-size`` (413) and a header block that is not a
        netstring (400), both refused before the request is built, with ``-`` for
        what is unknown; a 408 for a body that stalled past ``--timeout``, with the
        request's line.  The status and the length are those of the answer written.
        """
        path = temporaryDirectory(self).child("access.log").path
        site = self.start(
            "--access-log", path, "--max-body-size", "4", "--timeout", "5"
        )
        site.doStart()
        large = self.serve(site, replace(BASE, REQUEST_URI=b"/big"), b"x" * 10)
        self.assertEqual(large.status[:3], b"413")
        bad = serveSCGI(site, b"nonsense")
        self.assertEqual(bad.status[:3], b"400")
        channel = site.buildProtocol(None)
        assert channel is not None
        transport = StringTransport()
        channel.makeConnection(transport)
        stalled = replace(BASE, REQUEST_URI=b"/slow", REQUEST_METHOD=b"POST")
        channel.dataReceived(buildRequest(stalled, b"abcd")[:-2])
        self.reactor.advance(5)
        site.doStop()
        with open(path) as log:
            lines = log.read().splitlines()
        self.assertEqual(len(lines), 3, lines)
        self.assertRegex(lines[0], r'^"-" - - \[[^]]+\] "-" 413 \d+ "-" "-"$')
        self.assertRegex(lines[1], r'^"-" - - \[[^]]+\] "-" 400 \d+ "-" "-"$')
        self.assertRegex(lines[2], r'"POST /slow HTTP/1\.1" 408 \d+ ')

    def test_accessLogReopen(self) -> None:
        """``SIGUSR1`` reopens the access log: after a rename, lines go to a new file.

        The lines buffered before the signal are written to the renamed file.  The
        handler is removed when the service stops.
        """
        path = temporaryDirectory(self).child("access.log").path
        service = makeService(parse("--access-log", path), self.reactor)
        service.startService()
        site = self.reactor.tcpServers[0][1]
        assert isinstance(site, SCGISite)
        site.doStart()
        self.serve(site, replace(BASE, REQUEST_URI=b"/before"))
        os.rename(path, path + ".1")
        os.kill(os.getpid(), signal.SIGUSR1)
        self.serve(site, replace(BASE, REQUEST_URI=b"/after"))
        site.doStop()
        service.stopService()
        self.assertIs(signal.getsignal(signal.SIGUSR1), signal.SIG_DFL)
        with open(path + ".1") as rotated:
            self.assertIn("GET /before ", rotated.read())
        with open(path) as current:
            (line,) = current.read().splitlines()
        self.assertIn("GET /after ", line)

    def test_logPrefix(self) -> None:
        """The site calls itself SCGISite in log lines."""
        self.assertEqual(self.start().logPrefix(), "SCGISite")

    def test_startLog(self) -> None:
        """The service logs what it serves and where."""
        events: list[LogEvent] = []
        observer = cast(ILogObserver, events.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        self.start("--resource", f"{HERE}.EXAMPLE_RESOURCE", "--listen", "unix:/x")
        (event,) = [e for e in events if e.get("log_namespace") == "scgi_twisted.tap"]
        self.assertEqual(
            formatEvent(event),
            f"Serving the resource {HERE}.EXAMPLE_RESOURCE over SCGI on unix:/x",
        )

    def test_everywhereWarning(self) -> None:
        """Listening on every interface without ``--allow`` logs a warning."""
        events: list[LogEvent] = []
        observer = cast(ILogObserver, events.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)

        def warnings() -> list[LogEvent]:
            found = [e for e in events if e["log_level"] == LogLevel.warn]
            events.clear()
            return found

        self.start("--listen", "tcp:4001")
        (warning,) = warnings()
        self.assertEqual(warning["listen"], "tcp:4001")
        self.reactor = ThreadedMemoryReactor()
        self.start("--listen", "tcp6:4001")
        self.assertEqual(len(warnings()), 1)
        self.reactor = ThreadedMemoryReactor()
        self.start("--listen", "tcp:4001:interface=127.0.0.1")
        self.assertEqual(warnings(), [])
        self.reactor = ThreadedMemoryReactor()
        self.start("--listen", "tcp:4001", "--allow", "10.0.0.0/8")
        self.assertEqual(warnings(), [])
