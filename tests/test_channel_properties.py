"""Hypothesis properties of the whole SCGI channel, in memory.

Strategy: :func:`runChannel` builds the real channel of an
:class:`~scgi_twisted.SCGISite` (on a :class:`~twisted.internet.task.Clock`) over a
recording ``StringTransport``, feeds it bytes (whole or split), optionally a read-EOF,
advances the clock past every timeout, and ends the connection the way a transport
would (``connectionLost`` as soon as the channel closed, and at the end in any case).
:func:`checkOutcome` then states the channel's contract for *any* input:

* no exception escapes ``dataReceived``, ``readConnectionLost``, ``connectionLost``
  or a timer;
* the output is empty or exactly one strict CGI response (``Status: NNN reason``,
  CRLF header lines, a blank line, a body as long as its ``Content-Length``), and
  nothing is written after the channel closed or half-closed;
* the connection ends (``loseConnection`` or ``abortConnection``) once the clock has
  passed every timeout, unless a request is still being served;
* every request handed to the application learns how it ended (``notifyFinish``
  fires or errbacks);
* at most one line is logged by ``scgi_twisted``; nothing at error or critical level,
  and no failure.

Inputs are arbitrary bytes, and nginx-like requests with byte-level mutations
(optionally re-framed so that the length stays right and the mutation reaches the
header checks), so that the properties reach the deep paths too.  The same harness
drives the coverage-guided fuzzer, ``tests/fuzz_scgi.py``; each crash it found is a
regression test in :class:`FuzzRegressionTests`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.logger import (
    LogLevel,
)
from twisted.trial.unittest import SynchronousTestCase

from .support.channelharness import (
    ADVANCES,
    ChannelOutcome,
    RecordingTransport,
    checkOutcome,
    runChannel,
)
from .support.scgi import (
    DEEPTHOUGHT,
    buildRequest,
    headerBlock,
    netstring,
    nginxVariables,
    parseHTTPRefusal,
    parseResponse,
)


def cut(data: bytes, points: Sequence[int]) -> list[bytes]:
    """Split ``data`` at ``points`` (each taken modulo ``len(data) + 1``)."""
    if not data:
        return []
    marks = sorted({point % (len(data) + 1) for point in points} | {0, len(data)})
    return [data[start:end] for start, end in itertools.pairwise(marks)]


# Strategies.

_NAMES = [
    b"REQUEST_METHOD",
    b"REQUEST_URI",
    b"QUERY_STRING",
    b"CONTENT_TYPE",
    b"SERVER_PROTOCOL",
    b"SERVER_NAME",
    b"SERVER_PORT",
    b"REMOTE_ADDR",
    b"REMOTE_PORT",
    b"HTTPS",
    b"REQUEST_SCHEME",
    b"SCRIPT_NAME",
    b"PATH_INFO",
    b"HTTP_HOST",
    b"HTTP_COOKIE",
    b"HTTP_X_FOO",
    b"HTTP_CONTENT_LENGTH",
    b"HTTP_TRANSFER_ENCODING",
    b"HTTP_PROXY",
    b"SCGI",
    b"CONTENT_LENGTH",
]
_VALUES = [
    b"",
    b"GET",
    b"POST",
    b"HEAD",
    b"/",
    b"/ok",
    b"/echo?a=1&b",
    b"/pending",
    b"/later",
    b"/stream",
    b"/info",
    b"/crlf-header",
    b"/upload?mode=slow",
    b"/upload?mode=stop",
    b"/upload?mode=early",
    b"/upload?mode=refuse",
    b"HTTP/1.1",
    b"HTTP/1.0",
    b"on",
    b"https",
    b"127.0.0.1",
    b"::1",
    b"8080",
    b"a=1; b=2",
    b"multipart/form-data; boundary=x",
    b"application/x-www-form-urlencoded",
    b"1",
    b"0",
    b"\xff\xfe",
    b"a\r\nb",
]
_PATHS = [b"/", b"/ok", b"/echo", b"/info", b"/pending", b"/later", b"/stream"]
_PATHS += [b"/crlf-header", b"/nowhere", b"/upload", b"/upload?mode=slow"]
_PATHS += [b"/upload?mode=stop", b"/upload?mode=early", b"/upload?mode=refuse"]

_noNul = st.binary(max_size=12).map(lambda value: value.replace(b"\0", b""))
names = st.one_of(st.sampled_from(_NAMES), _noNul.filter(bool))
values = st.one_of(st.sampled_from(_VALUES), _noNul)


@st.composite
def validRequests(draw: st.DrawFn) -> bytes:
    """An nginx-like request to one of the app's resources, maybe with extras."""
    path = draw(st.sampled_from(_PATHS))
    query = draw(st.sampled_from([b"", b"a=1", b"\xff=%00"]))
    if query:
        query = (b"&" if b"?" in path else b"?") + query
    method = draw(st.sampled_from([b"GET", b"POST", b"HEAD"]))
    body = draw(st.binary(max_size=40)) if method == b"POST" else b""
    variables = nginxVariables(path + query, REQUEST_METHOD=method)
    headerValue = st.binary(max_size=12).map(
        lambda value: value.translate(None, b"\0\r\n")
    )
    extra = draw(
        st.lists(
            st.tuples(
                st.sampled_from([b"HTTP_X_FOO", b"HTTP_COOKIE", b"HTTP_ACCEPT"]),
                headerValue,
            ),
            max_size=3,
        )
    )
    trailing = draw(st.sampled_from([b"", b"", b"extra bytes"]))
    return buildRequest([*variables, *extra], body) + trailing


@st.composite
def mutatedRequests(draw: st.DrawFn) -> bytes:
    """A valid request (or the spec's example) with byte-level mutations.

    Half the time the header block is mutated and framed again with its new length,
    so the mutation reaches the header checks instead of the terminator check.
    """
    if draw(st.booleans()):
        pairs = draw(st.lists(st.tuples(names, values), max_size=6))
        body = draw(st.binary(max_size=20))
        declared = draw(st.sampled_from([len(body), len(body), 0, len(body) + 3]))
        block = headerBlock([(b"CONTENT_LENGTH", b"%d" % declared), (b"SCGI", b"1")])
        block += headerBlock(pairs)
        reframe = True
    else:
        data = draw(st.one_of(validRequests(), st.just(DEEPTHOUGHT)))
        length, _, rest = data.partition(b":")
        block, body = rest[: int(length)], rest[int(length) + 1 :]
        reframe = draw(st.booleans())
    operations = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["replace", "insert", "delete", "duplicate"]),
                st.integers(0, 400),
                st.integers(1, 8),
                st.binary(min_size=1, max_size=4),
            ),
            max_size=3,
        )
    )
    target = bytearray(block if reframe else netstring(block) + body)
    for operation, position, size, payload in operations:
        at = position % (len(target) + 1)
        if operation == "replace":
            target[at : at + len(payload)] = payload
        elif operation == "insert":
            target[at:at] = payload
        elif operation == "delete":
            del target[at : at + size]
        else:
            target[at:at] = target[at : at + size]
    return netstring(bytes(target)) + body if reframe else bytes(target)


hostileBytes = st.one_of(
    st.binary(max_size=200),
    st.binary(max_size=24).map(lambda tail: b"70:" + tail),
    st.sampled_from([b"9" * 9000, b"A" * 300, b"GET / HTTP/1.1\r\n\r\n", b"0:,"]),
)


class ChannelPropertyTests(SynchronousTestCase):
    """Any input gives one well-formed response or a clean close, never a crash."""

    def check(self, outcome: ChannelOutcome) -> None:
        try:
            checkOutcome(outcome)
        except AssertionError as error:
            self.fail(str(error))

    @settings(derandomize=True, deadline=None, max_examples=300)
    @given(
        data=hostileBytes,
        points=st.lists(st.integers(0, 300), max_size=6),
        eof=st.booleans(),
        advances=st.lists(st.sampled_from(ADVANCES), max_size=3),
    )
    def test_anyBytes(
        self, data: bytes, points: list[int], eof: bool, advances: list[float]
    ) -> None:
        """Arbitrary bytes, split anywhere, with or without EOF and timeouts."""
        self.check(runChannel(cut(data, points), eof=eof, advances=advances))

    @settings(derandomize=True, deadline=None, max_examples=400)
    @given(
        data=mutatedRequests(),
        points=st.lists(st.integers(0, 300), max_size=4),
        eof=st.booleans(),
        advances=st.lists(st.sampled_from(ADVANCES), max_size=3),
        halfClose=st.booleans(),
        strict=st.booleans(),
        maxBodySize=st.sampled_from([None, None, 10]),
    )
    def test_mutatedRequests(
        self,
        *,
        data: bytes,
        points: list[int],
        eof: bool,
        advances: list[float],
        halfClose: bool,
        strict: bool,
        maxBodySize: int | None,
    ) -> None:
        """Mutated nginx-like requests, under every site policy."""
        outcome = runChannel(
            cut(data, points),
            eof=eof,
            advances=advances,
            halfClose=halfClose,
            mergeDuplicates=not strict,
            maxBodySize=maxBodySize,
        )
        self.check(outcome)

    @settings(derandomize=True, deadline=None, max_examples=200)
    @given(
        data=validRequests(),
        points=st.lists(st.integers(0, 300), max_size=6),
        halfClose=st.booleans(),
    )
    def test_validRequestsServed(
        self, data: bytes, points: list[int], halfClose: bool
    ) -> None:
        """A valid request, split anywhere, is answered by its resource exactly once.

        With the frontend's EOF after the request (a half-close) the answer still
        comes in half-close mode; without it, the answer always comes unless the
        resource is ``/pending``.
        """
        outcome = runChannel(
            cut(data, points), eof=halfClose, advances=(2.5, 2.5), halfClose=halfClose
        )
        self.check(outcome)
        response = parseResponse(outcome.output) if outcome.output else None
        if b"/nowhere" in data:
            assert response is not None
            self.assertEqual((response.status, outcome.app.requests), (404, []))
            return
        self.assertEqual(len(outcome.app.requests), 1)
        if b"/pending" in data:
            self.assertIsNone(response)
            self.assertEqual(outcome.app.ended, {0: "lost"})
        else:
            assert response is not None
            self.assertEqual(response.status, 413 if b"=refuse" in data else 200)
            self.assertEqual(outcome.app.ended, {0: "finished"})
            self.assertTrue(outcome.transport.closed)

    @settings(derandomize=True, deadline=None, max_examples=100)
    @given(
        data=validRequests(),
        points=st.lists(st.integers(0, 300), max_size=4),
    )
    def test_sameResponseHoweverSplit(self, data: bytes, points: list[int]) -> None:
        """The response to a valid request does not depend on how it was split."""
        whole = runChannel([data], advances=(2.5, 2.5)).output
        split = runChannel(cut(data, points), advances=(2.5, 2.5)).output
        self.assertEqual(_withoutDate(whole), _withoutDate(split))


def _withoutDate(output: bytes) -> bytes:
    """Drop the ``Date`` line, the one part of a response that changes with time."""
    lines = output.split(b"\r\n")
    return b"\r\n".join(line for line in lines if not line.startswith(b"Date: "))


class HarnessTests(SynchronousTestCase):
    """The harness and its contract check can fail: they are not vacuous."""

    def test_deepthoughtServed(self) -> None:
        """The example request reaches the application (404: no such resource)."""
        outcome = runChannel([DEEPTHOUGHT])
        checkOutcome(outcome)
        self.assertEqual(parseResponse(outcome.output).status, 404)

    def test_refusedRequestClosed(self) -> None:
        """Garbage gets one 400 and the connection ends once the linger expired."""
        for garbage, parse in [
            (b"GEX / HTTP/1.1\r\n\r\n", parseResponse),
            (b"GET / HTTP/1.1\r\n\r\n", parseHTTPRefusal),
        ]:
            outcome = runChannel([garbage])
            checkOutcome(outcome)
            self.assertEqual(parse(outcome.output).status, 400)
            self.assertTrue(outcome.transport.writeClosed)
            self.assertTrue(outcome.transport.aborted)

    def test_checkRejectsBrokenOutcomes(self) -> None:
        """Two responses, a wrong length, late writes and logged errors all fail."""
        good = runChannel([buildRequest(nginxVariables(b"/ok"))])
        checkOutcome(good)
        response = good.output
        broken: list[ChannelOutcome] = []
        for output in [
            response + response,
            response[:-1],
            b"HTTP/1.1 200 OK\r\n\r\n",
            response.replace(
                b"Status: 200 OK\r\n", b"Status: 200 OK\r\nSet-Cookie: x\r\n"
            ),
        ]:
            transport = RecordingTransport()
            transport.write(output)
            transport.loseConnection()
            broken.append(ChannelOutcome(output, transport, good.app, []))
        late = RecordingTransport()
        late.loseConnection()
        late.write(b"x")
        broken.append(ChannelOutcome(b"", late, good.app, []))
        broken.append(
            ChannelOutcome(
                b"",
                good.transport,
                good.app,
                [{"log_level": LogLevel.critical, "log_format": "boom"}],
            )
        )
        for outcome in broken:
            self.assertRaises(AssertionError, checkOutcome, outcome)

    def test_cut(self) -> None:
        """``cut`` splits at the given points, keeping every byte in order."""
        self.assertEqual(cut(b"abcdef", [2, 4, 4, 6]), [b"ab", b"cd", b"ef"])
        self.assertEqual(cut(b"abc", [5]), [b"a", b"bc"])
        self.assertEqual(cut(b"", [1]), [])


class FuzzRegressionTests(SynchronousTestCase):
    """Inputs the coverage-guided fuzzer (``tests/fuzz_scgi.py``) turned up."""

    def test_lengthStatusDoesNotDependOnReads(self) -> None:
        """A length prefix over the limit, then a non-digit, gets one status.

        Found by the parser target: ``99990`` followed by the byte 0xFF was refused as
        "not ASCII digits" (400) when it arrived in one read, and as "too large"
        (431) when the digits arrived first.  The frontend's answer must not depend
        on how TCP cut the stream.
        """
        for data in [b"99990\xff", b"99999x", b"70000A"]:
            whole = parseResponse(runChannel([data]).output).status
            byteByByte = parseResponse(runChannel(cut(data, range(len(data)))).output)
            self.assertEqual(
                (data, whole), (data, byteByByte.status), "the status depends on reads"
            )

    def test_nonASCIIQueryWithBody(self) -> None:
        """A request with a body and raw non-ASCII bytes in its query is served.

        Found by ``test_mutatedRequests`` once ``/upload`` joined the app: looking
        the resource up before the body arrives parsed the query with
        ``urllib.parse.parse_qs``, which decodes bytes as ASCII, so a ``POST`` to
        ``/ok?q=café`` (raw UTF-8) got 500 and a critical "Unhandled error" traceback.
        """
        for uri in [b"/ok?q=caf\xc3\xa9", b"/upload?\xff=%00", b"/echo?\x80"]:
            data = buildRequest(nginxVariables(uri, REQUEST_METHOD=b"POST"), b"body")
            outcome = runChannel([data])
            checkOutcome(outcome)
            self.assertEqual(parseResponse(outcome.output).status, 200, uri)


class FuzzTargetTests(SynchronousTestCase):
    """The fuzz targets run without atheris, and their seeds pass."""

    def test_seedsPass(self) -> None:
        """Every seed of both targets satisfies the target's contract."""
        from tests import fuzz_scgi

        for name, (target, _) in fuzz_scgi.TARGETS.items():
            corpus = fuzz_scgi.seeds(name)
            self.assertGreater(len(corpus), 50, name)
            for seed in corpus:
                target(seed)

    def test_inputEncodings(self) -> None:
        """The option bytes decode to the options the seeds were encoded with."""
        from tests import fuzz_scgi

        channel = fuzz_scgi.decodeChannelInput(
            fuzz_scgi.encodeChannelInput(b"70:", readSize=1, eof=True, halfClose=True)
        )
        self.assertEqual(
            channel,
            fuzz_scgi.ChannelInput(b"70:", readSize=1, eof=True, halfClose=True),
        )
        parser = fuzz_scgi.decodeParserInput(
            fuzz_scgi.encodeParserInput(b"70:", readSize=3, eof=True)
        )
        self.assertEqual(parser, fuzz_scgi.ParserInput(b"70:", readSize=3, eof=True))
        self.assertIsNone(fuzz_scgi.decodeChannelInput(b"\x00\x00"))
        self.assertIsNone(fuzz_scgi.decodeParserInput(b"\x00"))

    def test_parserTargetCatchesSplitDifferences(self) -> None:
        """The parser target fails when whole and split reads disagree.

        ``65x`` under the 64-byte limit once got 400 in one read and 431 byte by
        byte; it now gets the same verdict both ways, and a parser made to judge
        one-byte reads differently is reported.
        """
        from scgi_twisted._sansio import SCGIParser
        from tests import fuzz_scgi

        # Flags 0b010: the 64-byte header limit; reads of one byte.
        case = bytes([0b010, 1]) + b"65x"
        fuzz_scgi.parserTarget(case)
        original = SCGIParser.receive_data

        def splitSensitive(parser: SCGIParser, data: bytes) -> None:
            original(parser, b"x" if len(data) == 1 else data)

        self.patch(SCGIParser, "receive_data", splitSensitive)
        self.assertRaises(AssertionError, fuzz_scgi.parserTarget, case)
