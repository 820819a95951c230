"""Tests for the sans-I/O SCGI parser and response-head encoder.

Strategy: every request vector goes through one helper,
:meth:`SansIOTestCase.assertParses`, which feeds it whole, one byte at a time, and
followed by trailing bytes, and expects the same events each time (after h11's
``tests/test_io.py::tr``).  Body events are joined before comparing, since how the body
is cut depends on how the bytes arrived.  Every protocol error goes through
:meth:`SansIOTestCase.assertRejected`, which feeds the bytes whole and one byte at a
time and checks the exception's exact class and exact message, that the error is
sticky, and after how many bytes the byte-by-byte parser gave up.  The vectors start
from the specification's "deepthought" example (``scgi-spec.md`` §3.1), built here byte
for byte, and the negative ones are derived from it with their lengths recomputed
(``scgi-spec.md`` §3.2).  Hypothesis properties, deterministic and bounded, check that
arbitrary bytes only ever raise :class:`RemoteProtocolError` and that the way a request
is split never changes its events.
"""

from __future__ import annotations

import hashlib
import itertools
import string
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import TYPE_CHECKING, TypeVar

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from scgi_twisted import _sansio
from scgi_twisted._errors import (
    BodyTooLargeError,
    HeaderTooLargeError,
    HTTPRequestError,
    LocalProtocolError,
    PrematureEOFError,
    RemoteProtocolError,
    SCGIError,
)
from scgi_twisted._sansio import (
    DEFAULT_MAX_HEADER_SIZE,
    DEFAULT_MAX_VARIABLES,
    MAX_CONTENT_LENGTH,
    BodyReceived,
    Event,
    HeadersReceived,
    RequestEnded,
    SCGIParser,
    State,
    encode_response_head,
)

from .support.scgi import (
    DEEPTHOUGHT,
    DEEPTHOUGHT_BODY,
    DEEPTHOUGHT_PAIRS,
    DEEPTHOUGHT_SHA256,
    MINIMAL,
    headerBlock,
    netstring,
    rawRequest,
)

_E = TypeVar("_E", bound=Exception)
_R = TypeVar("_R", bound=RemoteProtocolError)

ParserFactory = Callable[[], SCGIParser]
Pairs = Sequence[tuple[bytes, bytes]]


TRAILING = b"\r\nGET / HTTP/1.1\r\n\r\n"
"""Bytes sent after a complete request; the parser must count and drop them."""

TLS_CLIENT_HELLO = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"


# Building requests.


def deepthoughtPairs(
    replace: dict[bytes, bytes] | None = None,
    drop: Iterable[bytes] = (),
    append: Pairs = (),
) -> list[tuple[bytes, bytes]]:
    """The deepthought pairs, some values replaced, some names dropped, some added."""
    replace = replace or {}
    dropped = set(drop)
    pairs = [
        (name, replace.get(name, value))
        for name, value in DEEPTHOUGHT_PAIRS
        if name not in dropped
    ]
    pairs.extend(append)
    return pairs


def expectedEvents(pairs: Pairs, body: bytes = b"") -> list[Event]:
    """The events a valid request without repeated names gives, body joined."""
    environ = {name.decode("latin-1"): value for name, value in pairs}
    events: list[Event] = [HeadersReceived(environ, tuple(pairs), len(body))]
    if body:
        events.append(BodyReceived(body))
    events.append(RequestEnded())
    return events


DEEPTHOUGHT_HEADERS = expectedEvents(DEEPTHOUGHT_PAIRS, DEEPTHOUGHT_BODY)[0]
"""The deepthought example's HeadersReceived event."""


# Driving the parser.


def drain(parser: SCGIParser) -> list[Event]:
    """Return every event the parser can give now."""
    events: list[Event] = []
    while (event := parser.next_event()) is not None:
        events.append(event)
    return events


def feed(
    parser: SCGIParser, chunks: Iterable[bytes], *, eof: bool = True
) -> list[Event]:
    """Give the parser each chunk in turn, draining events after each, then EOF."""
    events: list[Event] = []
    for chunk in chunks:
        parser.receive_data(chunk)
        events.extend(drain(parser))
    if eof:
        parser.receive_data(b"")
        events.extend(drain(parser))
    return events


def byteByByte(data: bytes) -> list[bytes]:
    """Cut ``data`` into one-byte chunks."""
    return [data[index : index + 1] for index in range(len(data))]


def cut(data: bytes, points: Iterable[int]) -> list[bytes]:
    """Cut ``data`` at the given offsets, leaving out empty chunks (``b""`` is EOF)."""
    bounds = [0, *sorted(set(points)), len(data)]
    pieces = (data[start:end] for start, end in itertools.pairwise(bounds))
    return [piece for piece in pieces if piece]


def joinBodies(events: Sequence[Event]) -> list[Event]:
    """Join consecutive body events, so events from any split of a request compare."""
    joined: list[Event] = []
    for event in events:
        if isinstance(event, BodyReceived):
            if not event.data:
                raise AssertionError("the parser gave an empty BodyReceived")
            previous = joined[-1] if joined else None
            if isinstance(previous, BodyReceived):
                joined[-1] = BodyReceived(previous.data + event.data)
                continue
        joined.append(event)
    return joined


def runToOutcome(
    parser: SCGIParser, chunks: Iterable[bytes], *, eof: bool
) -> tuple[list[Event], RemoteProtocolError | None]:
    """Feed chunks until the end or a remote protocol error; any other error escapes."""
    events: list[Event] = []
    try:
        for chunk in chunks:
            parser.receive_data(chunk)
            events.extend(drain(parser))
        if eof:
            parser.receive_data(b"")
            events.extend(drain(parser))
    except RemoteProtocolError as error:
        return joinBodies(events), error
    return joinBodies(events), None


class SansIOTestCase(SynchronousTestCase):
    """Typed assertions and the feed-three-ways helpers shared by the tests below."""

    if TYPE_CHECKING:
        # Trial's assertion methods carry no annotations, which ``mypy --strict``
        # refuses to call; these declarations only give them types.

        def assertEqual(
            self, first: object, second: object, msg: object = None
        ) -> None:
            """Assert ``first == second``."""

        def assertIs(self, first: object, second: object, msg: object = None) -> None:
            """Assert ``first is second``."""

        def assertIn(
            self, containee: object, container: object, msg: object = None
        ) -> None:
            """Assert ``containee in container``."""

        def assertTrue(self, condition: object, msg: object = None) -> None:
            """Assert that ``condition`` is true."""

        def assertFalse(self, condition: object, msg: object = None) -> None:
            """Assert that ``condition`` is false."""

        def assertIsInstance(
            self,
            instance: object,
            classOrTuple: object,
            message: object = None,
        ) -> None:
            """Assert that ``instance`` is an instance of ``classOrTuple``."""

    def raisedExactly(
        self, errorType: type[_E], message: str, call: Callable[[], object]
    ) -> _E:
        """Call ``call`` and check it raises exactly ``errorType(message)``.

        :returns: the exception, for more checks.
        """
        try:
            call()
        except Exception as error:
            if type(error) is not errorType or not isinstance(error, errorType):
                self.fail(f"expected {errorType.__name__}, got {error!r}")
            self.assertEqual(str(error), message)
            return error
        self.fail(f"{errorType.__name__}({message!r}) was not raised")

    def assertParses(
        self,
        data: bytes,
        expected: Sequence[Event],
        *,
        factory: ParserFactory = SCGIParser,
    ) -> None:
        """Feed ``data`` whole, byte by byte and with trailing bytes; expect the same.

        Each way must give the same events (body events joined), keep the environ in
        the expected order, end in :attr:`State.DONE`, and count exactly the trailing
        bytes as trailing.
        """
        ways = [
            ("whole", [data], 0),
            ("byte by byte", byteByByte(data), 0),
            ("whole with trailing bytes", [data + TRAILING], len(TRAILING)),
            ("trailing bytes in their own chunk", [data, TRAILING], len(TRAILING)),
            (
                "byte by byte with trailing bytes",
                byteByByte(data + TRAILING),
                len(TRAILING),
            ),
        ]
        for way, chunks, trailing in ways:
            parser = factory()
            events = feed(parser, chunks)
            self.assertEqual(joinBodies(events), list(expected), way)
            # Dict equality ignores order; the environ must keep the arrival order.
            got, want = events[0], expected[0]
            if isinstance(got, HeadersReceived) and isinstance(want, HeadersReceived):
                self.assertEqual(list(got.environ), list(want.environ), way)
            self.assertIs(parser.state, State.DONE, way)
            self.assertEqual(parser.trailing_bytes, trailing, way)
            self.assertEqual(parser.bytes_received, len(data) + trailing, way)
            self.assertEqual(parser.body_remaining, 0, way)
            self.assertIs(parser.next_event(), None, way)

    def assertRejected(
        self,
        data: bytes,
        errorType: type[_R],
        message: str,
        *,
        eof: bool = False,
        factory: ParserFactory = SCGIParser,
    ) -> tuple[_R, int]:
        """Feed ``data`` whole and byte by byte; each must raise ``errorType(message)``.

        With ``eof``, the error must come only once EOF is signalled; without it, it
        must come before EOF.  The error must be sticky and leave the parser in
        :attr:`State.ERROR`.

        :returns: the error from the whole feed, and how many bytes the byte-by-byte
            parser had been given when it raised.
        """
        whole = factory()
        whole.receive_data(data)
        if eof:
            drain(whole)
            whole.receive_data(b"")
        error = self.raisedExactly(errorType, message, partial(drain, whole))
        self.assertSticky(whole, error)

        single = factory()
        if eof:
            feed(single, byteByByte(data), eof=False)
            single.receive_data(b"")
            singleError = self.raisedExactly(errorType, message, partial(drain, single))
        else:
            singleError = self.raisedExactly(
                errorType, message, partial(feed, single, byteByByte(data), eof=False)
            )
        self.assertSticky(single, singleError)
        return error, single.bytes_received

    def assertSticky(self, parser: SCGIParser, error: RemoteProtocolError) -> None:
        """Check that ``parser`` failed with ``error`` and raises it again and again."""
        self.assertIs(parser.state, State.ERROR)
        for _ in range(2):
            try:
                parser.next_event()
            except RemoteProtocolError as again:
                self.assertIs(again, error)
            else:
                self.fail("a failed parser did not raise again")


# The golden vector.


class DeepthoughtTests(SansIOTestCase):
    """The specification's own example request."""

    def test_vector(self) -> None:
        """The vector built here is the spec's 101 bytes, with the spec's SHA-256."""
        self.assertEqual(len(DEEPTHOUGHT), 101)
        self.assertEqual(hashlib.sha256(DEEPTHOUGHT).hexdigest(), DEEPTHOUGHT_SHA256)
        self.assertEqual(rawRequest(DEEPTHOUGHT_PAIRS, DEEPTHOUGHT_BODY), DEEPTHOUGHT)

    def test_events(self) -> None:
        """The example gives its headers, its 27-byte body and the end, fed any way."""
        self.assertParses(
            DEEPTHOUGHT, expectedEvents(DEEPTHOUGHT_PAIRS, DEEPTHOUGHT_BODY)
        )

    def test_headers(self) -> None:
        """The example's environ is the four variables in order, values as bytes."""
        parser = SCGIParser()
        parser.receive_data(DEEPTHOUGHT)
        event = parser.next_event()
        if not isinstance(event, HeadersReceived):
            self.fail(f"expected HeadersReceived, got {event!r}")
        self.assertEqual(
            list(event.environ.items()),
            [
                ("CONTENT_LENGTH", b"27"),
                ("SCGI", b"1"),
                ("REQUEST_METHOD", b"POST"),
                ("REQUEST_URI", b"/deepthought"),
            ],
        )
        self.assertEqual(event.raw, DEEPTHOUGHT_PAIRS)
        self.assertEqual(event.content_length, 27)
        self.assertIs(parser.state, State.BODY)
        self.assertEqual(parser.body_remaining, 27)
        self.assertEqual(parser.next_event(), BodyReceived(DEEPTHOUGHT_BODY))
        self.assertEqual(parser.body_remaining, 0)
        self.assertEqual(parser.next_event(), RequestEnded())
        self.assertIs(parser.state, State.DONE)

    def test_states(self) -> None:
        """The parser walks LENGTH, HEADERS, BODY, DONE as the example arrives."""
        parser = SCGIParser()
        self.assertIs(parser.state, State.LENGTH)
        parser.receive_data(b"70")
        self.assertIs(parser.next_event(), None)
        self.assertIs(parser.state, State.LENGTH)
        parser.receive_data(b":CONTENT_LENGTH\x00")
        self.assertIs(parser.next_event(), None)
        self.assertIs(parser.state, State.HEADERS)
        parser.receive_data(DEEPTHOUGHT[len(b"70:CONTENT_LENGTH\x00") : 73])
        self.assertIs(parser.next_event(), None)
        self.assertIs(parser.state, State.HEADERS)
        self.assertEqual(parser.body_remaining, 0)
        parser.receive_data(DEEPTHOUGHT[73:79])
        self.assertEqual(parser.next_event(), DEEPTHOUGHT_HEADERS)
        self.assertIs(parser.state, State.BODY)
        self.assertEqual(parser.body_remaining, 27)
        self.assertEqual(parser.next_event(), BodyReceived(b"What "))
        self.assertEqual(parser.body_remaining, 22)
        self.assertIs(parser.next_event(), None)
        parser.receive_data(DEEPTHOUGHT[79:])
        self.assertEqual(parser.next_event(), BodyReceived(DEEPTHOUGHT_BODY[5:]))
        self.assertEqual(parser.next_event(), RequestEnded())
        self.assertIs(parser.state, State.DONE)
        self.assertFalse(parser.eof)
        parser.receive_data(b"")
        self.assertTrue(parser.eof)
        self.assertIs(parser.next_event(), None)

    def test_response(self) -> None:
        """The spec's example response head encodes byte for byte."""
        self.assertEqual(
            encode_response_head(200, b"OK", [(b"Content-Type", b"text/plain")]),
            b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n",
        )


# Requests that must be accepted.


class AcceptedRequestTests(SansIOTestCase):
    """Valid requests, including the edge cases the specification allows."""

    def test_minimal(self) -> None:
        """The minimal request (a 24-byte block) gives headers and the end, no body."""
        self.assertEqual(len(MINIMAL), 28)
        self.assertTrue(MINIMAL.startswith(b"24:"))
        self.assertParses(
            MINIMAL, expectedEvents([(b"CONTENT_LENGTH", b"0"), (b"SCGI", b"1")])
        )

    def test_emptyLastValue(self) -> None:
        r"""An empty last value (``QUERY_STRING\0\0`` at the end) is accepted."""
        pairs = deepthoughtPairs(append=[(b"QUERY_STRING", b"")])
        data = rawRequest(pairs, DEEPTHOUGHT_BODY)
        self.assertTrue(data.startswith(b"84:"))
        self.assertTrue(data.endswith(b"QUERY_STRING\x00\x00," + DEEPTHOUGHT_BODY))
        self.assertParses(data, expectedEvents(pairs, DEEPTHOUGHT_BODY))

    def test_emptyValues(self) -> None:
        """Empty values anywhere are kept as empty bytes, as nginx sends them."""
        pairs = [
            (b"CONTENT_LENGTH", b"0"),
            (b"CONTENT_TYPE", b""),
            (b"SCGI", b"1"),
            (b"QUERY_STRING", b""),
            (b"SERVER_NAME", b""),
        ]
        self.assertParses(rawRequest(pairs), expectedEvents(pairs))

    def test_contentLengthLeadingZeros(self) -> None:
        """A CONTENT_LENGTH value of ``027`` is accepted as 27: a documented policy."""
        pairs = deepthoughtPairs(replace={b"CONTENT_LENGTH": b"027"})
        events = expectedEvents(pairs, DEEPTHOUGHT_BODY)
        self.assertEqual(
            events[0],
            HeadersReceived(
                {name.decode(): value for name, value in pairs}, tuple(pairs), 27
            ),
        )
        self.assertParses(rawRequest(pairs, DEEPTHOUGHT_BODY), events)

    def test_contentLengthAllZeros(self) -> None:
        """A CONTENT_LENGTH value of ``000`` means no body."""
        pairs = deepthoughtPairs(replace={b"CONTENT_LENGTH": b"000"})
        self.assertParses(rawRequest(pairs), expectedEvents(pairs))

    def test_contentLengthManyLeadingZeros(self) -> None:
        """5000 leading zeros before ``27`` mean 27; int()'s digit limit is not hit."""
        pairs = deepthoughtPairs(replace={b"CONTENT_LENGTH": b"0" * 5000 + b"27"})
        headers = HeadersReceived(
            {name.decode(): value for name, value in pairs}, tuple(pairs), 27
        )
        self.assertParses(
            rawRequest(pairs, DEEPTHOUGHT_BODY),
            [headers, BodyReceived(DEEPTHOUGHT_BODY), RequestEnded()],
        )

    def test_scgiLast(self) -> None:
        """SCGI may come last, as lighttpd sends it."""
        pairs = [
            (b"CONTENT_LENGTH", b"27"),
            (b"REQUEST_METHOD", b"POST"),
            (b"REQUEST_URI", b"/deepthought"),
            (b"SCGI", b"1"),
        ]
        self.assertParses(
            rawRequest(pairs, DEEPTHOUGHT_BODY),
            expectedEvents(pairs, DEEPTHOUGHT_BODY),
        )

    def test_scgiInTheMiddle(self) -> None:
        """SCGI may come anywhere after CONTENT_LENGTH, wherever scgi_params put it."""
        pairs = [
            (b"CONTENT_LENGTH", b"0"),
            (b"REQUEST_METHOD", b"GET"),
            (b"SCGI", b"1"),
            (b"REQUEST_URI", b"/"),
        ]
        self.assertParses(rawRequest(pairs), expectedEvents(pairs))

    def test_onlyRequiredVariables(self) -> None:
        """No CGI variable other than CONTENT_LENGTH and SCGI is required."""
        pairs = [(b"CONTENT_LENGTH", b"3"), (b"SCGI", b"1")]
        self.assertParses(rawRequest(pairs, b"abc"), expectedEvents(pairs, b"abc"))

    def test_bytesKept(self) -> None:
        """Values stay the bytes sent (not UTF-8 here); names are decoded as Latin-1."""
        pairs = [
            (b"CONTENT_LENGTH", b"0"),
            (b"SCGI", b"1"),
            (b"REQUEST_URI", b"/caf\xe9?\xff\x01"),
            (b"HTTP_X_\xe9", b"\x80 \t"),
        ]
        self.assertParses(rawRequest(pairs), expectedEvents(pairs))
        parser = SCGIParser()
        parser.receive_data(rawRequest(pairs))
        event = parser.next_event()
        if not isinstance(event, HeadersReceived):
            self.fail(f"expected HeadersReceived, got {event!r}")
        self.assertEqual(event.environ["HTTP_X_\u00e9"], b"\x80 \t")
        self.assertEqual(event.environ["REQUEST_URI"], b"/caf\xe9?\xff\x01")

    def test_lengthPrefixSplit(self) -> None:
        """A length prefix split across reads (``7``, ``0:...``) parses the same."""
        events = feed(SCGIParser(), [DEEPTHOUGHT[:1], DEEPTHOUGHT[1:]])
        self.assertEqual(events, expectedEvents(DEEPTHOUGHT_PAIRS, DEEPTHOUGHT_BODY))

    def test_headerSizeAtLimit(self) -> None:
        """A header block exactly max_header_size long is accepted."""
        factory = partial(SCGIParser, max_header_size=70)
        self.assertParses(
            DEEPTHOUGHT,
            expectedEvents(DEEPTHOUGHT_PAIRS, DEEPTHOUGHT_BODY),
            factory=factory,
        )
        self.assertParses(
            MINIMAL,
            expectedEvents([(b"CONTENT_LENGTH", b"0"), (b"SCGI", b"1")]),
            factory=partial(SCGIParser, max_header_size=24),
        )

    def test_variablesAtLimit(self) -> None:
        """Exactly max_variables pairs are accepted."""
        self.assertParses(
            DEEPTHOUGHT,
            expectedEvents(DEEPTHOUGHT_PAIRS, DEEPTHOUGHT_BODY),
            factory=partial(SCGIParser, max_variables=4),
        )

    def test_bodyAtLimit(self) -> None:
        """A CONTENT_LENGTH equal to max_body_size is accepted, 0 with a limit of 0."""
        self.assertParses(
            DEEPTHOUGHT,
            expectedEvents(DEEPTHOUGHT_PAIRS, DEEPTHOUGHT_BODY),
            factory=partial(SCGIParser, max_body_size=27),
        )
        self.assertParses(
            MINIMAL,
            expectedEvents([(b"CONTENT_LENGTH", b"0"), (b"SCGI", b"1")]),
            factory=partial(SCGIParser, max_body_size=0),
        )

    def test_largestContentLength(self) -> None:
        """A CONTENT_LENGTH of 2**63 - 1 is accepted when no body limit is set."""
        pairs = deepthoughtPairs(
            replace={b"CONTENT_LENGTH": b"%d" % MAX_CONTENT_LENGTH}
        )
        parser = SCGIParser()
        parser.receive_data(rawRequest(pairs, b"abc"))
        event = parser.next_event()
        if not isinstance(event, HeadersReceived):
            self.fail(f"expected HeadersReceived, got {event!r}")
        self.assertEqual(event.content_length, 2**63 - 1)
        self.assertEqual(parser.next_event(), BodyReceived(b"abc"))
        self.assertEqual(parser.body_remaining, 2**63 - 4)
        self.assertIs(parser.next_event(), None)


# The length prefix.


class LengthPrefixTests(SansIOTestCase):
    """The netstring length is checked on the bytes as they arrive."""

    def test_empty(self) -> None:
        """An empty length (``:``) is rejected with ERR_EMPTY_LENGTH."""
        _, consumed = self.assertRejected(
            b":" + DEEPTHOUGHT[3:], RemoteProtocolError, SCGIParser.ERR_EMPTY_LENGTH
        )
        self.assertEqual(consumed, 1)

    def test_leadingZero(self) -> None:
        """``070:`` is rejected with ERR_LENGTH_LEADING_ZERO at its second byte."""
        _, consumed = self.assertRejected(
            b"0" + DEEPTHOUGHT,
            RemoteProtocolError,
            SCGIParser.ERR_LENGTH_LEADING_ZERO,
        )
        self.assertEqual(consumed, 2)

    def test_doubleZero(self) -> None:
        """``00:`` is rejected with ERR_LENGTH_LEADING_ZERO."""
        self.assertRejected(
            b"00:,", RemoteProtocolError, SCGIParser.ERR_LENGTH_LEADING_ZERO
        )

    def test_zeroLength(self) -> None:
        """``0:,`` is a legal netstring but not a request: ERR_NO_CONTENT_LENGTH."""
        self.assertRejected(
            b"0:,", RemoteProtocolError, SCGIParser.ERR_NO_CONTENT_LENGTH
        )

    def test_notDigits(self) -> None:
        """``+70:``, `` 70:`` and ``7_0:`` are rejected with ERR_LENGTH_NOT_DIGITS."""
        for prefix, where in [(b"+70:", 1), (b" 70:", 1), (b"7_0:", 2)]:
            _, consumed = self.assertRejected(
                prefix + DEEPTHOUGHT[3:],
                RemoteProtocolError,
                SCGIParser.ERR_LENGTH_NOT_DIGITS,
            )
            self.assertEqual(consumed, where, prefix)

    def test_otherNotations(self) -> None:
        """``0x46:``, ``7e1:``, ``70.0:`` and Unicode digits are not decimal lengths."""
        for prefix in [b"0x46:", b"7e1:", b"70.0:", b"\xb270:", b"7\xd9\xa3:"]:
            self.assertRejected(
                prefix + DEEPTHOUGHT[3:],
                RemoteProtocolError,
                SCGIParser.ERR_LENGTH_NOT_DIGITS,
            )

    def test_httpRequest(self) -> None:
        """An HTTP request is told apart once its method and space have arrived."""
        for method in (b"GET", b"POST", b"HEAD", b"PUT", b"OPTIONS", b"PRI"):
            data = method + b" / HTTP/1.1\r\nHost: example.com\r\n\r\n"
            _, consumed = self.assertRejected(
                data, HTTPRequestError, SCGIParser.ERR_HTTP_REQUEST
            )
            self.assertEqual(consumed, len(method) + 1, method)
        self.assertIn("SCGI", SCGIParser.ERR_HTTP_REQUEST)
        self.assertIn("nginx", SCGIParser.ERR_HTTP_REQUEST)
        self.assertIn("scgi-client", SCGIParser.ERR_HTTP_REQUEST)

    def test_httpPrefixWaits(self) -> None:
        """``G`` might begin ``GET ``: the parser waits; EOF makes it not-digits."""
        parser = SCGIParser()
        parser.receive_data(b"GE")
        self.assertIsNone(parser.next_event())
        parser.receive_data(b"")
        self.raisedExactly(
            RemoteProtocolError, SCGIParser.ERR_LENGTH_NOT_DIGITS, parser.next_event
        )

    def test_notHTTP(self) -> None:
        """Letters that stop matching every method are not-digits at that byte."""
        for data, where in [(b"GEX / HTTP/1.1", 3), (b"GET/", 4), (b"get / ", 1)]:
            _, consumed = self.assertRejected(
                data, RemoteProtocolError, SCGIParser.ERR_LENGTH_NOT_DIGITS
            )
            self.assertEqual(consumed, where, data)

    def test_tlsClientHello(self) -> None:
        r"""A TLS ClientHello (``\x16\x03\x01...``) is rejected after one byte."""
        _, consumed = self.assertRejected(
            TLS_CLIENT_HELLO, RemoteProtocolError, SCGIParser.ERR_LENGTH_NOT_DIGITS
        )
        self.assertEqual(consumed, 1)

    def test_garbage(self) -> None:
        """``b"A" * 9000`` is rejected on its first byte, without waiting for EOF."""
        _, consumed = self.assertRejected(
            b"A" * 9000, RemoteProtocolError, SCGIParser.ERR_LENGTH_NOT_DIGITS
        )
        self.assertEqual(consumed, 1)

    def test_endlessDigits(self) -> None:
        """``b"9" * 9000`` is refused (431) after 5 digits, before any colon."""
        error, consumed = self.assertRejected(
            b"9" * 9000,
            HeaderTooLargeError,
            SCGIParser.ERR_LENGTH_TOO_LARGE.format(limit=DEFAULT_MAX_HEADER_SIZE),
        )
        self.assertEqual(error.status_hint, 431)
        self.assertEqual(consumed, len(str(DEFAULT_MAX_HEADER_SIZE)))

    def test_endlessSmallDigits(self) -> None:
        """``b"1" * 9000`` is refused once it has more digits than the limit has."""
        limit = DEFAULT_MAX_HEADER_SIZE
        _, consumed = self.assertRejected(
            b"1" * 9000,
            HeaderTooLargeError,
            SCGIParser.ERR_LENGTH_TOO_LARGE.format(limit=limit),
        )
        self.assertEqual(consumed, len(str(limit)) + 1)

    def test_overLimitBeforeColon(self) -> None:
        """A length over max_header_size is refused as soon as its digits are read."""
        error, consumed = self.assertRejected(
            DEEPTHOUGHT,
            HeaderTooLargeError,
            SCGIParser.ERR_LENGTH_TOO_LARGE.format(limit=69),
            factory=partial(SCGIParser, max_header_size=69),
        )
        self.assertEqual(error.status_hint, 431)
        self.assertEqual(consumed, 2)
        parser = SCGIParser()
        parser.receive_data(b"%d" % (DEFAULT_MAX_HEADER_SIZE + 1))
        self.raisedExactly(
            HeaderTooLargeError,
            SCGIParser.ERR_LENGTH_TOO_LARGE.format(limit=DEFAULT_MAX_HEADER_SIZE),
            parser.next_event,
        )

    def test_overLimitWithColon(self) -> None:
        """A length over the limit is refused (431) when it arrives with its colon."""
        factory = partial(SCGIParser, max_header_size=150)
        parser = factory()
        parser.receive_data(b"99")
        self.assertIs(parser.next_event(), None)
        self.assertRejected(
            b"151:",
            HeaderTooLargeError,
            SCGIParser.ERR_LENGTH_TOO_LARGE.format(limit=150),
            factory=factory,
        )

    def test_hugeLength(self) -> None:
        """``99999999999999999999:`` is refused cleanly (431), no OverflowError."""
        error, _ = self.assertRejected(
            b"99999999999999999999:",
            HeaderTooLargeError,
            SCGIParser.ERR_LENGTH_TOO_LARGE.format(limit=DEFAULT_MAX_HEADER_SIZE),
        )
        self.assertEqual(error.status_hint, 431)
        self.assertIsInstance(error, RemoteProtocolError)


# The header block.


class HeaderBlockTests(SansIOTestCase):
    """The negative vectors of scgi-spec.md §3.2 and the other header-block errors."""

    def test_badTerminator(self) -> None:
        """A ``70:`` block followed by ``@`` in place of ``,`` is rejected."""
        data = DEEPTHOUGHT[:73] + b"@" + DEEPTHOUGHT[74:]
        self.assertEqual(DEEPTHOUGHT[73:74], b",")
        error, consumed = self.assertRejected(
            data, RemoteProtocolError, SCGIParser.ERR_BAD_TERMINATOR
        )
        self.assertEqual(consumed, 74)
        self.assertEqual(error.status_hint, 400)

    def test_missingSCGI(self) -> None:
        r"""A ``63:`` block without ``SCGI\x001\x00`` is rejected with ERR_NO_SCGI."""
        data = rawRequest(deepthoughtPairs(drop=[b"SCGI"]), DEEPTHOUGHT_BODY)
        self.assertTrue(data.startswith(b"63:"))
        self.assertRejected(data, RemoteProtocolError, SCGIParser.ERR_NO_SCGI)

    def test_badSCGIVersion(self) -> None:
        r"""A ``70:`` block with ``SCGI\x002\x00`` is rejected with ERR_BAD_SCGI."""
        data = rawRequest(deepthoughtPairs(replace={b"SCGI": b"2"}), DEEPTHOUGHT_BODY)
        self.assertTrue(data.startswith(b"70:"))
        self.assertRejected(data, RemoteProtocolError, SCGIParser.ERR_BAD_SCGI)

    def test_otherSCGIValues(self) -> None:
        """SCGI values ``""``, ``01``, ``1.0`` and ``1 `` are rejected: only ``1``."""
        for value in [b"", b"01", b"1.0", b"1 "]:
            data = rawRequest(deepthoughtPairs(replace={b"SCGI": value}))
            self.assertRejected(data, RemoteProtocolError, SCGIParser.ERR_BAD_SCGI)

    def test_missingContentLength(self) -> None:
        """A ``52:`` block without CONTENT_LENGTH is rejected."""
        data = rawRequest(deepthoughtPairs(drop=[b"CONTENT_LENGTH"]), DEEPTHOUGHT_BODY)
        self.assertTrue(data.startswith(b"52:"))
        self.assertRejected(data, RemoteProtocolError, SCGIParser.ERR_NO_CONTENT_LENGTH)

    def test_contentLengthNotFirst(self) -> None:
        r"""A ``70:`` block starting ``SCGI\x001\x00CONTENT_LENGTH...`` is rejected."""
        pairs = list(DEEPTHOUGHT_PAIRS)
        pairs[0], pairs[1] = pairs[1], pairs[0]
        data = rawRequest(pairs, DEEPTHOUGHT_BODY)
        self.assertTrue(data.startswith(b"70:SCGI\x001\x00CONTENT_LENGTH\x0027\x00"))
        self.assertRejected(
            data, RemoteProtocolError, SCGIParser.ERR_CONTENT_LENGTH_NOT_FIRST
        )

    def test_contentLengthPlus(self) -> None:
        r"""A ``71:`` block with ``CONTENT_LENGTH\x00+27\x00`` is rejected."""
        pairs = deepthoughtPairs(replace={b"CONTENT_LENGTH": b"+27"})
        data = rawRequest(pairs, DEEPTHOUGHT_BODY)
        self.assertTrue(data.startswith(b"71:"))
        self.assertRejected(
            data, RemoteProtocolError, SCGIParser.ERR_CONTENT_LENGTH_NOT_DIGITS
        )

    def test_contentLengthNotDigits(self) -> None:
        r"""Empty, negative, spaced, underscored or hex CONTENT_LENGTH is refused.

        The values are ``""``, ``-1``, `` 27``, ``27 ``, ``2_7``, ``0x1b`` and ``27\t``;
        Python's ``int()`` takes most of them.
        """
        for value in [b"", b"-1", b" 27", b"27 ", b"2_7", b"0x1b", b"27\t"]:
            data = rawRequest(deepthoughtPairs(replace={b"CONTENT_LENGTH": value}))
            self.assertRejected(
                data, RemoteProtocolError, SCGIParser.ERR_CONTENT_LENGTH_NOT_DIGITS
            )

    def test_contentLengthUnicodeDigit(self) -> None:
        r"""CONTENT_LENGTH ``\xb2`` (Latin-1 superscript two) or Arabic 3 is refused."""
        for value in [b"\xb2", b"2\xb2", b"\xd9\xa3"]:
            data = rawRequest(deepthoughtPairs(replace={b"CONTENT_LENGTH": value}))
            self.assertRejected(
                data, RemoteProtocolError, SCGIParser.ERR_CONTENT_LENGTH_NOT_DIGITS
            )

    def test_duplicateSCGI(self) -> None:
        r"""A ``77:`` block with a second ``SCGI\x001\x00`` appended is rejected."""
        data = rawRequest(deepthoughtPairs(append=[(b"SCGI", b"1")]), DEEPTHOUGHT_BODY)
        self.assertTrue(data.startswith(b"77:"))
        self.assertRejected(
            data, RemoteProtocolError, SCGIParser.ERR_DUPLICATE.format(name="SCGI")
        )

    def test_notNulTerminated(self) -> None:
        """A ``69:`` block without its final NUL (``.../deepthought,``) is rejected."""
        block = headerBlock(DEEPTHOUGHT_PAIRS)[:-1]
        data = netstring(block) + DEEPTHOUGHT_BODY
        self.assertTrue(data.startswith(b"69:"))
        self.assertTrue(data.endswith(b"/deepthought," + DEEPTHOUGHT_BODY))
        self.assertRejected(
            data, RemoteProtocolError, SCGIParser.ERR_NOT_NUL_TERMINATED
        )

    def test_oddStrings(self) -> None:
        r"""A ``65:`` block with the ``POST\x00`` value removed is rejected."""
        block = headerBlock(DEEPTHOUGHT_PAIRS).replace(b"POST\x00", b"")
        data = netstring(block) + DEEPTHOUGHT_BODY
        self.assertTrue(data.startswith(b"65:"))
        self.assertRejected(data, RemoteProtocolError, SCGIParser.ERR_ODD_STRINGS)

    def test_lengthPastStrings(self) -> None:
        """A declared length that cuts a string off is rejected, never read past."""
        block = headerBlock(DEEPTHOUGHT_PAIRS)
        data = b"60:" + block + b"," + DEEPTHOUGHT_BODY
        self.assertRejected(data, RemoteProtocolError, SCGIParser.ERR_BAD_TERMINATOR)
        data = b"60:" + block[:60] + b","
        self.assertRejected(
            data, RemoteProtocolError, SCGIParser.ERR_NOT_NUL_TERMINATED
        )

    def test_lonelyNul(self) -> None:
        """A block of one NUL holds an odd number (one) of strings."""
        self.assertRejected(b"1:\x00,", RemoteProtocolError, SCGIParser.ERR_ODD_STRINGS)

    def test_tooManyVariables(self) -> None:
        """More pairs than max_variables is refused with HeaderTooLargeError (431)."""
        error, _ = self.assertRejected(
            DEEPTHOUGHT,
            HeaderTooLargeError,
            SCGIParser.ERR_TOO_MANY_VARIABLES.format(limit=3),
            factory=partial(SCGIParser, max_variables=3),
        )
        self.assertEqual(error.status_hint, 431)

    def test_tooManyVariablesDefault(self) -> None:
        """501 pairs are refused by default; the default limit is 500."""
        self.assertEqual(DEFAULT_MAX_VARIABLES, 500)
        pairs = [(b"CONTENT_LENGTH", b"0"), (b"SCGI", b"1")]
        pairs.extend((b"V%d" % index, b"") for index in range(499))
        parser = SCGIParser()
        parser.receive_data(rawRequest(pairs[:500]))
        self.assertIsInstance(parser.next_event(), HeadersReceived)
        self.assertRejected(
            rawRequest(pairs),
            HeaderTooLargeError,
            SCGIParser.ERR_TOO_MANY_VARIABLES.format(limit=500),
        )

    def test_emptyName(self) -> None:
        r"""A variable with an empty name (``\0value\0``) is rejected."""
        block = headerBlock(DEEPTHOUGHT_PAIRS) + b"\x00value\x00"
        self.assertRejected(
            netstring(block) + DEEPTHOUGHT_BODY,
            RemoteProtocolError,
            SCGIParser.ERR_EMPTY_NAME,
        )

    def test_emptyFirstName(self) -> None:
        """An empty first name is rejected as a missing CONTENT_LENGTH."""
        self.assertRejected(
            b"2:\x00\x00,", RemoteProtocolError, SCGIParser.ERR_NO_CONTENT_LENGTH
        )


class ContentLengthLimitTests(SansIOTestCase):
    """CONTENT_LENGTH is refused over max_body_size and over 2**63 - 1."""

    def test_overMaxBodySize(self) -> None:
        """CONTENT_LENGTH over max_body_size is refused (413), carrying the length."""
        error, _ = self.assertRejected(
            DEEPTHOUGHT,
            BodyTooLargeError,
            SCGIParser.ERR_CONTENT_LENGTH_TOO_LARGE.format(limit=26),
            factory=partial(SCGIParser, max_body_size=26),
        )
        self.assertEqual(error.status_hint, 413)
        self.assertEqual(error.content_length, 27)

    def test_overMaxBodySizeBeforeBody(self) -> None:
        """The 413 comes with the header block, before any body byte has arrived."""
        parser = SCGIParser(max_body_size=0)
        parser.receive_data(DEEPTHOUGHT[:74])
        self.raisedExactly(
            BodyTooLargeError,
            SCGIParser.ERR_CONTENT_LENGTH_TOO_LARGE.format(limit=0),
            parser.next_event,
        )

    def test_twoToThe63(self) -> None:
        """A CONTENT_LENGTH of 2**63 is refused (413) with no body limit set."""
        pairs = deepthoughtPairs(replace={b"CONTENT_LENGTH": b"%d" % 2**63})
        error, _ = self.assertRejected(
            rawRequest(pairs),
            BodyTooLargeError,
            SCGIParser.ERR_CONTENT_LENGTH_TOO_LARGE.format(limit=MAX_CONTENT_LENGTH),
        )
        self.assertEqual(error.status_hint, 413)
        self.assertIs(error.content_length, None)

    def test_fiveThousandDigits(self) -> None:
        """A 5000-digit CONTENT_LENGTH is refused (413), not left to int()'s limit."""
        pairs = deepthoughtPairs(replace={b"CONTENT_LENGTH": b"9" * 5000})
        error, _ = self.assertRejected(
            rawRequest(pairs),
            BodyTooLargeError,
            SCGIParser.ERR_CONTENT_LENGTH_TOO_LARGE.format(limit=MAX_CONTENT_LENGTH),
        )
        self.assertIs(error.content_length, None)

    def test_hugeWithBodyLimit(self) -> None:
        """Over 2**63 - 1, the message names that limit even with a max_body_size."""
        pairs = deepthoughtPairs(replace={b"CONTENT_LENGTH": b"1" + b"0" * 30})
        self.assertRejected(
            rawRequest(pairs),
            BodyTooLargeError,
            SCGIParser.ERR_CONTENT_LENGTH_TOO_LARGE.format(limit=MAX_CONTENT_LENGTH),
            factory=partial(SCGIParser, max_body_size=1000),
        )


# Repeated names.


class DuplicateTests(SansIOTestCase):
    """Repeated names: HTTP_* merged by default, everything else refused."""

    def test_mergeHTTP(self) -> None:
        """Repeated HTTP_X_FOO values merge with ``, `` in order; raw keeps them all."""
        pairs = [
            (b"CONTENT_LENGTH", b"0"),
            (b"HTTP_X_FOO", b"a"),
            (b"SCGI", b"1"),
            (b"HTTP_X_FOO", b"b"),
            (b"REQUEST_URI", b"/"),
            (b"HTTP_X_FOO", b""),
            (b"HTTP_X_FOO", b"c"),
        ]
        headers = HeadersReceived(
            {
                "CONTENT_LENGTH": b"0",
                "HTTP_X_FOO": b"a, b, , c",
                "SCGI": b"1",
                "REQUEST_URI": b"/",
            },
            tuple(pairs),
            0,
        )
        self.assertParses(rawRequest(pairs), [headers, RequestEnded()])

    def test_repeatedHostLastWins(self) -> None:
        """A repeated HTTP_HOST takes its last value: a config override, not a merge.

        nginx sends both ``scgi_params``'s ``$host`` and a later
        ``scgi_param HTTP_HOST $http_host;``; raw keeps both.  Strict parsing still
        refuses the repetition.
        """
        pairs = [
            (b"CONTENT_LENGTH", b"0"),
            (b"SCGI", b"1"),
            (b"HTTP_HOST", b"example.test"),
            (b"HTTP_HOST", b"example.test:8080"),
        ]
        headers = HeadersReceived(
            {
                "CONTENT_LENGTH": b"0",
                "SCGI": b"1",
                "HTTP_HOST": b"example.test:8080",
            },
            tuple(pairs),
            0,
        )
        self.assertParses(rawRequest(pairs), [headers, RequestEnded()])
        strict = SCGIParser(merge_duplicates=False)
        strict.receive_data(rawRequest(pairs))
        self.assertRaises(RemoteProtocolError, strict.next_event)

    def test_mergeCookie(self) -> None:
        """Repeated HTTP_COOKIE values merge with ``; ``, as HTTP merges cookies."""
        pairs = [
            (b"CONTENT_LENGTH", b"0"),
            (b"SCGI", b"1"),
            (b"HTTP_COOKIE", b"a=1"),
            (b"HTTP_ACCEPT", b"text/html"),
            (b"HTTP_COOKIE", b"b=2; c=3"),
            (b"HTTP_ACCEPT", b"*/*"),
        ]
        headers = HeadersReceived(
            {
                "CONTENT_LENGTH": b"0",
                "SCGI": b"1",
                "HTTP_COOKIE": b"a=1; b=2; c=3",
                "HTTP_ACCEPT": b"text/html, */*",
            },
            tuple(pairs),
            0,
        )
        self.assertParses(rawRequest(pairs), [headers, RequestEnded()])

    def test_cgiNamesRefused(self) -> None:
        """A repeated CONTENT_LENGTH, SCGI or REQUEST_METHOD is refused in any mode."""
        for merge in [True, False]:
            factory = partial(SCGIParser, merge_duplicates=merge)
            for name, value in [
                (b"CONTENT_LENGTH", b"27"),
                (b"SCGI", b"1"),
                (b"REQUEST_METHOD", b"GET"),
            ]:
                data = rawRequest(
                    deepthoughtPairs(append=[(name, value)]), DEEPTHOUGHT_BODY
                )
                self.assertRejected(
                    data,
                    RemoteProtocolError,
                    SCGIParser.ERR_DUPLICATE.format(name=name.decode()),
                    factory=factory,
                )

    def test_otherNamesRefused(self) -> None:
        """A repeated name not HTTP_* (``X_FOO``, ``HTTP``) is refused when merging."""
        for name in [b"X_FOO", b"HTTP", b"HTTPS"]:
            data = rawRequest(deepthoughtPairs(append=[(name, b"a"), (name, b"b")]))
            self.assertRejected(
                data,
                RemoteProtocolError,
                SCGIParser.ERR_DUPLICATE.format(name=name.decode()),
            )

    def test_strictRefusesHTTP(self) -> None:
        """With merge_duplicates=False, a repeated HTTP_* name is refused too."""
        factory = partial(SCGIParser, merge_duplicates=False)
        for name in [b"HTTP_X_FOO", b"HTTP_COOKIE"]:
            data = rawRequest(deepthoughtPairs(append=[(name, b"a"), (name, b"b")]))
            self.assertRejected(
                data,
                RemoteProtocolError,
                SCGIParser.ERR_DUPLICATE.format(name=name.decode()),
                factory=factory,
            )

    def test_strictAcceptsDistinct(self) -> None:
        """With merge_duplicates=False, distinct names are accepted as usual."""
        pairs = deepthoughtPairs(append=[(b"HTTP_X_FOO", b"a"), (b"HTTP_X_BAR", b"b")])
        self.assertParses(
            rawRequest(pairs, DEEPTHOUGHT_BODY),
            expectedEvents(pairs, DEEPTHOUGHT_BODY),
            factory=partial(SCGIParser, merge_duplicates=False),
        )


# The body.


class BodyTests(SansIOTestCase):
    """Body bytes are handed on as they come and never past CONTENT_LENGTH."""

    def test_neverPastContentLength(self) -> None:
        """Bytes after CONTENT_LENGTH bytes of body are dropped and counted."""
        parser = SCGIParser()
        parser.receive_data(DEEPTHOUGHT + b"EXTRA")
        events = drain(parser)
        self.assertEqual(events, expectedEvents(DEEPTHOUGHT_PAIRS, DEEPTHOUGHT_BODY))
        self.assertEqual(parser.trailing_bytes, 5)
        parser.receive_data(b"more")
        self.assertEqual(parser.trailing_bytes, 9)
        self.assertEqual(parser.bytes_received, len(DEEPTHOUGHT) + 9)
        self.assertIs(parser.next_event(), None)

    def test_pastContentLengthSplit(self) -> None:
        """A chunk holding the body's end and more gives only the body's end."""
        parser = SCGIParser()
        parser.receive_data(DEEPTHOUGHT[:-3])
        events = drain(parser)
        self.assertEqual(events[1], BodyReceived(DEEPTHOUGHT_BODY[:-3]))
        parser.receive_data(b"fe?" + b"XYZ")
        parser.receive_data(b"UVW")
        self.assertEqual(parser.next_event(), BodyReceived(b"fe?"))
        self.assertEqual(parser.next_event(), RequestEnded())
        self.assertEqual(parser.trailing_bytes, 6)

    def test_trailingWithoutBody(self) -> None:
        """With CONTENT_LENGTH 0, bytes after the block are all trailing."""
        parser = SCGIParser()
        parser.receive_data(MINIMAL + b"abc")
        parser.receive_data(b"de")
        self.assertIsInstance(parser.next_event(), HeadersReceived)
        self.assertEqual(parser.trailing_bytes, 0)
        self.assertEqual(parser.next_event(), RequestEnded())
        self.assertEqual(parser.trailing_bytes, 5)
        self.assertIs(parser.next_event(), None)

    def test_manyChunks(self) -> None:
        """A body in many chunks comes out in as many events, in order, nothing lost."""
        body = bytes(range(256)) * 40
        pairs = [(b"CONTENT_LENGTH", b"%d" % len(body)), (b"SCGI", b"1")]
        parser = SCGIParser()
        parser.receive_data(netstring(headerBlock(pairs)))
        self.assertEqual(parser.next_event(), expectedEvents(pairs, body)[0])
        received = []
        for start in range(0, len(body), 1000):
            self.assertIs(parser.next_event(), None)
            parser.receive_data(body[start : start + 1000])
            event = parser.next_event()
            if not isinstance(event, BodyReceived):
                self.fail(f"expected BodyReceived, got {event!r}")
            received.append(event.data)
            self.assertEqual(parser.body_remaining, len(body) - sum(map(len, received)))
        self.assertEqual(len(received), 11)
        self.assertEqual(b"".join(received), body)
        self.assertEqual(parser.next_event(), RequestEnded())

    def test_queuedChunks(self) -> None:
        """Body chunks given before next_event is called come out one event each."""
        parser = SCGIParser()
        parser.receive_data(DEEPTHOUGHT[:74])
        self.assertIsInstance(parser.next_event(), HeadersReceived)
        parser.receive_data(b"What ")
        parser.receive_data(b"is ")
        parser.receive_data(DEEPTHOUGHT_BODY[8:])
        self.assertEqual(
            drain(parser),
            [
                BodyReceived(b"What "),
                BodyReceived(b"is "),
                BodyReceived(DEEPTHOUGHT_BODY[8:]),
                RequestEnded(),
            ],
        )

    def test_bodyWithHeaders(self) -> None:
        """Body bytes in the same chunk as the header block come right after headers."""
        parser = SCGIParser()
        parser.receive_data(DEEPTHOUGHT[:79])
        self.assertEqual(
            drain(parser),
            [DEEPTHOUGHT_HEADERS, BodyReceived(b"What ")],
        )
        parser.receive_data(DEEPTHOUGHT[79:])
        self.assertEqual(
            drain(parser), [BodyReceived(DEEPTHOUGHT_BODY[5:]), RequestEnded()]
        )

    def test_blockAndBodyAcrossChunks(self) -> None:
        """A chunk ending the block and starting the body, then more body: in order."""
        parser = SCGIParser()
        parser.receive_data(DEEPTHOUGHT[:60])
        self.assertIs(parser.next_event(), None)
        parser.receive_data(DEEPTHOUGHT[60:78])
        parser.receive_data(DEEPTHOUGHT[78:90])
        self.assertEqual(
            joinBodies(drain(parser)),
            [DEEPTHOUGHT_HEADERS, BodyReceived(DEEPTHOUGHT[74:90])],
        )


# The end of the input.


class EOFTests(SansIOTestCase):
    """EOF before the request is complete is a PrematureEOFError."""

    def test_connectAndClose(self) -> None:
        """EOF with no byte at all is a premature EOF in the length, 0 bytes seen."""
        parser = SCGIParser()
        parser.receive_data(b"")
        error = self.raisedExactly(
            PrematureEOFError, SCGIParser.ERR_EOF_LENGTH, parser.next_event
        )
        self.assertEqual(error.bytes_received, 0)
        self.assertEqual(error.status_hint, 400)
        self.assertSticky(parser, error)

    def test_inLength(self) -> None:
        """EOF after ``7`` is a premature EOF in the length, 1 byte received."""
        error, _ = self.assertRejected(
            b"7", PrematureEOFError, SCGIParser.ERR_EOF_LENGTH, eof=True
        )
        self.assertEqual(error.bytes_received, 1)

    def test_inHeaders(self) -> None:
        """EOF inside the header block is a premature EOF in the headers."""
        for size in [3, 40, 73]:
            error, _ = self.assertRejected(
                DEEPTHOUGHT[:size],
                PrematureEOFError,
                SCGIParser.ERR_EOF_HEADERS,
                eof=True,
            )
            self.assertEqual(error.bytes_received, size)

    def test_inBody(self) -> None:
        """The request minus its last byte, then EOF: premature EOF, 1 byte missing."""
        error, _ = self.assertRejected(
            DEEPTHOUGHT[:-1],
            PrematureEOFError,
            SCGIParser.ERR_EOF_BODY.format(missing=1),
            eof=True,
        )
        self.assertEqual(error.bytes_received, 100)

    def test_beforeBody(self) -> None:
        """EOF right after the header block reports the whole body missing."""
        parser = SCGIParser()
        parser.receive_data(DEEPTHOUGHT[:74])
        parser.receive_data(b"")
        self.assertIsInstance(parser.next_event(), HeadersReceived)
        error = self.raisedExactly(
            PrematureEOFError,
            SCGIParser.ERR_EOF_BODY.format(missing=27),
            parser.next_event,
        )
        self.assertEqual(error.bytes_received, 74)

    def test_afterRequest(self) -> None:
        """EOF after a complete request is not an error."""
        parser = SCGIParser()
        events = feed(parser, [DEEPTHOUGHT])
        self.assertEqual(events, expectedEvents(DEEPTHOUGHT_PAIRS, DEEPTHOUGHT_BODY))
        self.assertTrue(parser.eof)
        self.assertIs(parser.next_event(), None)

    def test_dataAfterEOF(self) -> None:
        """receive_data after EOF raises LocalProtocolError, even with b"" again."""
        for data in [b"x", b""]:
            parser = SCGIParser()
            parser.receive_data(b"")
            self.raisedExactly(
                LocalProtocolError,
                SCGIParser.ERR_DATA_AFTER_EOF,
                partial(parser.receive_data, data),
            )
            self.assertEqual(parser.bytes_received, 0)

    def test_dataAfterEOFIsLocal(self) -> None:
        """The LocalProtocolError after EOF is an SCGIError, not a remote error."""
        parser = SCGIParser()
        feed(parser, [DEEPTHOUGHT])
        error = self.raisedExactly(
            LocalProtocolError,
            SCGIParser.ERR_DATA_AFTER_EOF,
            partial(parser.receive_data, b"late"),
        )
        self.assertIsInstance(error, SCGIError)
        self.assertFalse(isinstance(error, RemoteProtocolError))
        self.assertIs(parser.state, State.DONE)


class StickyErrorTests(SansIOTestCase):
    """Once the parser has failed, it raises the same error forever."""

    def test_sameObject(self) -> None:
        """A second next_event raises the very same exception object."""
        parser = SCGIParser()
        parser.receive_data(b"x")
        error = self.raisedExactly(
            RemoteProtocolError, SCGIParser.ERR_LENGTH_NOT_DIGITS, parser.next_event
        )
        self.assertSticky(parser, error)

    def test_dataAfterError(self) -> None:
        """Bytes after an error are counted but ignored; the same error comes back."""
        parser = SCGIParser()
        parser.receive_data(b"x")
        error = self.raisedExactly(
            RemoteProtocolError, SCGIParser.ERR_LENGTH_NOT_DIGITS, parser.next_event
        )
        parser.receive_data(MINIMAL)
        self.assertEqual(parser.bytes_received, 1 + len(MINIMAL))
        self.assertSticky(parser, error)
        parser.receive_data(b"")
        self.assertSticky(parser, error)

    def test_errorInBody(self) -> None:
        """A premature EOF in the body is sticky too."""
        parser = SCGIParser()
        parser.receive_data(DEEPTHOUGHT[:80])
        drain(parser)
        parser.receive_data(b"")
        error = self.raisedExactly(
            PrematureEOFError,
            SCGIParser.ERR_EOF_BODY.format(missing=21),
            parser.next_event,
        )
        self.assertSticky(parser, error)


class ParserOptionsTests(SansIOTestCase):
    """The parser's constructor checks its limits."""

    def test_defaults(self) -> None:
        """A default parser has the documented limits and merges duplicates."""
        parser = SCGIParser()
        self.assertEqual(parser.max_header_size, 64 * 1024)
        self.assertEqual(parser.max_variables, 500)
        self.assertIs(parser.max_body_size, None)
        self.assertIs(parser.merge_duplicates, True)
        self.assertEqual(parser.bytes_received, 0)
        self.assertEqual(parser.trailing_bytes, 0)
        self.assertFalse(parser.eof)
        self.assertEqual(MAX_CONTENT_LENGTH, 2**63 - 1)

    def test_badLimits(self) -> None:
        """Zero or negative header limits, or a negative body limit, are ValueErrors."""
        positive = "limits must be positive"
        for factory, message in [
            (partial(SCGIParser, max_header_size=0), positive),
            (partial(SCGIParser, max_header_size=-1), positive),
            (partial(SCGIParser, max_variables=0), positive),
            (
                partial(SCGIParser, max_body_size=-1),
                "max_body_size must not be negative",
            ),
        ]:
            self.raisedExactly(ValueError, message, factory)


class ErrorHierarchyTests(SansIOTestCase):
    """The exceptions the parser raises form the documented hierarchy."""

    def test_hierarchy(self) -> None:
        """Remote errors are ValueErrors, local ones RuntimeErrors, all SCGIErrors."""
        self.assertTrue(issubclass(HeaderTooLargeError, RemoteProtocolError))
        self.assertTrue(issubclass(BodyTooLargeError, RemoteProtocolError))
        self.assertTrue(issubclass(PrematureEOFError, RemoteProtocolError))
        self.assertTrue(issubclass(RemoteProtocolError, SCGIError))
        self.assertTrue(issubclass(RemoteProtocolError, ValueError))
        self.assertTrue(issubclass(LocalProtocolError, SCGIError))
        self.assertTrue(issubclass(LocalProtocolError, RuntimeError))
        self.assertFalse(issubclass(LocalProtocolError, RemoteProtocolError))

    def test_statusHint(self) -> None:
        """status_hint defaults to 400, 431 or 413 and can be given explicitly."""
        self.assertEqual(RemoteProtocolError("x").status_hint, 400)
        self.assertEqual(RemoteProtocolError("x", status_hint=418).status_hint, 418)
        self.assertEqual(HeaderTooLargeError("x").status_hint, 431)
        self.assertEqual(BodyTooLargeError("x").status_hint, 413)
        self.assertIs(BodyTooLargeError("x").content_length, None)
        self.assertEqual(PrematureEOFError("x", bytes_received=3).status_hint, 400)


# The response head.


class EncodeResponseHeadTests(SansIOTestCase):
    """encode_response_head writes a CGI-form response head."""

    def test_statusFirst(self) -> None:
        """The Status line comes first, then the headers in order, CRLF everywhere."""
        head = encode_response_head(
            404,
            b"Not Found",
            [(b"Content-Type", b"text/html"), (b"Content-Length", b"0"), (b"X-A", b"")],
        )
        self.assertEqual(
            head,
            b"Status: 404 Not Found\r\n"
            b"Content-Type: text/html\r\n"
            b"Content-Length: 0\r\n"
            b"X-A: \r\n"
            b"\r\n",
        )
        self.assertEqual(head.count(b"\n"), head.count(b"\r\n"))

    def test_noHeaders(self) -> None:
        """With no headers, the head is the Status line and a blank line."""
        self.assertEqual(
            encode_response_head(204, b"No Content", []),
            b"Status: 204 No Content\r\n\r\n",
        )

    def test_repeatedNames(self) -> None:
        """Repeated header names are all kept, in order."""
        head = encode_response_head(
            200,
            b"OK",
            iter(
                [(b"Set-Cookie", b"a=1"), (b"Vary", b"Accept"), (b"Set-Cookie", b"b=2")]
            ),
        )
        self.assertEqual(
            head,
            b"Status: 200 OK\r\nSet-Cookie: a=1\r\nVary: Accept\r\n"
            b"Set-Cookie: b=2\r\n\r\n",
        )

    def test_emptyReason(self) -> None:
        """An empty reason is replaced by the standard phrase, or ``Unknown``."""
        self.assertEqual(
            encode_response_head(404, b"", []), b"Status: 404 Not Found\r\n\r\n"
        )
        self.assertEqual(
            encode_response_head(418, b"", []), b"Status: 418 I'm a Teapot\r\n\r\n"
        )
        self.assertEqual(
            encode_response_head(599, b"", []), b"Status: 599 Unknown\r\n\r\n"
        )

    def test_customReason(self) -> None:
        """A given reason is kept as is, even for a non-standard pairing."""
        self.assertEqual(
            encode_response_head(200, b"Fine \xe9", []),
            b"Status: 200 Fine \xe9\r\n\r\n",
        )

    def test_statusRange(self) -> None:
        """Statuses 100 and 999 are accepted; 0, 99, 1000 and -200 raise."""
        self.assertEqual(
            encode_response_head(100, b"", []), b"Status: 100 Continue\r\n\r\n"
        )
        self.assertEqual(
            encode_response_head(999, b"Odd", []), b"Status: 999 Odd\r\n\r\n"
        )
        for status in [0, 99, 1000, -200]:
            self.raisedExactly(
                LocalProtocolError,
                f"status {status!r} is not a three-digit code",
                partial(encode_response_head, status, b"OK", []),
            )

    def test_badReason(self) -> None:
        """CR, LF or NUL in the reason phrase raises LocalProtocolError."""
        for reason in [b"O\rK", b"O\nK", b"OK\r\nX-Injected: 1", b"O\x00K"]:
            self.raisedExactly(
                LocalProtocolError,
                "the reason phrase holds CR, LF or NUL",
                partial(encode_response_head, 200, reason, []),
            )

    def test_badValue(self) -> None:
        """CR, LF or NUL in a header value raises LocalProtocolError."""
        for value in [b"a\rb", b"a\nb", b"a\r\nSet-Cookie: x=1", b"a\x00b", b"\n"]:
            self.raisedExactly(
                LocalProtocolError,
                f"the value of {b'X-Foo'!r} holds CR, LF or NUL",
                partial(encode_response_head, 200, b"OK", [(b"X-Foo", value)]),
            )

    def test_badValueAmongMany(self) -> None:
        """A bad value is refused wherever it stands among several headers.

        First, middle or last, after a dropped ``Status`` header, from a
        generator: the head is checked whole, and the first bad value is named.
        """
        plain = [(b"A", b"1"), (b"B", b""), (b"C", b"3")]
        withStatus = [(b"A", b"1"), (b"Status", b"500"), (b"B", b""), (b"C", b"3")]
        for good in (plain, withStatus):
            for bad in [b"x\ry", b"\n", b"x\x00", b"\r\nInjected: 1"]:
                for index in range(len(good) + 1):
                    headers = [*good[:index], (b"X-Bad", bad), *good[index:]]
                    self.raisedExactly(
                        LocalProtocolError,
                        f"the value of {b'X-Bad'!r} holds CR, LF or NUL",
                        partial(encode_response_head, 200, b"OK", iter(headers)),
                    )
            self.assertEqual(
                encode_response_head(200, b"OK", iter(good)),
                b"Status: 200 OK\r\nA: 1\r\nB: \r\nC: 3\r\n\r\n",
            )

    def test_badName(self) -> None:
        """A header name that is not an HTTP token raises LocalProtocolError."""
        for name in [
            b"",
            b"X Foo",
            b"X:Foo",
            b"X-Foo\n",
            b"X\r\nFoo",
            b"Caf\xe9",
            b"(a)",
        ]:
            self.raisedExactly(
                LocalProtocolError,
                f"the header name {name!r} is not a token",
                partial(encode_response_head, 200, b"OK", [(name, b"v")]),
            )

    def test_tokenNames(self) -> None:
        """Every token character is allowed in a header name."""
        name = b"!#$%&'*+-.^_`|~09AZaz"
        self.assertEqual(
            encode_response_head(200, b"OK", [(name, b"v")]),
            b"Status: 200 OK\r\n" + name + b": v\r\n\r\n",
        )

    def test_statusHeaderDropped(self) -> None:
        """A ``Status`` header, in any case, is dropped: the Status line wins."""
        head = encode_response_head(
            201,
            b"Created",
            [(b"Status", b"500 Oops"), (b"Location", b"/x"), (b"sTaTuS", b"302")],
        )
        self.assertEqual(head, b"Status: 201 Created\r\nLocation: /x\r\n\r\n")

    def test_namesRemembered(self) -> None:
        """Checked names are remembered within a bound; a bad one is refused always."""
        cache = _sansio._written
        self.assertEqual(cache.cache_info().maxsize, _sansio.RESPONSE_NAMES_CACHED)
        for number in range(_sansio.RESPONSE_NAMES_CACHED + 1):
            name = b"X-%d" % number
            head = encode_response_head(200, b"OK", [(name, b"v")])
            self.assertEqual(head, b"Status: 200 OK\r\n%s: v\r\n\r\n" % name)
        self.assertEqual(cache.cache_info().currsize, _sansio.RESPONSE_NAMES_CACHED)
        for _attempt in range(2):
            with self.assertRaises(LocalProtocolError):
                encode_response_head(200, b"OK", [(b"X Y", b"v")])


# Properties.

NAMES = st.text(alphabet=string.ascii_uppercase + "_", min_size=1, max_size=12).filter(
    lambda name: name not in {"CONTENT_LENGTH", "SCGI"}
)
VALUES = st.binary(max_size=16).map(lambda value: value.replace(b"\x00", b""))


@st.composite
def validRequests(draw: st.DrawFn) -> tuple[bytes, list[Event]]:
    """A valid request (extra variables, SCGI anywhere, a random body), its events."""
    extra = draw(st.dictionaries(NAMES, VALUES, max_size=6))
    body = draw(st.binary(max_size=48))
    pairs = [(name.encode("ascii"), value) for name, value in extra.items()]
    pairs.insert(draw(st.integers(0, len(pairs))), (b"SCGI", b"1"))
    pairs.insert(0, (b"CONTENT_LENGTH", b"%d" % len(body)))
    return rawRequest(pairs, body), expectedEvents(pairs, body)


@st.composite
def splitRequests(draw: st.DrawFn) -> tuple[bytes, list[bytes], list[Event]]:
    """A valid request, the same request cut at random points, and its events."""
    data, events = draw(validRequests())
    points = draw(st.lists(st.integers(0, len(data)), max_size=12))
    return data, cut(data, points), events


@st.composite
def mutatedRequests(draw: st.DrawFn) -> bytes:
    """A valid request with a random slice replaced by random bytes."""
    data, _ = draw(validRequests())
    start = draw(st.integers(0, len(data)))
    end = draw(st.integers(start, len(data)))
    return data[:start] + draw(st.binary(max_size=8)) + data[end:]


STRINGS = st.sampled_from(
    [
        *(b"CONTENT_LENGTH", b"SCGI", b"HTTP_X", b"HTTP_COOKIE", b"REQUEST_METHOD"),
        *(b"", b"0", b"1", b"2", b"3", b"27", b"007", b"+1", b"\xb2", b"9" * 20),
    ]
)


@st.composite
def framedBlocks(draw: st.DrawFn) -> bytes:
    """A framed block of NUL-terminated likely strings, often after a CONTENT_LENGTH."""
    strings = draw(st.lists(STRINGS, max_size=12))
    if draw(st.booleans()):
        strings = [b"CONTENT_LENGTH", draw(STRINGS), *strings]
    block = b"".join(item + b"\x00" for item in strings)
    return netstring(block) + draw(st.binary(max_size=16))


HOSTILE = st.one_of(
    st.binary(max_size=128),
    st.binary(max_size=8).map(lambda head: b"%d:" % len(head) + head),
    mutatedRequests(),
    framedBlocks(),
)

FACTORIES: list[ParserFactory] = [
    SCGIParser,
    partial(
        SCGIParser,
        max_header_size=40,
        max_variables=3,
        max_body_size=10,
        merge_duplicates=False,
    ),
    partial(SCGIParser, max_header_size=9),
]


class PropertyTests(SansIOTestCase):
    """Hypothesis properties, deterministic and bounded."""

    @settings(derandomize=True, max_examples=300, deadline=None)
    @given(
        data=HOSTILE,
        points=st.lists(st.integers(0, 200), max_size=10),
        factory=st.sampled_from(FACTORIES),
        eof=st.booleans(),
    )
    def test_onlyRemoteErrors(
        self, data: bytes, points: list[int], factory: ParserFactory, eof: bool
    ) -> None:
        """Any bytes, whole or split, give events or a sticky RemoteProtocolError only.

        Both ways give the same events before stopping, and both fail or neither does.
        """
        chunks = cut(data, [point for point in points if point <= len(data)])
        outcomes = []
        for way in [[data] if data else [], chunks]:
            parser = factory()
            events, error = runToOutcome(parser, way, eof=eof)
            # runToOutcome lets any error but a RemoteProtocolError escape and fail.
            if error is not None:
                self.assertSticky(parser, error)
            outcomes.append((events, error is None))
        self.assertEqual(outcomes[0], outcomes[1])

    @settings(derandomize=True, max_examples=200, deadline=None)
    @given(request=splitRequests())
    def test_anySplit(self, request: tuple[bytes, list[bytes], list[Event]]) -> None:
        """Any split of a valid request gives the same events as feeding it whole."""
        data, chunks, expected = request
        whole = feed(SCGIParser(), [data])
        self.assertEqual(whole, expected)
        self.assertEqual(joinBodies(feed(SCGIParser(), chunks)), expected)

    @settings(derandomize=True, max_examples=200, deadline=None)
    @given(
        request=splitRequests(),
        trailing=st.binary(max_size=16),
    )
    def test_validThenEOF(
        self, request: tuple[bytes, list[bytes], list[Event]], trailing: bytes
    ) -> None:
        """A valid request, any trailing bytes, then EOF: never an error, ends DONE."""
        data, chunks, expected = request
        parser = SCGIParser()
        events = feed(parser, [*chunks, *cut(trailing, [len(trailing) // 2])])
        self.assertEqual(joinBodies(events), expected)
        self.assertIs(parser.state, State.DONE)
        self.assertEqual(parser.trailing_bytes, len(trailing))
        self.assertEqual(parser.bytes_received, len(data) + len(trailing))
        self.assertIs(parser.next_event(), None)


# The header block against a reference: the straightforward reading of the rules.


def referenceBlock(
    block: bytes,
    *,
    max_variables: int = DEFAULT_MAX_VARIABLES,
    max_body_size: int | None = None,
    merge_duplicates: bool = True,
) -> HeadersReceived | tuple[type[RemoteProtocolError], str]:
    """Judge a complete header block the plain way, one rule after the other.

    This is what the parser did before it remembered layouts: split, check the
    rules in order, then build the environment pair by pair, merging as it goes.

    :returns: the event, or the class and message of the error the block deserves.
    """
    P = SCGIParser

    def refuse(
        message: str, kind: type[RemoteProtocolError] = RemoteProtocolError
    ) -> tuple[type[RemoteProtocolError], str]:
        return kind, message

    if not block:
        return refuse(P.ERR_NO_CONTENT_LENGTH)
    if not block.endswith(b"\0"):
        return refuse(P.ERR_NOT_NUL_TERMINATED)
    strings = block[:-1].split(b"\0")
    if len(strings) % 2:
        return refuse(P.ERR_ODD_STRINGS)
    if len(strings) // 2 > max_variables:
        message = P.ERR_TOO_MANY_VARIABLES.format(limit=max_variables)
        return refuse(message, HeaderTooLargeError)
    pairs = list(zip(strings[0::2], strings[1::2], strict=True))
    if pairs[0][0] != b"CONTENT_LENGTH":
        if any(name == b"CONTENT_LENGTH" for name, _ in pairs):
            return refuse(P.ERR_CONTENT_LENGTH_NOT_FIRST)
        return refuse(P.ERR_NO_CONTENT_LENGTH)
    declared = pairs[0][1]
    if not declared or not all(48 <= byte <= 57 for byte in declared):
        return refuse(P.ERR_CONTENT_LENGTH_NOT_DIGITS)
    if any(not name for name, _ in pairs):
        return refuse(P.ERR_EMPTY_NAME)
    environ: dict[str, bytes] = {}
    for rawName, value in pairs:
        name = rawName.decode("latin-1")
        if name not in environ or (merge_duplicates and name == "HTTP_HOST"):
            environ[name] = value
        elif merge_duplicates and name.startswith("HTTP_"):
            separator = b"; " if name == "HTTP_COOKIE" else b", "
            environ[name] = environ[name] + separator + value
        else:
            return refuse(P.ERR_DUPLICATE.format(name=name))
    if "SCGI" not in environ:
        return refuse(P.ERR_NO_SCGI)
    if environ["SCGI"] != b"1":
        return refuse(P.ERR_BAD_SCGI)
    length = int(declared)
    if length > MAX_CONTENT_LENGTH:
        message = P.ERR_CONTENT_LENGTH_TOO_LARGE.format(limit=MAX_CONTENT_LENGTH)
        return refuse(message, BodyTooLargeError)
    if max_body_size is not None and length > max_body_size:
        message = P.ERR_CONTENT_LENGTH_TOO_LARGE.format(limit=max_body_size)
        return refuse(message, BodyTooLargeError)
    return HeadersReceived(environ, tuple(pairs), length)


BLOCK_NAMES = st.sampled_from(
    [
        *(b"HTTP_HOST", b"HTTP_COOKIE", b"HTTP_X", b"REQUEST_METHOD", b"caf\xe9") * 4,
        *(b"HTTP_", b"Http_x", b"SCGI", b"SCGI ", b""),
    ]
)
"""Names: mostly ones a frontend sends (and repeats), sometimes hostile ones."""

BLOCK_VALUES = st.one_of(
    VALUES,
    st.sampled_from([b"", b"1", b"0", b"01", b"12", b"+1", b"\xb2", b"9" * 20]),
)


@st.composite
def likelyBlocks(draw: st.DrawFn) -> bytes:
    """A header block of likely pairs: valid often, each rule broken sometimes."""
    pairs = draw(st.lists(st.tuples(BLOCK_NAMES, BLOCK_VALUES), max_size=8))
    if draw(st.integers(0, 9)):
        pairs.insert(draw(st.integers(0, len(pairs))), (b"SCGI", b"1"))
    if draw(st.integers(0, 9)):
        declared = draw(st.one_of(st.integers(0, 99).map(b"%d".__mod__), BLOCK_VALUES))
        pairs.insert(0, (b"CONTENT_LENGTH", declared))
    block = b"".join(name + b"\0" + value + b"\0" for name, value in pairs)
    shape = draw(st.integers(0, 19))
    if shape == 0:
        block = block[:-1]  # not NUL-terminated
    elif shape == 1:
        block += b"odd\0"
    return block


class LayoutTests(SansIOTestCase):
    """The parser remembers each block's layout; every verdict stays the rules'."""

    @settings(derandomize=True, max_examples=1000, deadline=None)
    @given(
        block=st.one_of(likelyBlocks(), st.binary(max_size=40)),
        merge=st.sampled_from([True, True, True, False]),
        maxBodySize=st.sampled_from([None, None, None, 0, 5, 10**20]),
        maxVariables=st.sampled_from([DEFAULT_MAX_VARIABLES] * 3 + [3]),
    )
    def test_sameAsReference(
        self, block: bytes, merge: bool, maxBodySize: int | None, maxVariables: int
    ) -> None:
        """Any block gives the reference's event or error, the first time and again.

        The second parse of the same names finds their layout remembered.
        """
        expected = referenceBlock(
            block,
            max_variables=maxVariables,
            max_body_size=maxBodySize,
            merge_duplicates=merge,
        )
        for _attempt in range(2):
            parser = SCGIParser(
                max_variables=maxVariables,
                max_body_size=maxBodySize,
                merge_duplicates=merge,
            )
            parser.receive_data(netstring(block))
            try:
                outcome: object = parser.next_event()
            except RemoteProtocolError as error:
                outcome = (type(error), str(error))
            self.assertEqual(outcome, expected)

    def test_frontendBlocks(self) -> None:
        """The repeated names of nginx 1.22 merge the same, however often they come.

        A repeated HTTP_HOST keeps the last value, repeated cookies join with
        ``; ``, other repeated headers with ``, ``, each at its first place.
        """
        pairs = [
            (b"CONTENT_LENGTH", b"0"),
            (b"HTTP_HOST", b"localhost"),
            (b"HTTP_COOKIE", b"a=1"),
            (b"SCGI", b"1"),
            (b"HTTP_HOST", b"localhost:8080"),
            (b"HTTP_X_FOO", b"one"),
            (b"HTTP_COOKIE", b"b=2"),
            (b"HTTP_X_FOO", b"two"),
            (b"HTTP_COOKIE", b"c=3"),
        ]
        for value in [b"0", b"1"]:
            pairs[3] = (b"SCGI", value)
            block = headerBlock(pairs)
            expected = referenceBlock(block)
            for _attempt in range(3):
                parser = SCGIParser()
                parser.receive_data(netstring(block))
                if value == b"1":
                    event = parser.next_event()
                    self.assertEqual(event, expected)
                    assert isinstance(event, HeadersReceived)
                    self.assertEqual(
                        list(event.environ.items()),
                        [
                            ("CONTENT_LENGTH", b"0"),
                            ("HTTP_HOST", b"localhost:8080"),
                            ("HTTP_COOKIE", b"a=1; b=2; c=3"),
                            ("SCGI", b"1"),
                            ("HTTP_X_FOO", b"one, two"),
                        ],
                    )
                else:
                    self.assertEqual(
                        expected, (RemoteProtocolError, SCGIParser.ERR_BAD_SCGI)
                    )
                    with self.assertRaises(RemoteProtocolError) as caught:
                        parser.next_event()
                    self.assertEqual(str(caught.exception), SCGIParser.ERR_BAD_SCGI)

    def test_largeLayoutsNotRemembered(self) -> None:
        """Too many names, or too long ones, are laid out anew, with one verdict.

        The memory of layouts stays within its bounds; a frontend's layout, small,
        is remembered.
        """
        long = b"HTTP_X_" + b"A" * _sansio.LAYOUT_CACHED_SIZE
        many = [(b"HTTP_X_%d" % n, b"v") for n in range(_sansio.LAYOUT_CACHED_NAMES)]
        cases = [[(long, b"1")], many]
        for extra in [*cases, *cases]:
            pairs = [(b"CONTENT_LENGTH", b"0"), *extra, (b"SCGI", b"1")]
            before = _sansio._cached_layout.cache_info()
            parser = SCGIParser(max_header_size=2 * _sansio.LAYOUT_CACHED_SIZE)
            parser.receive_data(rawRequest(pairs))
            event = parser.next_event()
            assert isinstance(event, HeadersReceived)
            self.assertEqual(event, referenceBlock(headerBlock(pairs)))
            after = _sansio._cached_layout.cache_info()
            self.assertEqual((after.hits, after.misses), (before.hits, before.misses))
        self.assertEqual(after.maxsize, _sansio.LAYOUTS_CACHED)
        _sansio._cached_layout.cache_clear()
        for expected in [(0, 1), (1, 0)]:
            before = _sansio._cached_layout.cache_info()
            parser = SCGIParser()
            parser.receive_data(rawRequest([*pairs[:3], (b"SCGI", b"1")]))
            self.assertIsInstance(parser.next_event(), HeadersReceived)
            after = _sansio._cached_layout.cache_info()
            self.assertEqual(
                (after.hits - before.hits, after.misses - before.misses), expected
            )

    def test_eventBuiltBySlots(self) -> None:
        """The parser's ``HeadersReceived`` equals one built by the constructor.

        The parser fills the frozen event's slots itself; the event it gives has
        every field, compares equal, and is still frozen.
        """
        pairs = [(b"CONTENT_LENGTH", b"0"), (b"SCGI", b"1"), (b"HTTP_X", b"y")]
        event = _sansio._headers_received(
            {"CONTENT_LENGTH": b"0", "SCGI": b"1", "HTTP_X": b"y"}, tuple(pairs), 0
        )
        self.assertIs(type(event), HeadersReceived)
        self.assertEqual(event, referenceBlock(headerBlock(pairs)))
        self.assertEqual(
            (event.environ["HTTP_X"], event.raw, event.content_length),
            (b"y", tuple(pairs), 0),
        )
        with self.assertRaises(AttributeError):  # FrozenInstanceError is one
            event.content_length = 1  # type: ignore[misc]
