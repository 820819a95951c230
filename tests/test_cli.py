"""Tests for ``scgi-client``, the SCGI client's command line (``scgi_twisted.cli``).

The command runs for real, as ``python -m scgi_twisted.cli``, in a subprocess.  Its
servers run in another subprocess, started once for this module by
:func:`servers` (a short script built on :class:`~scgi_twisted.SCGISite`), which
listens on a unix socket and on TCP for the application, and on two more unix
sockets for a server that answers garbage and one that never answers.  Readiness is
checked by connecting until the sockets accept.  The servers hold no state between
requests, so sharing them between tests is safe; they are stopped at exit.

A few more tests drive :func:`scgi_twisted.cli.run` in this process, against an
in-process site on the real reactor, for what a subprocess cannot show (the streams
it writes to, and a broken output file).
"""

from __future__ import annotations

import atexit
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.resource import Resource
from twisted.web.server import Request

import scgi_twisted.cli
import scgi_twisted.client
from scgi_twisted import SCGISite, getSCGIVariables
from scgi_twisted.cli import (
    EXIT_CONNECT,
    EXIT_ERROR,
    EXIT_MALFORMED,
    EXIT_OK,
    EXIT_STATUS,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    run,
)

ROOT = Path(__file__).resolve().parent.parent
_reactor: Any = reactor


class Application(Resource):
    """What the servers serve: a JSON account of each request, or a given status."""

    isLeaf = True

    def render(self, request: Request) -> bytes:
        """Describe the request, or answer ``/status/NNN``."""
        assert request.content is not None
        path = request.path
        if path.startswith(b"/status/"):
            request.setResponseCode(int(path[8:11]))
            return b"status page\n"
        body = request.content.read()
        variables = getSCGIVariables(request)
        assert variables is not None
        account = {
            "method": request.method.decode(),
            "uri": request.uri.decode(),
            "args": {
                name.decode(): [value.decode() for value in values]
                for name, values in request.args.items()
            },
            "cookies": {
                name.decode(): value.decode()
                for name, value in request.received_cookies.items()
            },
            "secure": request.isSecure(),
            "variables": {
                name: value.decode("latin-1") for name, value in variables.items()
            },
            "length": len(body),
            "sha256": hashlib.sha256(body).hexdigest(),
        }
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(account).encode()


SERVER_SCRIPT = """\
import sys
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.internet.protocol import Factory, Protocol
from scgi_twisted import SCGISite
from tests.test_cli import Application

class Garbage(Protocol):
    def dataReceived(self, data):
        if data.endswith(b","):  # every request here has an empty body
            self.transport.write(b"this is not a CGI response\\r\\n\\r\\n")
            self.transport.loseConnection()

class Silent(Protocol):
    pass

directory = sys.argv[1]
site = SCGISite(Application())
serverFromString(reactor, f"unix:{directory}/app.sock").listen(site)
serverFromString(reactor, f"unix:{directory}/garbage.sock").listen(
    Factory.forProtocol(Garbage)
)
serverFromString(reactor, f"unix:{directory}/silent.sock").listen(
    Factory.forProtocol(Silent)
)
serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(site).addCallback(
    lambda port: print(port.getHost().port, flush=True)
)
reactor.run()
"""


@dataclass
class Servers:
    """The running servers: where they listen."""

    directory: Path
    port: int

    def socket(self, name: str) -> str:
        """Return the path of a unix socket: ``app``, ``garbage`` or ``silent``."""
        return str(self.directory / f"{name}.sock")


def environment() -> dict[str, str]:
    """The environment of the subprocesses: this checkout first on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), *filter(None, [env.get("PYTHONPATH")])]
    )
    return env


def _waitForSocket(path: str, process: subprocess.Popen[str]) -> None:
    """Connect to a unix socket until it accepts; fail if the server died."""
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the test servers exited: {process.returncode}")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
        else:
            return
        finally:
            probe.close()


_servers: list[Servers] = []


def servers() -> Servers:
    """Start the servers once for this module, and wait until they accept."""
    if _servers:
        return _servers[0]
    directory = Path(tempfile.mkdtemp(prefix="scgi-cli-"))
    script = directory / "servers.py"
    script.write_text(SERVER_SCRIPT, encoding="utf-8")
    process = subprocess.Popen(
        [sys.executable, str(script), str(directory)],
        stdout=subprocess.PIPE,
        text=True,
        env=environment(),
        cwd=ROOT,
    )

    def stop() -> None:
        process.terminate()
        process.wait(10)
        assert process.stdout is not None
        process.stdout.close()
        shutil.rmtree(directory, ignore_errors=True)

    atexit.register(stop)
    assert process.stdout is not None
    port = int(process.stdout.readline())
    for name in ("app", "garbage", "silent"):
        _waitForSocket(str(directory / f"{name}.sock"), process)
    _servers.append(Servers(directory, port))
    return _servers[0]


@dataclass
class Result:
    """How a run of the command ended."""

    status: int
    stdout: bytes
    stderr: str


def scgiClient(*arguments: str, stdin: bytes = b"") -> Result:
    """Run ``python -m scgi_twisted.cli`` with ``arguments``."""
    completed = subprocess.run(
        [sys.executable, "-m", "scgi_twisted.cli", *arguments],
        input=stdin,
        capture_output=True,
        timeout=60,
        env=environment(),
        cwd=ROOT,
        check=False,
    )
    return Result(
        completed.returncode, completed.stdout, completed.stderr.decode("utf-8")
    )


class CommandTests(SynchronousTestCase):
    """The command against a real server, each run a new process."""

    def setUp(self) -> None:
        self.servers = servers()
        self.app = self.servers.socket("app")

    def account(self, result: Result) -> dict[str, Any]:
        """Check a successful run and decode its JSON output."""
        self.assertEqual((result.status, result.stderr), (EXIT_OK, ""))
        decoded: dict[str, Any] = json.loads(result.stdout)
        return decoded

    def test_get(self) -> None:
        """A GET prints the body and exits 0."""
        seen = self.account(scgiClient(f"unix:{self.app}", "/a/b?x=1"))
        self.assertEqual((seen["method"], seen["uri"]), ("GET", "/a/b?x=1"))
        self.assertEqual(seen["args"], {"x": ["1"]})

    def test_hostPort(self) -> None:
        """A bare ``HOST:PORT`` connects over TCP."""
        seen = self.account(scgiClient(f"127.0.0.1:{self.servers.port}", "/tcp"))
        self.assertEqual(seen["uri"], "/tcp")

    def test_endpointString(self) -> None:
        """A Twisted endpoint string connects too."""
        seen = self.account(scgiClient(f"tcp:127.0.0.1:{self.servers.port}", "/tcp"))
        self.assertEqual(seen["uri"], "/tcp")

    def test_serverEndpointString(self) -> None:
        """The server's own ``--listen`` strings connect, as its log line gives them.

        ``scgi-client tcp:4000:interface=127.0.0.1 /`` (copied from "Serving ... on
        tcp:4000:interface=127.0.0.1") and ``unix:/path:mode=660`` reach the server.
        """
        port = self.servers.port
        for endpoint in (
            f"tcp:{port}:interface=127.0.0.1",
            f"tcp:{port}",
            f"tcp:port={port}:interface=0.0.0.0",
            f"unix:{self.app}:mode=660",
            f"unix:{self.app}:mode=660:lockfile=1",
        ):
            seen = self.account(scgiClient(endpoint, "/server-form"))
            self.assertEqual(seen["uri"], "/server-form", endpoint)

    def test_include(self) -> None:
        """``-i`` prints the CGI head (Status line, headers, blank line) first."""
        result = scgiClient("-i", self.app, "/i")
        self.assertEqual(result.status, EXIT_OK)
        head, _, body = result.stdout.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        self.assertEqual(lines[0], b"Status: 200 OK")
        self.assertIn(b"Content-Type: application/json", lines)
        self.assertIn(b"Content-Length: %d" % len(body), lines)
        self.assertEqual(json.loads(body)["uri"], "/i")

    def test_headOnly(self) -> None:
        """``-I`` sends HEAD and prints only the head."""
        result = scgiClient("-I", self.app, "/h")
        self.assertEqual(result.status, EXIT_OK)
        self.assertTrue(result.stdout.startswith(b"Status: 200 OK\r\n"))
        self.assertTrue(result.stdout.endswith(b"\r\n\r\n"))
        self.assertEqual(result.stdout.count(b"\r\n\r\n"), 1)

    def test_notSuccessful(self) -> None:
        """A non-2xx answer exits 22, says so, and still prints the body.

        3xx counts as a failure too; ``--no-fail`` accepts any status, and
        ``--silent`` hides the message.
        """
        result = scgiClient(self.app, "/status/404")
        self.assertEqual(result.status, EXIT_STATUS)
        self.assertEqual(result.stdout, b"status page\n")
        self.assertEqual(
            result.stderr,
            "scgi-client: the server answered 404 Not Found to GET /status/404\n",
        )
        self.assertEqual(scgiClient(self.app, "/status/302").status, EXIT_STATUS)
        self.assertEqual(scgiClient(self.app, "/status/204").status, EXIT_OK)
        result = scgiClient("--no-fail", self.app, "/status/500")
        self.assertEqual((result.status, result.stderr), (EXIT_OK, ""))
        result = scgiClient("-s", self.app, "/status/503")
        self.assertEqual((result.status, result.stderr), (EXIT_STATUS, ""))

    def test_bodyFromStdin(self) -> None:
        """``--data-file -`` sends standard input as the body."""
        payload = bytes(range(256)) * 5000
        seen = self.account(
            scgiClient("-X", "PUT", "--data-file", "-", self.app, "/in", stdin=payload)
        )
        self.assertEqual(seen["method"], "PUT")
        self.assertEqual(seen["length"], len(payload))
        self.assertEqual(seen["sha256"], hashlib.sha256(payload).hexdigest())

    def test_bodyFromFile(self) -> None:
        """``--data-file FILE`` sends the file; a body makes the method POST."""
        path = Path(tempfile.mkdtemp()) / "body.bin"
        self.addCleanup(shutil.rmtree, path.parent)
        path.write_bytes(b"file body")
        seen = self.account(scgiClient("--data-file", str(path), self.app, "/f"))
        self.assertEqual((seen["method"], seen["length"]), ("POST", 9))

    def test_data(self) -> None:
        """``-d`` sends text; with a form content type Twisted parses it."""
        seen = self.account(
            scgiClient(
                "-d",
                "name=caf\u00e9&x=1",
                "-H",
                "Content-Type: application/x-www-form-urlencoded",
                self.app,
                "/form",
            )
        )
        self.assertEqual(seen["method"], "POST")
        self.assertEqual(seen["args"]["x"], ["1"])
        self.assertEqual(seen["length"], len("name=caf\u00e9&x=1".encode()))

    def test_headersAndVariables(self) -> None:
        """``-H``, ``-V``, ``--script-name`` and ``--https`` shape what arrives.

        Repeated headers are merged; ``-V NAME`` leaves a variable out.
        """
        seen = self.account(
            scgiClient(
                "-H",
                "Cookie: a=1",
                "-H",
                "X-Trace:  t1 ",
                "-H",
                "cookie: b=2",
                "-V",
                "REMOTE_ADDR=203.0.113.9",
                "-V",
                "X_EXTRA=yes",
                "-V",
                "SERVER_NAME",
                "--script-name",
                "/app",
                "--https",
                self.app,
                "/app/x",
            )
        )
        variables = seen["variables"]
        self.assertEqual(seen["cookies"], {"a": "1", "b": "2"})
        self.assertEqual(variables["HTTP_X_TRACE"], "t1")
        self.assertEqual(variables["REMOTE_ADDR"], "203.0.113.9")
        self.assertEqual(variables["X_EXTRA"], "yes")
        self.assertNotIn("SERVER_NAME", variables)
        self.assertEqual(variables["SCRIPT_NAME"], "/app")
        self.assertEqual(variables["PATH_INFO"], "/x")
        self.assertTrue(seen["secure"])

    def test_verbose(self) -> None:
        """``-v`` shows the variables sent and the head received on stderr."""
        result = scgiClient("-v", self.app, "/v")
        self.assertEqual(result.status, EXIT_OK)
        lines = result.stderr.splitlines()
        self.assertEqual(lines[0], "> CONTENT_LENGTH=0")
        self.assertIn("> REQUEST_URI=/v", lines)
        self.assertIn("< Status: 200 OK", lines)
        self.assertEqual(json.loads(result.stdout)["uri"], "/v")

    def test_output(self) -> None:
        """``-o FILE`` writes the output there, not to stdout."""
        path = Path(tempfile.mkdtemp()) / "out.json"
        self.addCleanup(shutil.rmtree, path.parent)
        result = scgiClient("-o", str(path), "-i", self.app, "/o")
        self.assertEqual((result.status, result.stdout), (EXIT_OK, b""))
        output = path.read_bytes()
        self.assertTrue(output.startswith(b"Status: 200 OK\r\n"))
        self.assertEqual(json.loads(output.partition(b"\r\n\r\n")[2])["uri"], "/o")

    def test_refused(self) -> None:
        """Nothing listening: exit 7 with "connection refused"."""
        path = str(self.servers.directory / "dead.sock")
        dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(dead.close)
        self.addCleanup(os.unlink, path)
        dead.bind(path)
        result = scgiClient(path, "/")
        self.assertEqual(result.status, EXIT_CONNECT)
        self.assertEqual(result.stderr, f"scgi-client: connection refused by {path}\n")

    def test_noSuchSocket(self) -> None:
        """A socket path that does not exist: exit 7, saying why."""
        result = scgiClient("/nonexistent/scgi.sock", "/")
        self.assertEqual(result.status, EXIT_CONNECT)
        self.assertIn("could not connect to /nonexistent/scgi.sock", result.stderr)
        self.assertIn("No such file or directory", result.stderr)

    def test_malformed(self) -> None:
        """A garbage answer: exit 8 with the parser's reason."""
        result = scgiClient(self.servers.socket("garbage"), "/")
        self.assertEqual(result.status, EXIT_MALFORMED)
        self.assertEqual(
            result.stderr,
            "scgi-client: malformed response: a response header line has no ':': "
            "b'this is not a CGI response'\n",
        )

    def test_timeout(self) -> None:
        """No answer within ``--timeout``: exit 28."""
        silent = self.servers.socket("silent")
        result = scgiClient("--timeout", "0.5", silent, "/")
        self.assertEqual(result.status, EXIT_TIMEOUT)
        self.assertEqual(
            result.stderr,
            f"scgi-client: no response from {silent} within 0.5 seconds\n",
        )

    def test_usage(self) -> None:
        """Bad usage exits 2 with a message."""
        cases = [
            ((), "the following arguments are required: ENDPOINT, PATH"),
            (("-H", "no colon", self.app, "/"), "a header must look like"),
            (("-V", "=x", self.app, "/"), "a variable must look like"),
            (("tcp:a.example", "/"), "is not a client endpoint"),
            (("--timeout", "0", self.app, "/"), "--timeout must be positive"),
            (("-d", "x", "--data-file", "-", self.app, "/"), "not allowed with"),
            ((self.app, "relative"), "does not start with '/'"),
        ]
        for arguments, message in cases:
            result = scgiClient(*arguments)
            self.assertEqual(result.status, EXIT_USAGE, arguments)
            self.assertIn(message, result.stderr, arguments)
            self.assertEqual(result.stdout, b"", arguments)

    def test_help(self) -> None:
        """``--help`` prints the usage, the exit statuses and examples; exits 0."""
        result = scgiClient("--help")
        self.assertEqual(result.status, EXIT_OK)
        self.assertIn(b"usage: scgi-client", result.stdout)
        self.assertIn(b"exit status: 0 for a 2xx answer", result.stdout)

    def test_unreadableBody(self) -> None:
        """A body file that cannot be read: exit 1."""
        result = scgiClient("--data-file", "/nonexistent/body", self.app, "/")
        self.assertEqual(result.status, EXIT_ERROR)
        self.assertIn("scgi-client: cannot read the body:", result.stderr)


class ConsoleScriptTests(SynchronousTestCase):
    """The command is installed as ``scgi-client``."""

    def test_entryPoint(self) -> None:
        """pyproject.toml names ``scgi_twisted.cli:main`` as ``scgi-client``."""
        lines = (ROOT / "pyproject.toml").read_text(encoding="utf-8").splitlines()
        table = lines.index("[project.scripts]")
        entries = []
        for line in lines[table + 1 :]:
            if line.startswith("["):
                break
            if line.strip():
                entries.append(line)
        self.assertEqual(entries, ['scgi-client = "scgi_twisted.cli:main"'])
        self.assertTrue(callable(scgi_twisted.cli.main))

    def test_oldNames(self) -> None:
        """The command line's names are still found in ``scgi_twisted.client``.

        ``main``, ``run`` and the ``EXIT_*`` statuses lived there before the command
        line had its own module; they are the same objects.
        """
        for name in scgi_twisted.cli.__all__:
            self.assertIn(name, scgi_twisted.client.__all__)
            self.assertIs(
                getattr(scgi_twisted.client, name), getattr(scgi_twisted.cli, name)
            )

    def test_libraryWithoutCommandLine(self) -> None:
        """Importing the library client (``_client``) does not load the command line.

        ``scgi_twisted.client``, the public names, imports both.
        """
        completed = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys, scgi_twisted._client; "
                "print(sorted(m for m in sys.modules if m.startswith('scgi_twisted')))",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env=environment(),
            cwd=ROOT,
            check=True,
        )
        self.assertIn("'scgi_twisted._client'", completed.stdout)
        self.assertNotIn("'scgi_twisted.cli'", completed.stdout)

    def test_oldModuleRuns(self) -> None:
        """``python -m scgi_twisted.client`` still runs the command."""
        completed = subprocess.run(
            [sys.executable, "-m", "scgi_twisted.client", "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            env=environment(),
            cwd=ROOT,
            check=False,
        )
        self.assertEqual(completed.returncode, EXIT_OK, completed.stderr)
        self.assertIn("usage: scgi-client", completed.stdout)


class InProcessTests(TestCase):
    """``run`` in this process, with a running reactor and in-memory streams."""

    async def site(self) -> str:
        """Serve the application over TCP; return the endpoint."""
        site = SCGISite(Application())
        port = await serverFromString(_reactor, "tcp:0:interface=127.0.0.1").listen(
            site
        )
        self.addCleanup(port.stopListening)
        return f"127.0.0.1:{port.getHost().port}"

    async def test_streams(self) -> None:
        """Output goes to the given stdout, the body comes from the given stdin."""
        endpoint = await self.site()
        stdout, stderr = io.BytesIO(), io.StringIO()
        status = await run(
            _reactor,
            ["--data-file", "-", "-i", endpoint, "/s"],
            stdin=io.BytesIO(b"abc"),
            stdout=stdout,
            stderr=stderr,
        )
        self.assertEqual((status, stderr.getvalue()), (EXIT_OK, ""))
        head, _, body = stdout.getvalue().partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"Status: 200 OK"))
        self.assertEqual(json.loads(body)["length"], 3)

    async def command(self, *arguments: str, stdin: bytes = b"") -> Result:
        """Run the command in this process; return how it ended."""
        stdout, stderr = io.BytesIO(), io.StringIO()
        status = await run(
            _reactor,
            list(arguments),
            stdin=io.BytesIO(stdin),
            stdout=stdout,
            stderr=stderr,
        )
        return Result(status, stdout.getvalue(), stderr.getvalue())

    async def rawServer(self, answer: bytes | None) -> tuple[str, Deferred[None]]:
        """Listen with a server that answers ``answer`` to anything (or nothing).

        :returns: the endpoint, and a Deferred that fires once its connection is gone.
        """
        lost: Deferred[None] = Deferred()

        class Raw(Protocol):
            def dataReceived(self, data: bytes) -> None:
                if answer is not None and data.endswith(b","):
                    assert self.transport is not None
                    self.transport.write(answer)
                    self.transport.loseConnection()

            def connectionLost(self, reason: Failure = connectionDone) -> None:
                lost.callback(None)

        port = await serverFromString(_reactor, "tcp:0:interface=127.0.0.1").listen(
            Factory.forProtocol(Raw)
        )
        self.addCleanup(port.stopListening)
        return f"127.0.0.1:{port.getHost().port}", lost

    async def test_failures(self) -> None:
        """Each kind of failure gives its exit status and message."""
        endpoint = await self.site()
        result = await self.command("-s", endpoint, "/status/404")
        self.assertEqual((result.status, result.stderr), (EXIT_STATUS, ""))
        result = await self.command(endpoint, "/status/301")
        self.assertEqual(result.status, EXIT_STATUS)
        self.assertIn("answered 301 Moved Permanently", result.stderr)

        garbage, lost = await self.rawServer(b"HTTP/1.0 200 OK\r\n\r\n")
        result = await self.command(garbage, "/")
        self.assertEqual(result.status, EXIT_MALFORMED)
        self.assertIn("malformed response: the response starts with", result.stderr)
        await lost

        silent, lost = await self.rawServer(None)
        result = await self.command("--timeout", "0.2", silent, "/")
        self.assertEqual(result.status, EXIT_TIMEOUT)
        await lost

        directory = tempfile.mkdtemp(prefix="scgi-cli-")
        self.addCleanup(shutil.rmtree, directory, True)
        refused = os.path.join(directory, "dead.sock")
        dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(dead.close)
        dead.bind(refused)
        result = await self.command(refused, "/")
        self.assertEqual(result.status, EXIT_CONNECT)
        self.assertEqual(
            result.stderr, f"scgi-client: connection refused by {refused}\n"
        )

    async def test_usageAndFiles(self) -> None:
        """Usage errors give 2; body and output files are read and written."""
        endpoint = await self.site()
        for arguments in (
            ("-H", "nocolon", endpoint, "/"),
            ("-V", "=1", endpoint, "/"),
            ("--timeout", "-1", endpoint, "/"),
            ("nosuchtype:a:b", "/"),
            (endpoint, "relative"),
            ("-v", endpoint, "relative"),
            (endpoint,),
        ):
            result = await self.command(*arguments)
            self.assertEqual(result.status, EXIT_USAGE, arguments)
            self.assertIn("scgi-client: error: ", result.stderr, arguments)

        directory = Path(tempfile.mkdtemp(prefix="scgi-cli-"))
        self.addCleanup(shutil.rmtree, directory, True)
        body = directory / "body"
        body.write_bytes(b"from a file")
        output = directory / "out"
        result = await self.command(
            "-v", "--data-file", str(body), "-o", str(output), endpoint, "/f"
        )
        self.assertEqual(result.status, EXIT_OK)
        self.assertIn("> CONTENT_LENGTH=11\n", result.stderr)
        self.assertIn("< Status: 200 OK\n", result.stderr)
        self.assertEqual(json.loads(output.read_bytes())["length"], 11)

        result = await self.command("--data-file", str(body), endpoint, "relative")
        self.assertEqual(result.status, EXIT_USAGE)
        result = await self.command(
            "--data-file", str(directory / "none"), endpoint, "/"
        )
        self.assertEqual(result.status, EXIT_ERROR)
        result = await self.command(
            "-d",
            "text",
            "-H",
            "X-A: 1",
            "-V",
            "X_B=2",
            "-V",
            "SERVER_NAME",
            endpoint,
            "/d",
        )
        seen = json.loads(result.stdout)
        self.assertEqual(seen["method"], "POST")
        self.assertEqual(seen["variables"]["HTTP_X_A"], "1")
        self.assertEqual(seen["variables"]["X_B"], "2")
        self.assertNotIn("SERVER_NAME", seen["variables"])
        result = await self.command("-I", endpoint, "/h")
        self.assertTrue(result.stdout.startswith(b"Status: 200 OK\r\n"))
        result = await self.command("-I", "-X", "GET", endpoint, "/h")
        self.assertTrue(result.stdout.startswith(b"Status: 200 OK\r\n"))
        self.assertTrue(result.stdout.endswith(b"\r\n\r\n"))

    async def test_outputFails(self) -> None:
        """An output that fails while the body is written: exit 1, saying why."""
        endpoint = await self.site()

        class Broken(io.BytesIO):
            def write(self, data: Any) -> int:
                raise BrokenPipeError("the reader went away")

        stderr = io.StringIO()
        status = await run(_reactor, [endpoint, "/"], stdout=Broken(), stderr=stderr)
        self.assertEqual(status, EXIT_ERROR)
        self.assertEqual(
            stderr.getvalue(),
            "scgi-client: cannot write the output: the reader went away\n",
        )

    async def test_helpToStdout(self) -> None:
        """``--help`` writes to the given stdout and gives 0."""
        stdout = io.BytesIO()
        status = await run(_reactor, ["--help"], stdout=stdout, stderr=io.StringIO())
        self.assertEqual(status, EXIT_OK)
        self.assertIn(b"usage: scgi-client", stdout.getvalue())

    async def test_unwritableOutput(self) -> None:
        """An output file that cannot be opened: 1, and no request is left running."""
        endpoint = await self.site()
        stderr = io.StringIO()
        status = await run(
            _reactor,
            ["-o", "/nonexistent/dir/out", endpoint, "/"],
            stdout=io.BytesIO(),
            stderr=stderr,
        )
        self.assertEqual(status, EXIT_ERROR)
        self.assertIn("scgi-client: cannot write the output:", stderr.getvalue())
