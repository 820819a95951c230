"""Tests for the test support package (:mod:`tests.support`) and the suite's layout.

The encoder is checked against the specification's worked example (the golden
vectors), the response parser against what a server must and must not write, and
the in-memory driver against a real site; and no test module imports another.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from scgi_twisted import LocalProtocolError, SCGISite

from .support.apps import Recorder
from .support.memory import connect, serveSCGI
from .support.scgi import (
    DEEPTHOUGHT,
    DEEPTHOUGHT_BLOCK,
    DEEPTHOUGHT_BODY,
    DEEPTHOUGHT_HEAD,
    DEEPTHOUGHT_PAIRS,
    DEEPTHOUGHT_SHA256,
    MINIMAL,
    Response,
    buildRequest,
    nginxVariables,
    parseHTTPRefusal,
    parseResponse,
    rawRequest,
)

TESTS = Path(__file__).resolve().parent


class GoldenVectorTests(SynchronousTestCase):
    """The golden vectors are the spec's example, and the encoder reproduces them."""

    def test_parts(self) -> None:
        """The head, block and body are the pieces of the one example request."""
        self.assertEqual(DEEPTHOUGHT_HEAD + DEEPTHOUGHT_BODY, DEEPTHOUGHT)
        self.assertEqual(DEEPTHOUGHT_HEAD, b"70:" + DEEPTHOUGHT_BLOCK + b",")
        self.assertEqual(len(DEEPTHOUGHT_BLOCK), 70)
        self.assertEqual(len(DEEPTHOUGHT_BODY), 27)
        self.assertEqual(hashlib.sha256(DEEPTHOUGHT).hexdigest(), DEEPTHOUGHT_SHA256)

    def test_buildRequest(self) -> None:
        """The encoder frames the example's variables to the example, byte for byte."""
        self.assertEqual(
            buildRequest(DEEPTHOUGHT_PAIRS[2:], DEEPTHOUGHT_BODY), DEEPTHOUGHT
        )

    def test_buildRequestMinimal(self) -> None:
        """The encoder's smallest request is the spec's 24-byte one."""
        self.assertEqual(buildRequest(), MINIMAL)

    def test_rawRequest(self) -> None:
        """The raw framer, given every pair, frames the example too."""
        self.assertEqual(rawRequest(DEEPTHOUGHT_PAIRS, DEEPTHOUGHT_BODY), DEEPTHOUGHT)


class BuildRequestTests(SynchronousTestCase):
    """The encoder builds valid requests only (bar nginx's repeated headers)."""

    def test_declaredLength(self) -> None:
        """``contentLength`` is declared instead of the body's length."""
        data = buildRequest([], b"abc", contentLength=5)
        self.assertTrue(data.startswith(b"24:CONTENT_LENGTH\x005\x00SCGI\x001\x00,"))
        self.assertTrue(data.endswith(b",abc"))

    def test_scgiGivenOnce(self) -> None:
        """An ``SCGI=1`` among the variables is sent once, second."""
        self.assertEqual(buildRequest([(b"SCGI", b"1")]), MINIMAL)

    def test_refusesInvalid(self) -> None:
        """NUL in a value, an empty name or a repeated non-HTTP name is refused."""
        for pairs in (
            [(b"REQUEST_URI", b"/\x00")],
            [(b"", b"x")],
            [(b"REQUEST_METHOD", b"GET"), (b"REQUEST_METHOD", b"PUT")],
            [(b"HTTP_X", b"1"), (b"HTTP_X", b"2"), (b"A\x00B", b"")],
        ):
            self.assertRaises(LocalProtocolError, buildRequest, pairs)

    def test_repeatedHTTPName(self) -> None:
        """A repeated ``HTTP_*`` name, as nginx sends it, is framed as given."""
        pairs = [(b"HTTP_X", b"1"), (b"HTTP_X", b"2")]
        expected = rawRequest([(b"CONTENT_LENGTH", b"0"), (b"SCGI", b"1"), *pairs])
        self.assertEqual(buildRequest(pairs), expected)

    def test_nginxVariables(self) -> None:
        """Overrides replace, add, or (with ``None``) drop a variable."""
        variables = dict(
            nginxVariables(b"/p?q=1", REQUEST_METHOD=b"POST", HTTP_HOST=None, X=b"y")
        )
        self.assertEqual(variables[b"REQUEST_METHOD"], b"POST")
        self.assertEqual(variables[b"QUERY_STRING"], b"q=1")
        self.assertEqual(variables[b"DOCUMENT_URI"], b"/p")
        self.assertNotIn(b"HTTP_HOST", variables)
        self.assertEqual(variables[b"X"], b"y")


class ParseResponseTests(SynchronousTestCase):
    """The parser is the library's, plus the strict form a server writes."""

    def test_parsed(self) -> None:
        """Status, reason, headers in order and body are read."""
        response = parseResponse(
            b"Status: 404 Not Found\r\nA: 1\r\nB: 2\r\nA: 3\r\n\r\nbody"
        )
        self.assertEqual(response.status, 404)
        self.assertEqual(response.reason, b"Not Found")
        self.assertEqual(response.headers, ((b"A", b"1"), (b"B", b"2"), (b"A", b"3")))
        self.assertEqual(response.values(b"a"), [b"1", b"3"])
        self.assertEqual(response.header(b"b"), b"2")
        self.assertIsNone(response.header(b"c"))
        self.assertEqual(response.body, b"body")

    def test_partialBody(self) -> None:
        """A body shorter than its Content-Length is what has arrived so far."""
        response = parseResponse(b"Status: 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        self.assertEqual(response.body, b"abc")

    def test_strictForm(self) -> None:
        """What the library tolerates but a server never writes is refused."""
        for data in (
            b"Content-Type: text/plain\r\nStatus: 200 OK\r\n\r\n",
            b"Status: 200 OK\nA: 1\r\n\r\n",
            b"Status: 200 OK\r\nA:1\r\n\r\n",
            b"Status: 200 OK\r\n",
        ):
            self.assertRaises(ValueError, parseResponse, data)

    def test_libraryChecks(self) -> None:
        """The library's own checks hold: length, Transfer-Encoding, status, HEAD."""
        for data, method in (
            (b"Status: 200 OK\r\nContent-Length: 1\r\n\r\nab", b"GET"),
            (b"Status: 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", b"GET"),
            (b"Status: 20 OK\r\n\r\n", b"GET"),
            (b"Status: 200 OK\r\n\r\nbody", b"HEAD"),
        ):
            self.assertRaises(ValueError, parseResponse, data, method)

    def test_httpRefusal(self) -> None:
        """An HTTP/1.0 status line is read as the status; another line is refused."""
        response = parseHTTPRefusal(b"HTTP/1.0 400 Bad Request\r\nA: b\r\n\r\nno")
        self.assertEqual((response.status, response.body), (400, b"no"))
        self.assertRaises(ValueError, parseHTTPRefusal, b"HTTP/1.1 400 Bad\r\n\r\n")

    def test_response(self) -> None:
        """``Response`` keeps the Status line's value and headers by lower name."""
        response = Response(b"Status: 200 OK\r\nX-A: 1\r\n\r\n{}")
        self.assertEqual(response.status, b"200 OK")
        self.assertEqual(response.header(b"x-a"), b"1")
        self.assertEqual(response.json(), {})


class MemoryDriverTests(SynchronousTestCase):
    """The in-memory driver runs a site's real channel."""

    def test_connect(self) -> None:
        """``connect`` gives a connected channel; the request reaches the resource."""
        recorder = Recorder(b"hi")
        channel, transport = connect(SCGISite(recorder, reactor=Clock()))
        channel.dataReceived(buildRequest(nginxVariables(b"/x")))
        self.assertEqual(parseResponse(transport.value()).body, b"hi")
        self.assertEqual([seen.uri for seen in recorder.seen], [b"/x"])

    def test_serveSCGI(self) -> None:
        """``serveSCGI`` does one whole exchange and parses the answer."""
        site = SCGISite(Recorder(b"hi"), reactor=Clock())
        response = serveSCGI(site, buildRequest(nginxVariables(b"/")))
        self.assertEqual((response.status, response.body), (b"200 OK", b"hi"))


class LayoutTests(SynchronousTestCase):
    """What the tests share lives in ``tests.support``."""

    def test_noTestModuleImportsAnother(self) -> None:
        """No module of ``tests/`` imports a ``test_*`` module.

        Shared code is in ``tests.support``, so no test runs twice and no test
        module depends on another.
        """
        offenders = []
        for path in sorted(TESTS.glob("*.py")) + sorted(TESTS.glob("support/*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names: list[str] = []
                if isinstance(node, ast.ImportFrom):
                    names = [node.module or ""]
                    if node.module in (None, "tests"):
                        names += [alias.name for alias in node.names]
                elif isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                for name in names:
                    if name.rpartition(".")[2].startswith("test_"):
                        offenders.append(f"{path.name}: {name}")
        self.assertEqual(offenders, [])
