"""Tests for the ``twistd scgi`` plugin: discovery, real servers, and packaging.

Strategy:

* :class:`PluginDiscoveryTests` finds the plugin the way ``twistd`` does
  (``getPlugins(IServiceMaker)``) and checks the plugin file's shape by its AST.
* :class:`TwistdTests` runs the real command, ``twistd -n scgi ...``, as a subprocess of
  ``sys.executable`` with the checkout first on ``PYTHONPATH`` (so no ``PATH`` lookup
  and no install is needed), in a temporary working directory with ``--pidfile=`` (so
  no ``twistd.pid`` or ``twistd.log`` lands in the repository).  It listens on a TCP
  port the OS chooses (``tcp:0``, read back from the log) and on a unix socket in the
  temporary directory, is sent real SCGI requests over blocking sockets, and is stopped
  with SIGTERM, which must end it cleanly (exit 0, sockets removed, no traceback).
* :class:`PackagingTests` builds the wheel and the sdist with ``python -m build`` and
  lists them, then installs the package, normally and editable, into throw-away
  virtual environments and runs ``twistd`` from there.

Nothing here skips: a missing tool or file is a failure.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import zipfile
from collections.abc import Sequence
from pathlib import Path

from twisted.application.service import IServiceMaker
from twisted.plugin import getPlugins
from twisted.trial.unittest import SynchronousTestCase

from scgi_twisted import tap

from .support.processes import (
    ROOT,
    STOPPED,
    TWIST,
    TWISTD,
    Address,
    Server,
    environment,
    exchange,
    request,
    temporaryDirectory,
)
from .support.scgi import Response

PLUGIN = ROOT / "twisted" / "plugins" / "scgi_twisted_plugin.py"
PLUGIN_NAME = "twisted/plugins/scgi_twisted_plugin.py"


APPLICATION = '''
"""The application the subprocess tests serve."""

from twisted.web.resource import Resource


class Hello(Resource):
    isLeaf = True

    def render_GET(self, request):
        request.setHeader(b"content-type", b"text/plain")
        return b"hello prepath=%s postpath=%s client=%s" % (
            b"/".join(request.prepath),
            b"/".join(request.postpath),
            request.getClientAddress().host.encode(),
        )


root = Hello()


def application(environ, start_response):
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [
        b"wsgi %s %s %s"
        % (environ["SCRIPT_NAME"].encode(), environ["PATH_INFO"].encode(), body)
    ]
'''


def run(
    command: Sequence[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command to its end and return its result, output and errors merged."""
    return subprocess.run(
        list(command),
        cwd=cwd,
        env=environment() if env is None else env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
        check=False,
    )


class PluginDiscoveryTests(SynchronousTestCase):
    """``twistd`` finds the plugin, and the plugin is the trivial file it must be."""

    def test_getPlugins(self) -> None:
        """``getPlugins(IServiceMaker)`` yields one ``scgi`` maker: the tap module."""
        import twisted.plugins

        self.assertTrue(
            any(
                Path(entry).resolve() == PLUGIN.parent
                or (Path(entry) / "scgi_twisted_plugin.py").exists()
                for entry in twisted.plugins.__path__
            ),
            "the plugin's directory is not on twisted.plugins.__path__: install the "
            "package (pip install -e .) or run the tests from the checkout",
        )
        makers = [
            maker for maker in getPlugins(IServiceMaker) if maker.tapname == "scgi"
        ]
        self.assertEqual(len(makers), 1, makers)
        (maker,) = makers
        self.assertEqual(getattr(maker, "module", None), "scgi_twisted.tap")
        self.assertIs(maker.options, tap.Options)
        self.assertIs(maker.makeService, tap.makeService)
        self.assertIn("SCGI", maker.description)

    def test_noPackageInit(self) -> None:
        """There is no ``__init__.py`` in ``twisted/`` or ``twisted/plugins/``.

        Shipping one would overwrite Twisted's own, and uninstalling would delete it.
        """
        self.assertFalse((ROOT / "twisted" / "__init__.py").exists())
        self.assertFalse((ROOT / "twisted" / "plugins" / "__init__.py").exists())
        sources = sorted(
            str(path.relative_to(ROOT)) for path in (ROOT / "twisted").rglob("*.py")
        )
        self.assertEqual(sources, [PLUGIN_NAME])

    def test_pluginFileIsTrivial(self) -> None:
        """The plugin imports only ``ServiceMaker`` and names its module by string."""
        tree = ast.parse(PLUGIN.read_text(encoding="utf-8"))
        imports = [
            (getattr(node, "module", None), [alias.name for alias in node.names])
            for node in tree.body
            if isinstance(node, ast.Import | ast.ImportFrom)
        ]
        self.assertEqual(imports, [("twisted.application.service", ["ServiceMaker"])])
        (assignment,) = [node for node in tree.body if isinstance(node, ast.Assign)]
        call = assignment.value
        assert isinstance(call, ast.Call)
        self.assertEqual(ast.unparse(call.func), "ServiceMaker")
        arguments = [ast.literal_eval(argument) for argument in call.args]
        self.assertEqual(arguments[1], "scgi_twisted.tap")
        self.assertEqual(arguments[3], "scgi")


class TwistdTests(SynchronousTestCase):
    """``twistd -n scgi`` serves real SCGI requests and stops cleanly."""

    def start(
        self, *arguments: str, command: Sequence[str] = (*TWISTD, "-n", "--pidfile=")
    ) -> tuple[Server, list[Address]]:
        """Start the server on a free loopback port and a unix socket.

        :returns: the server and its addresses, TCP first.
        """
        directory = temporaryDirectory(self)
        (directory / "scgi_e2e_application.py").write_text(APPLICATION)
        sock = directory / "scgi.sock"
        server = Server(
            self,
            directory,
            [
                *command,
                "scgi",
                "--listen",
                "tcp:0:interface=127.0.0.1",
                "--listen",
                f"unix:{sock}:mode=600",
                *arguments,
            ],
        )
        port = int(server.waitFor(r"SCGISite starting on (\d+)").group(1))
        server.waitFor(re.escape(f"SCGISite starting on '{sock}'"))
        self.assertNotEqual(port, 0)
        return server, [
            (socket.AF_INET, ("127.0.0.1", port)),
            (socket.AF_UNIX, str(sock)),
        ]

    def assertStopsCleanly(self, server: Server) -> str:
        """Stop the server; assert a clean exit; return its output."""
        status = server.stop()
        output = server.output()
        self.assertIn(status, STOPPED, output)
        self.assertIn("Main loop terminated.", output)
        self.assertNotIn("Traceback", output)
        self.assertNotIn("Unhandled", output)
        self.assertFalse((server.directory / "scgi.sock").exists())
        self.assertFalse((server.directory / "twistd.pid").exists())
        self.assertFalse((server.directory / "twistd.log").exists())
        return output

    def test_defaultPage(self) -> None:
        """Without a root, the built-in page answers on TCP and on the unix socket."""
        server, addresses = self.start("--access-log", "-")
        for address in addresses:
            response = request(address, b"/some/path?x=1")
            self.assertEqual(response.status, b"200 OK")
            self.assertEqual(
                response.header(b"content-type"), b"text/html; charset=utf-8"
            )
            self.assertIn(b"scgi_twisted is serving", response.body)
            self.assertIn(b"203.0.113.9, port 51234 (IPv4)", response.body)
        data = request(addresses[1], b"/x?format=json").json()
        self.assertEqual(data["postpath"], ["x"])
        output = self.assertStopsCleanly(server)
        self.assertIn("Serving the built-in page over SCGI", output)
        self.assertEqual(output.count('"GET /some/path?x=1 HTTP/1.1" 200 '), 2)

    def test_resource(self) -> None:
        """``--resource`` serves the named resource, below ``--mount``."""
        server, addresses = self.start(
            "--resource", "scgi_e2e_application.root", "--mount", "/app"
        )
        for address in addresses:
            response = request(address, b"/app/a/b")
            self.assertEqual(response.status, b"200 OK")
            self.assertEqual(
                response.body, b"hello prepath=app postpath=a/b client=203.0.113.9"
            )
        output = self.assertStopsCleanly(server)
        self.assertIn(
            "Serving the resource scgi_e2e_application.root over SCGI", output
        )

    def test_wsgi(self) -> None:
        """``--wsgi`` runs the application in the reactor's thread pool."""
        server, addresses = self.start(
            "--wsgi", "scgi_e2e_application.application", "--mount", "/app"
        )
        for address in addresses:
            response = request(address, b"/app/x/y", b"the body")
            self.assertEqual(response.status, b"200 OK")
            self.assertEqual(response.body, b"wsgi /app /x/y the body")
        self.assertStopsCleanly(server)

    def test_path(self) -> None:
        """``--path`` serves a directory's files."""
        www = Path(tempfile.mkdtemp(prefix="scgi-www-"))
        self.addCleanup(shutil.rmtree, www, True)
        (www / "index.html").write_bytes(b"<p>index</p>")
        (www / "notes.txt").write_bytes(b"some notes")
        server, addresses = self.start("--path", str(www))
        for address in addresses:
            self.assertEqual(request(address, b"/notes.txt").body, b"some notes")
            self.assertEqual(request(address, b"/").body, b"<p>index</p>")
            self.assertEqual(request(address, b"/missing").status, b"404 Not Found")
        self.assertStopsCleanly(server)

    def test_limits(self) -> None:
        """``--max-body-size`` answers 413 on a real connection."""
        server, addresses = self.start(
            "--max-body-size", "1k", "--wsgi", "scgi_e2e_application.application"
        )
        for address in addresses:
            self.assertEqual(request(address, b"/", b"x" * 1024).status, b"200 OK")
            response = request(address, b"/", b"x" * 1025)
            self.assertEqual(response.status, b"413 Content Too Large")
        self.assertStopsCleanly(server)

    def test_halfClose(self) -> None:
        """With ``--half-close`` a frontend that shuts its sending side is answered."""
        server, addresses = self.start("--half-close")
        for address in addresses:
            response = Response(exchange(address, shutdownWrite=True))
            self.assertEqual(response.status, b"200 OK")
        self.assertStopsCleanly(server)

    def test_allow(self) -> None:
        """A TCP peer outside ``--allow`` is closed unanswered; unix peers are not."""
        server, (tcp, unix) = self.start("--allow", "192.0.2.0/24")
        try:
            answer = exchange(tcp)
        except ConnectionResetError:  # the request was still unread at the close
            answer = b""
        self.assertEqual(answer, b"")
        self.assertEqual(request(unix).status, b"200 OK")
        output = self.assertStopsCleanly(server)
        self.assertEqual(output.count("Refused a connection from"), 1)

    def test_twist(self) -> None:
        """``twist scgi`` (``python -m twisted``) serves too, and stops on SIGTERM."""
        server, addresses = self.start(command=(*TWIST, "--log-format=text"))
        for address in addresses:
            self.assertEqual(request(address).status, b"200 OK")
        self.assertStopsCleanly(server)

    def test_systemd(self) -> None:
        """``--listen systemd:...`` serves on a socket passed the way systemd does."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(listener.close)
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        address: Address = (socket.AF_INET, listener.getsockname())
        directory = temporaryDirectory(self)
        env = environment(str(directory))
        env.update(
            LISTEN_FDS="1", LISTEN_FDNAMES="scgi", SCGI_TEST_FD=str(listener.fileno())
        )
        # systemd passes the socket as fd 3, and LISTEN_PID is the service's own pid.
        launcher = (
            "import os, sys; os.dup2(int(os.environ['SCGI_TEST_FD']), 3); "
            "os.environ['LISTEN_PID'] = str(os.getpid()); "
            "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
        )
        server = Server(
            self,
            directory,
            [
                sys.executable,
                "-c",
                launcher,
                *TWISTD[1:],
                "-n",
                "--pidfile=",
                "scgi",
                "--listen",
                "systemd:domain=INET:name=scgi",
            ],
            passFds=[listener.fileno()],
            env=env,
        )
        listener.close()
        server.waitFor("SCGISite starting on")
        self.assertEqual(request(address).status, b"200 OK")
        self.assertIn(server.stop(), STOPPED, server.output())
        self.assertIn("Main loop terminated.", server.output())
        self.assertNotIn("Traceback", server.output())

    def test_badValue(self) -> None:
        """A bad value is a usage error naming the option, exit 1, no traceback."""
        directory = temporaryDirectory(self)
        for arguments, message in [
            (["--max-body-size", "10Q"], "--max-body-size: '10Q' is not a size"),
            (["--listen", "tcp:http"], "--listen: 'tcp:http' is not a server endpoint"),
            (["--resource", "no_such_module.root"], "--resource: cannot find"),
            (
                ["--resource", "twisted.web.resource.Resource", "--path", "."],
                "--path: give only one of --resource, --wsgi and --path",
            ),
        ]:
            result = run([*TWISTD, "-n", "--pidfile=", "scgi", *arguments], directory)
            self.assertEqual(result.returncode, 1, result.stdout)
            self.assertIn(message, result.stdout)
            self.assertNotIn("Traceback", result.stdout)
        self.assertEqual(sorted(os.listdir(directory)), [])

    def test_help(self) -> None:
        """``twistd --help`` lists ``scgi``, and ``twistd scgi --help`` its options."""
        directory = temporaryDirectory(self)
        listing = run([*TWISTD, "--help"], directory)
        self.assertEqual(listing.returncode, 0, listing.stdout)
        self.assertRegex(listing.stdout, r"\n    scgi +Serve a twisted\.web resource")
        options = run([*TWISTD, "scgi", "--help"], directory)
        self.assertEqual(options.returncode, 0, options.stdout)
        for name in (
            "--listen=",
            "--resource=",
            "--wsgi=",
            "--path=",
            "--mount=",
            "--max-body-size=",
            "--max-header-size=",
            "--timeout=",
            "--allow=",
            "--access-log=",
            "--display-tracebacks",
            "--no-form-parsing",
            "--half-close",
        ):
            self.assertIn(name, options.stdout)

    def test_lightImports(self) -> None:
        """Listing plugins imports no scgi_twisted; parsing starts no reactor."""
        script = textwrap.dedent(
            """
            import sys
            import twisted.plugins.scgi_twisted_plugin
            assert "scgi_twisted" not in sys.modules, "the plugin imported the package"
            from scgi_twisted.tap import Options
            Options().parseOptions(
                ["--listen", "tcp:4000", "--wsgi", "wsgiref.simple_server.demo_app"]
            )
            assert "twisted.internet.reactor" not in sys.modules, "a reactor started"
            print("light")
            """
        )
        result = run([sys.executable, "-c", script], temporaryDirectory(self))
        self.assertEqual(result.returncode, 0, result.stdout)
        self.assertEqual(result.stdout.strip(), "light")


class PackagingTests(SynchronousTestCase):
    """The wheel and the sdist hold the plugin file and nothing else of ``twisted/``."""

    def build(self, kind: str) -> Path:
        """Build the wheel or the sdist from the checkout into a temporary directory.

        The plugin cache is refreshed first, so that a ``dropin.cache`` sits beside the
        plugin file in the checkout and must be left out.
        """
        list(getPlugins(IServiceMaker))
        out = temporaryDirectory(self)
        result = run(
            [
                sys.executable,
                "-m",
                "build",
                f"--{kind}",
                "--no-isolation",
                "--outdir",
                str(out),
                str(ROOT),
            ],
            ROOT,
        )
        self.assertEqual(result.returncode, 0, result.stdout)
        (built,) = out.iterdir()
        return built

    def assertNoStrays(self, names: list[str], prefix: str = "") -> None:
        """Assert that ``twisted/`` holds only the plugin, and nothing is a cache."""
        twisted = sorted(n for n in names if n.startswith(prefix + "twisted/"))
        self.assertEqual(
            [n for n in twisted if not n.endswith("/")], [prefix + PLUGIN_NAME]
        )
        for name in names:
            self.assertNotIn("dropin.cache", name)
            self.assertNotIn("__pycache__", name)
            self.assertFalse(name.endswith(".pyc"), name)

    def test_wheel(self) -> None:
        """The wheel holds the package and the plugin file, never an ``__init__.py``."""
        wheel = self.build("wheel")
        with zipfile.ZipFile(wheel) as archive:
            names = archive.namelist()
        self.assertNoStrays(names)
        for name in names:
            self.assertTrue(
                name.startswith(("scgi_twisted/", "scgi_twisted-"))
                or name == PLUGIN_NAME,
                name,
            )
        for module in ("tap.py", "_defaultpage.py", "_site.py", "py.typed"):
            self.assertIn(f"scgi_twisted/{module}", names)

    def test_sdist(self) -> None:
        """The sdist holds the plugin file but no other ``twisted/`` file or cache."""
        sdist = self.build("sdist")
        with tarfile.open(sdist) as archive:
            names = archive.getnames()
        prefix = names[0].split("/", 1)[0] + "/"
        self.assertNoStrays(names, prefix)
        for name in ("pyproject.toml", "scgi_twisted/tap.py", "tests/test_plugin.py"):
            self.assertIn(prefix + name, names)

    def test_installAndUninstall(self) -> None:
        """``pip install .`` and ``pip install -e .`` both make ``twistd scgi`` work.

        In a new virtual environment that sees no system packages and no
        ``PYTHONPATH`` (so only what was installed can be found), with Twisted
        installed from the registry: install the wheel, serve, uninstall (Twisted's
        own ``twisted/plugins/__init__.py`` must survive, and ``scgi`` must be gone),
        then install the checkout in editable mode and serve again.
        """
        import twisted

        directory = temporaryDirectory(self)
        venv = directory / "venv"
        python = str(venv / "bin" / "python")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env["PYTHONUNBUFFERED"] = "1"
        pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        self.assertRun([sys.executable, "-m", "venv", str(venv)], directory, env)
        self.assertRun([*pip, f"twisted=={twisted.__version__}"], directory, env)
        twistedInit = venv.glob("lib/python*/site-packages/twisted/plugins/__init__.py")
        (pluginsInit,) = list(twistedInit)

        self.assertRun([*pip, str(self.build("wheel"))], directory, env)
        self.assertServes(python, directory, env, str(venv))

        self.assertRun(
            [python, "-m", "pip", "uninstall", "-y", "-q", "scgi-twisted"],
            directory,
            env,
        )
        self.assertTrue(pluginsInit.exists(), "uninstalling deleted Twisted's file")
        self.assertNotIn("scgi", self.twistdCommands(python, directory, env))

        self.assertRun([*pip, "-e", str(ROOT)], directory, env)
        self.assertServes(python, directory, env, str(ROOT))

    def assertRun(self, command: Sequence[str], cwd: Path, env: dict[str, str]) -> str:
        """Run ``command``, assert that it succeeds, and return its output."""
        result = run(command, cwd, env)
        self.assertEqual(result.returncode, 0, f"{command}:\n{result.stdout}")
        return result.stdout

    def twistdCommands(self, python: str, cwd: Path, env: dict[str, str]) -> list[str]:
        """Return the plugin names that ``twistd --help`` lists."""
        listing = self.assertRun([python, *TWISTD[1:], "--help"], cwd, env)
        return re.findall(r"^    (\S+) ", listing.split("Commands:", 1)[-1], re.M)

    def assertServes(
        self, python: str, cwd: Path, env: dict[str, str], source: str
    ) -> None:
        """Assert that ``twistd`` lists ``scgi``, loaded from ``source``, and serves."""
        self.assertIn("scgi", self.twistdCommands(python, cwd, env))
        where = self.assertRun(
            [
                python,
                "-c",
                "import scgi_twisted, twisted.plugins.scgi_twisted_plugin as p; "
                "print(scgi_twisted.__file__); print(p.__file__)",
            ],
            cwd,
            env,
        )
        for line in where.split():
            self.assertTrue(line.startswith(source), f"{line} is not from {source}")
        sock = cwd / "scgi.sock"
        server = Server(
            self,
            cwd,
            [
                python,
                *TWISTD[1:],
                "-n",
                "--pidfile=",
                "scgi",
                "--listen",
                f"unix:{sock}",
            ],
            env=env,
        )
        server.waitFor("SCGISite starting on")
        self.assertEqual(request((socket.AF_UNIX, str(sock))).status, b"200 OK")
        self.assertIn(server.stop(), STOPPED, server.output())
        self.assertIn("Main loop terminated.", server.output())
        self.assertNotIn("Traceback", server.output())
