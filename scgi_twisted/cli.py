"""``scgi-client``, the curl of SCGI backends: the command line of the SCGI client.

It sends one request with :class:`scgi_twisted.client.SCGIClient`, prints the response,
and exits with a curl-like status (``EXIT_*``).  :func:`main` runs it as a program
(installed as ``scgi-client``, or ``python -m scgi_twisted.cli``); :func:`run` runs it
under a reactor that is already running, as tests do.  ``scgi-client --help`` lists
its options and ``docs/client.md`` its exit statuses.

This module builds on the library client (``_client``), which never imports it;
:mod:`scgi_twisted.client` re-exports :func:`main`, :func:`run` and the statuses.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Any, NoReturn, cast

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.web.client import FileBodyProducer
from twisted.web.iweb import IBodyProducer

from ._client import Response, SCGIClient, clientEndpoint
from ._clientsansio import request_variables
from ._errors import (
    ConnectFailedError,
    MalformedResponseError,
    ResponseTimeoutError,
    SCGIError,
)

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

__all__ = [
    "EXIT_CONNECT",
    "EXIT_ERROR",
    "EXIT_MALFORMED",
    "EXIT_OK",
    "EXIT_STATUS",
    "EXIT_TIMEOUT",
    "EXIT_USAGE",
    "main",
    "run",
]

EXIT_OK = 0
"""A complete response with a 2xx status (any status with ``--no-fail``)."""
EXIT_ERROR = 1
"""Any other failure: an unreadable body file, an unwritable output file."""
EXIT_USAGE = 2
"""Bad options or arguments."""
EXIT_CONNECT = 7
"""Could not connect (as curl's 7)."""
EXIT_MALFORMED = 8
"""The response was malformed or incomplete (as curl's 8, "weird server reply")."""
EXIT_STATUS = 22
"""A complete response whose status is not 2xx (as curl's 22 with ``--fail``)."""
EXIT_TIMEOUT = 28
"""The exchange did not finish within ``--timeout`` (as curl's 28)."""

_DESCRIPTION = """\
Send one request to an SCGI server, as nginx, Apache or lighttpd would, and print the
response body.  The "curl" of SCGI backends: for health checks, and for debugging a
deployment without its frontend.
"""

_EPILOG = """\
ENDPOINT is a Twisted client endpoint (tcp:127.0.0.1:4000, unix:/run/app.sock),
the server's own --listen string (tcp:4000:interface=127.0.0.1,
unix:/run/app.sock:mode=660), HOST:PORT, or the path of a unix socket.

exit status: 0 for a 2xx answer; 22 for any other status (0 with --no-fail);
7 if the connection failed; 8 for a malformed or incomplete response; 28 on
timeout; 2 for bad usage; 1 for any other error.

examples:
  scgi-client unix:/run/app/scgi.sock /health
  scgi-client -i 127.0.0.1:4000 '/search?q=twisted'
  scgi-client -X PUT -H 'Content-Type: application/json' --data-file - \\
      /run/app/scgi.sock /api/item/1 < item.json
  scgi-client -V SCRIPT_NAME=/app -V HTTPS=on -v 127.0.0.1:4000 /app/
"""


class _UsageError(Exception):
    """The command line is not valid."""


class _ArgumentParser(argparse.ArgumentParser):
    """An argument parser that reports to our streams instead of exiting."""

    def __init__(self, stdout: IO[str], stderr: IO[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._stdout = stdout
        self._stderr = stderr

    def error(self, message: str) -> NoReturn:
        """Report bad usage."""
        raise _UsageError(message)

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        """Stop after ``--help``."""
        if message:
            self._stderr.write(message)
        raise SystemExit(status)

    def print_help(self, file: SupportsWrite[str] | None = None) -> None:
        """Print the help to our standard output."""
        super().print_help(file or self._stdout)


def _argumentParser(stdout: IO[str], stderr: IO[str]) -> _ArgumentParser:
    """Build the command line's parser."""
    parser = _ArgumentParser(
        stdout,
        stderr,
        prog="scgi-client",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("endpoint", metavar="ENDPOINT", help="the SCGI server")
    parser.add_argument(
        "path", metavar="PATH", help="the request target, with any query: /a/b?c=d"
    )
    parser.add_argument(
        "-X",
        "--method",
        help="the request method (default: GET; POST with a body; HEAD with -I)",
    )
    parser.add_argument(
        "-H",
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="add a request header (repeatable; repeated names are merged)",
    )
    body = parser.add_mutually_exclusive_group()
    body.add_argument("-d", "--data", help="send this text (UTF-8) as the body")
    body.add_argument(
        "--data-file",
        metavar="FILE",
        help="send this file as the body; '-' reads standard input",
    )
    parser.add_argument(
        "-V",
        "--var",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help=(
            "set an SCGI variable, overriding the one built from the request "
            "(repeatable); a bare NAME leaves the variable out"
        ),
    )
    parser.add_argument(
        "--script-name",
        default="",
        metavar="PREFIX",
        help=(
            "the frontend's mount point: SCRIPT_NAME=PREFIX and PATH_INFO the rest "
            "of the path (default: the root)"
        ),
    )
    parser.add_argument(
        "--https",
        action="store_true",
        help="send the variables of a TLS client (HTTPS=on, REQUEST_SCHEME=https)",
    )
    parser.add_argument(
        "-i", "--include", action="store_true", help="print the response head too"
    )
    parser.add_argument(
        "-I",
        "--head",
        action="store_true",
        help="send a HEAD request and print only the response head",
    )
    parser.add_argument(
        "-o", "--output", metavar="FILE", help="write the output to FILE"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="the most time the whole exchange may take (default: 30)",
    )
    parser.add_argument(
        "--no-fail",
        action="store_true",
        help="exit 0 for any complete response, whatever its status",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="print the SCGI variables sent and the response head on standard error",
    )
    parser.add_argument(
        "-s", "--silent", action="store_true", help="print no error messages"
    )
    return parser


def _headerArgument(text: str) -> tuple[str, str]:
    """Split ``Name: value``."""
    name, colon, value = text.partition(":")
    if not colon or not name.strip():
        raise _UsageError(f"a header must look like 'Name: value': {text!r}")
    return name.strip(), value.strip()


def _variableArgument(text: str) -> tuple[str, str | None]:
    """Split ``NAME=VALUE``; a bare ``NAME`` removes the variable."""
    name, equals, value = text.partition("=")
    if not name:
        raise _UsageError(f"a variable must look like 'NAME=VALUE': {text!r}")
    return name, value if equals else None


def _discard(data: bytes) -> None:
    """Drop a piece of body."""


def _formatHead(response: Response) -> bytes:
    """Format a response head the way the server sent it (CGI form)."""
    lines = [b"Status: %d %s\r\n" % (response.code, response.phrase)]
    lines += [b"%s: %s\r\n" % (name, value) for name, value in response.rawHeaders]
    lines.append(b"\r\n")
    return b"".join(lines)


def _printable(value: bytes) -> str:
    """Show bytes on a terminal, escaping what is not printable."""
    return value.decode("latin-1").encode("unicode_escape").decode("ascii")


def _spool(source: IO[bytes]) -> IO[bytes]:
    """Copy a stream of unknown length to a temporary file, for its length."""
    spool = tempfile.SpooledTemporaryFile(max_size=1024 * 1024)  # noqa: SIM115
    while chunk := source.read(64 * 1024):
        spool.write(chunk)
    spool.seek(0)
    return cast(IO[bytes], spool)


def run(
    reactor: Any,
    argv: Sequence[str],
    *,
    stdin: IO[bytes] | None = None,
    stdout: IO[bytes] | None = None,
    stderr: IO[str] | None = None,
) -> Deferred[int]:
    """Run the command line with a running reactor; see :func:`main`.

    :param reactor: the reactor, already running (for instance under trial).
    :param argv: the arguments, without the program name.
    :param stdin: the body source for ``--data-file -`` (default: standard input).
    :param stdout: where the response goes (default: standard output).
    :param stderr: where messages go (default: standard error).
    :returns: a Deferred that fires with the exit status.
    """
    inStream = stdin if stdin is not None else sys.stdin.buffer
    outStream = stdout if stdout is not None else sys.stdout.buffer
    errStream = stderr if stderr is not None else sys.stderr
    textOut = sys.stdout if stdout is None else cast(IO[str], _TextTo(outStream))
    parser = _argumentParser(textOut, errStream)
    try:
        options = parser.parse_args(list(argv))
    except SystemExit as stop:
        return succeed(int(stop.code or 0))
    except _UsageError as error:
        errStream.write(f"{parser.format_usage()}scgi-client: error: {error}\n")
        return succeed(EXIT_USAGE)
    return Deferred.fromCoroutine(
        _Command(reactor, options, inStream, outStream, errStream).run()
    )


class _TextTo:
    """A text stream writing UTF-8 into a binary one (for ``--help``)."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        """Write text."""
        self._stream.write(text.encode("utf-8"))
        return len(text)


class _Command:
    """One run of the command line."""

    def __init__(
        self,
        reactor: Any,
        options: argparse.Namespace,
        stdin: IO[bytes],
        stdout: IO[bytes],
        stderr: IO[str],
    ) -> None:
        self.reactor = reactor
        self.options = options
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.bodyFile: IO[bytes] | None = None

    def say(self, message: str) -> None:
        """Print an error message, unless silenced."""
        if not self.options.silent:
            self.stderr.write(f"scgi-client: {message}\n")

    async def run(self) -> int:
        """Send the request, print the response, and return the exit status."""
        options = self.options
        try:
            headers = [_headerArgument(text) for text in options.header]
            variables = [_variableArgument(text) for text in options.var]
            if options.timeout <= 0:
                raise _UsageError("--timeout must be positive")
            endpoint = clientEndpoint(self.reactor, options.endpoint)
        except (_UsageError, ValueError) as error:
            self.say(f"error: {error}")
            return EXIT_USAGE
        try:
            output = self.openOutput()
        except OSError as error:
            self.say(f"cannot write the output: {error}")
            return EXIT_ERROR
        try:
            return await self.exchange(endpoint, headers, variables, output)
        finally:
            if output is not self.stdout:
                output.close()

    async def exchange(
        self,
        endpoint: IStreamClientEndpoint,
        headers: list[tuple[str, str]],
        variables: list[tuple[str, str | None]],
        output: IO[bytes],
    ) -> int:
        """Send the request and write the response to ``output``."""
        options = self.options
        try:
            body = self.body()
        except OSError as error:
            self.say(f"cannot read the body: {error}")
            return EXIT_ERROR
        method = options.method or (
            "HEAD" if options.head else "GET" if body is None else "POST"
        )
        client = SCGIClient(
            self.reactor,
            endpoint,
            timeout=options.timeout,
            script_name=options.script_name,
            secure=options.https,
        )
        client.description = options.endpoint
        try:
            if options.verbose:
                self.showVariables(client, method, headers, variables, body)
            responded = client.request(
                method, options.path, headers=headers, variables=variables, body=body
            )
        except SCGIError as error:
            if self.bodyFile is not None:
                self.bodyFile.close()
            self.say(f"error: {error}")
            return EXIT_USAGE
        return await self.receive(responded, output, method)

    def body(self) -> bytes | IBodyProducer | None:
        """Return the request body the options name."""
        options = self.options
        if options.data is not None:
            return cast(str, options.data).encode("utf-8")
        if options.data_file is None:
            return None
        if options.data_file == "-":
            source = _spool(self.stdin)
        else:
            source = open(options.data_file, "rb")  # noqa: SIM115
        self.bodyFile = source
        return cast(
            IBodyProducer,
            FileBodyProducer(source),  # type: ignore[no-untyped-call]
        )

    def openOutput(self) -> IO[bytes]:
        """Open the output file, or return standard output."""
        if self.options.output is None or self.options.output == "-":
            return self.stdout
        return open(self.options.output, "wb")

    def showVariables(
        self,
        client: SCGIClient,
        method: str,
        headers: list[tuple[str, str]],
        variables: list[tuple[str, str | None]],
        body: bytes | IBodyProducer | None,
    ) -> None:
        """Print the variables that will be sent (``--verbose``)."""
        if body is None or isinstance(body, bytes):
            length = len(body or b"")
        else:
            length = cast(int, body.length)
        pairs = request_variables(
            method,
            self.options.path,
            headers,
            variables,
            length,
            script_name=client.script_name,
            secure=client.secure,
        )
        for name, value in pairs:
            self.stderr.write(f"> {_printable(name)}={_printable(value)}\n")

    async def receive(
        self, responded: Deferred[Response], output: IO[bytes], method: str
    ) -> int:
        """Wait for the response, print it, and return the exit status."""
        options = self.options
        try:
            response = await responded
            if options.verbose:
                for line in _formatHead(response).splitlines():
                    self.stderr.write(f"< {_printable(line)}\n")
            if options.include or options.head:
                output.write(_formatHead(response))
            # With --head only the head is shown, even if a body comes.
            await response.collect(_discard if options.head else output.write)
            output.flush()
        except ConnectFailedError as error:
            self.say(str(error))
            return EXIT_CONNECT
        except ResponseTimeoutError as error:
            self.say(str(error))
            return EXIT_TIMEOUT
        except MalformedResponseError as error:
            self.say(f"malformed response: {error}")
            return EXIT_MALFORMED
        except OSError as error:
            self.say(f"cannot write the output: {error}")
            return EXIT_ERROR
        except Exception as error:
            self.say(f"error: {error!r}")
            return EXIT_ERROR
        if 200 <= response.code < 300 or options.no_fail:
            return EXIT_OK
        self.say(
            f"the server answered {response.code} "
            f"{response.phrase.decode('latin-1')} to {method} {options.path}"
        )
        return EXIT_STATUS


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``scgi-client``: send one request and print the response.

    This runs the global reactor (with ``twisted.internet.task.react``), so call it
    once per process; under a running reactor use :func:`run`.

    :param argv: the arguments, without the program name (default: ``sys.argv``).
    :returns: the exit status (see ``EXIT_*``).
    """
    from twisted.internet.task import react  # noqa: PLC0415

    arguments = list(sys.argv[1:] if argv is None else argv)

    def start(reactor: Any) -> Deferred[None]:
        def stop(code: int) -> None:
            raise SystemExit(code)

        return run(reactor, arguments).addCallback(stop)

    try:
        react(start)
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
