"""Tests for the sans-I/O core of the SCGI client: request encoder, response parser.

Strategy: the encoder is checked against exact pair lists (nginx's order) and by
parsing its output with the server's own :class:`SCGIParser`, including a Hypothesis
round trip and a cross-check with the server's mount rules.  Every response goes
through :meth:`ResponseParserTestCase.assertParses`, which feeds it whole and one
byte at a time and expects the same events (bodies joined); every malformed response
goes through :meth:`ResponseParserTestCase.assertRejected`, which checks the exact
class and message both ways, and that the error is sticky.  The response vector is
the specification's "deepthought" answer (``scgi-spec.md`` §3.1).
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from scgi_twisted import _clientresponse as clientresponse
from scgi_twisted import _clientsansio as sansio
from scgi_twisted._clientsansio import (
    DEFAULT_MAX_HEAD_SIZE,
    DEFAULT_MAX_RESPONSE_HEADERS,
    ResponseBody,
    ResponseEnded,
    ResponseEvent,
    ResponseHead,
    ResponseParser,
    ResponseState,
    encode_request,
    encode_variables,
    request_variables,
)
from scgi_twisted._environ import mount_depth, path_segments
from scgi_twisted._errors import (
    ClientError,
    LocalProtocolError,
    MalformedResponseError,
    SCGIError,
)
from scgi_twisted._sansio import (
    BodyReceived,
    HeadersReceived,
    RequestEnded,
    SCGIParser,
)

from .support.scgi import (
    DEEPTHOUGHT_BODY,
    DEEPTHOUGHT_HEAD,
    DEEPTHOUGHT_PAIRS,
    DEEPTHOUGHT_SHA256,
)

DEEPTHOUGHT_RESPONSE = b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n42"

Pairs = list[tuple[bytes, bytes]]


def defaultPairs(
    method: bytes = b"GET",
    uri: bytes = b"/",
    query: bytes = b"",
    path_info: bytes = b"/",
    length: bytes = b"0",
) -> Pairs:
    """The pairs of a plain request with every default, in nginx's order."""
    return [
        (b"CONTENT_LENGTH", length),
        (b"REQUEST_METHOD", method),
        (b"REQUEST_URI", uri),
        (b"QUERY_STRING", query),
        (b"CONTENT_TYPE", b""),
        (b"SCGI", b"1"),
        (b"SERVER_PROTOCOL", b"HTTP/1.1"),
        (b"REQUEST_SCHEME", b"http"),
        (b"REMOTE_ADDR", b"127.0.0.1"),
        (b"REMOTE_PORT", b"0"),
        (b"SERVER_PORT", b"80"),
        (b"SERVER_NAME", b"localhost"),
        (b"HTTP_HOST", b"localhost"),
        (b"SCRIPT_NAME", b""),
        (b"PATH_INFO", path_info),
    ]


def value(pairs: Sequence[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """Return the value of ``name`` among ``pairs``, or ``None``."""
    found = [v for n, v in pairs if n == name]
    assert len(found) <= 1, f"{name!r} repeated"
    return found[0] if found else None


def serverEvents(data: bytes) -> list[object]:
    """Parse a request with the server's strict parser."""
    parser = SCGIParser(merge_duplicates=False)
    parser.receive_data(data)
    parser.receive_data(b"")
    events: list[object] = []
    while (event := parser.next_event()) is not None:
        events.append(event)
    return events


class ModuleTests(SynchronousTestCase):
    """The module's exported names and error classes."""

    def test_responseNamesHere(self) -> None:
        """The response parser's names are found in ``_clientsansio`` too."""
        for name in clientresponse.__all__:
            self.assertIs(getattr(sansio, name), getattr(clientresponse, name))

    def test_errorHierarchy(self) -> None:
        """A malformed response is a client error, an SCGI error and a ValueError."""
        error = MalformedResponseError("bad", bytes_received=3)
        self.assertIsInstance(error, ClientError)
        self.assertIsInstance(error, SCGIError)
        self.assertIsInstance(error, ValueError)
        self.assertEqual(error.bytes_received, 3)


class EncodeVariablesTests(SynchronousTestCase):
    """``encode_variables`` frames valid pairs and refuses invalid ones."""

    def test_deepthought(self) -> None:
        """The spec's example pairs frame to its exact 70-byte netstring."""
        head = encode_variables(DEEPTHOUGHT_PAIRS)
        self.assertEqual(head, DEEPTHOUGHT_HEAD)
        self.assertEqual(
            hashlib.sha256(head + DEEPTHOUGHT_BODY).hexdigest(), DEEPTHOUGHT_SHA256
        )

    def test_minimal(self) -> None:
        """The smallest valid request is the 24-byte block of the spec."""
        self.assertEqual(
            encode_variables([(b"CONTENT_LENGTH", b"0"), (b"SCGI", b"1")]),
            b"24:CONTENT_LENGTH\x000\x00SCGI\x001\x00,",
        )

    def test_emptyValue(self) -> None:
        """An empty value, even the last one, is framed as name NUL NUL."""
        head = encode_variables(
            [(b"CONTENT_LENGTH", b"0"), (b"SCGI", b"1"), (b"QUERY_STRING", b"")]
        )
        self.assertTrue(head.endswith(b"QUERY_STRING\x00\x00,"))

    def assertRefused(self, pairs: Pairs, message: str) -> None:
        """``encode_variables(pairs)`` raises LocalProtocolError(message)."""
        error = self.assertRaises(LocalProtocolError, encode_variables, pairs)
        self.assertEqual(str(error), message)

    def test_empty(self) -> None:
        """No pairs at all is refused: CONTENT_LENGTH must come first."""
        self.assertRefused([], sansio.ERR_FIRST_NOT_CONTENT_LENGTH)

    def test_contentLengthNotFirst(self) -> None:
        """CONTENT_LENGTH anywhere but first is refused."""
        self.assertRefused(
            [(b"SCGI", b"1"), (b"CONTENT_LENGTH", b"0")],
            sansio.ERR_FIRST_NOT_CONTENT_LENGTH,
        )

    def test_contentLengthNotDigits(self) -> None:
        """A CONTENT_LENGTH that is not a run of digits is refused."""
        for bad in (b"", b"-1", b"+1", b" 1", b"1_0"):
            self.assertRefused(
                [(b"CONTENT_LENGTH", bad), (b"SCGI", b"1")],
                sansio.ERR_CONTENT_LENGTH_NOT_DIGITS,
            )

    def test_scgiMissingOrWrong(self) -> None:
        """SCGI must be present with the value 1."""
        self.assertRefused([(b"CONTENT_LENGTH", b"0")], sansio.ERR_SCGI_MISSING)
        self.assertRefused(
            [(b"CONTENT_LENGTH", b"0"), (b"SCGI", b"2")], sansio.ERR_SCGI_MISSING
        )

    def test_duplicate(self) -> None:
        """A repeated name is refused, as the specification forbids it."""
        self.assertRefused(
            [(b"CONTENT_LENGTH", b"0"), (b"SCGI", b"1"), (b"X", b"a"), (b"X", b"b")],
            "the variable X is given more than once",
        )

    def test_badNameOrValue(self) -> None:
        """An empty name, or NUL in a name or a value, is refused."""
        base = [(b"CONTENT_LENGTH", b"0"), (b"SCGI", b"1")]
        self.assertRefused(
            [*base, (b"", b"x")], "the variable name b'' is empty or holds NUL"
        )
        self.assertRefused(
            [*base, (b"A\x00B", b"x")],
            "the variable name b'A\\x00B' is empty or holds NUL",
        )
        self.assertRefused(
            [*base, (b"A", b"x\x00y")], "the value of the variable A holds NUL"
        )


class RequestVariablesTests(SynchronousTestCase):
    """``request_variables`` builds what a frontend sends for an HTTP request."""

    def test_defaults(self) -> None:
        """``GET /`` gives nginx's variables, in nginx's order, with every default."""
        self.assertEqual(request_variables(), defaultPairs())

    def test_parsedByServer(self) -> None:
        """The encoded request, with its body, is valid for the server's parser."""
        head = encode_request("POST", "/a?b=c", [("Content-Type", "text/plain")], (), 5)
        events = serverEvents(head + b"hello")
        self.assertEqual(len(events), 3)
        headers = events[0]
        assert isinstance(headers, HeadersReceived)
        self.assertEqual(headers.content_length, 5)
        self.assertEqual(headers.environ["CONTENT_TYPE"], b"text/plain")
        self.assertEqual(events[1:], [BodyReceived(b"hello"), RequestEnded()])

    def test_query(self) -> None:
        """The query goes to QUERY_STRING; REQUEST_URI keeps it, PATH_INFO does not."""
        pairs = request_variables(b"GET", b"/a/b?x=1&y=%20")
        self.assertEqual(value(pairs, b"REQUEST_URI"), b"/a/b?x=1&y=%20")
        self.assertEqual(value(pairs, b"QUERY_STRING"), b"x=1&y=%20")
        self.assertEqual(value(pairs, b"PATH_INFO"), b"/a/b")

    def test_fragmentDropped(self) -> None:
        """A fragment is not part of a request target, so it is dropped."""
        pairs = request_variables(b"GET", b"/a?x=1#top")
        self.assertEqual(value(pairs, b"REQUEST_URI"), b"/a?x=1")
        self.assertEqual(value(pairs, b"QUERY_STRING"), b"x=1")

    def test_encodingAndDecoding(self) -> None:
        """Raw spaces and non-ASCII are escaped in REQUEST_URI and decoded in PATH_INFO.

        Escapes already present are kept in REQUEST_URI; PATH_INFO is decoded,
        ``%2F`` included, as nginx and lighttpd send it.
        """
        pairs = request_variables(b"GET", "/caf\u00e9/a b/x%2Fy?q=\u00e9 1")
        self.assertEqual(
            value(pairs, b"REQUEST_URI"), b"/caf%C3%A9/a%20b/x%2Fy?q=%C3%A9%201"
        )
        self.assertEqual(value(pairs, b"QUERY_STRING"), b"q=%C3%A9%201")
        self.assertEqual(value(pairs, b"PATH_INFO"), b"/caf\xc3\xa9/a b/x/y")

    def test_normalised(self) -> None:
        """PATH_INFO is normalised as nginx does: ``//`` merged, dot segments resolved.

        REQUEST_URI stays as typed; ``..`` never climbs above the root; a trailing
        slash is kept.
        """
        cases = {
            b"/": b"/",
            b"/a//b": b"/a/b",
            b"/a/./b/": b"/a/b/",
            b"/a/../b//c/./d": b"/b/c/d",
            b"/a/..": b"/",
            b"/../../x": b"/x",
            b"/a/.": b"/a/",
            b"//": b"/",
        }
        for target, expected in cases.items():
            pairs = request_variables(b"GET", target)
            self.assertEqual(value(pairs, b"PATH_INFO"), expected, target)
            self.assertEqual(value(pairs, b"REQUEST_URI"), target)

    def test_scriptName(self) -> None:
        """A script name splits the decoded path as nginx's mounted location does."""
        cases = {
            b"/app": (b"/app", b""),
            b"/app/": (b"/app", b"/"),
            b"/app/a/b": (b"/app", b"/a/b"),
            b"/app/a%2Fb/%20c": (b"/app", b"/a/b/ c"),
            b"/app//x/../y": (b"/app", b"/y"),
        }
        for target, (script, info) in cases.items():
            for mount in (b"/app", "/app/"):
                pairs = request_variables(b"GET", target, script_name=mount)
                self.assertEqual(value(pairs, b"SCRIPT_NAME"), script, target)
                self.assertEqual(value(pairs, b"PATH_INFO"), info, target)

    def test_rootScriptName(self) -> None:
        """``""`` and ``/`` both mean the root: SCRIPT_NAME empty, the whole path."""
        for mount in (b"", b"/"):
            pairs = request_variables(b"GET", b"/apple", script_name=mount)
            self.assertEqual(value(pairs, b"SCRIPT_NAME"), b"")
            self.assertEqual(value(pairs, b"PATH_INFO"), b"/apple")

    def test_notUnderScriptName(self) -> None:
        """A path outside the script name (only a string prefix) is refused."""
        error = self.assertRaises(
            LocalProtocolError,
            request_variables,
            b"GET",
            b"/apple",
            script_name=b"/app",
        )
        self.assertEqual(
            str(error), "the path b'/apple' is not under the script name b'/app'"
        )

    def test_noScriptName(self) -> None:
        """``script_name=None`` sends no SCRIPT_NAME or PATH_INFO (stock nginx)."""
        pairs = request_variables(b"GET", b"/a", script_name=None)
        names = [name for name, _ in pairs]
        self.assertNotIn(b"SCRIPT_NAME", names)
        self.assertNotIn(b"PATH_INFO", names)
        self.assertEqual(names, [name for name, _ in defaultPairs()][:-2])

    def test_secure(self) -> None:
        """A TLS client gives REQUEST_SCHEME=https, HTTPS=on after it, and port 443."""
        pairs = request_variables(secure=True)
        names = [name for name, _ in pairs]
        self.assertEqual(value(pairs, b"REQUEST_SCHEME"), b"https")
        self.assertEqual(value(pairs, b"HTTPS"), b"on")
        self.assertEqual(names.index(b"HTTPS"), names.index(b"REQUEST_SCHEME") + 1)
        self.assertEqual(value(pairs, b"SERVER_PORT"), b"443")
        self.assertIsNone(value(request_variables(), b"HTTPS"))

    def test_headers(self) -> None:
        """Headers become HTTP_* pairs after the CGI variables, in their order."""
        pairs = request_variables(
            b"GET",
            b"/",
            [("Accept", "text/html"), (b"X-Request-Id", b"7"), ("X-Empty", "")],
        )
        self.assertEqual(
            pairs[len(defaultPairs()) :],
            [
                (b"HTTP_ACCEPT", b"text/html"),
                (b"HTTP_X_REQUEST_ID", b"7"),
                (b"HTTP_X_EMPTY", b""),
            ],
        )

    def test_headerMapping(self) -> None:
        """Headers may be a mapping; values are stripped of surrounding whitespace."""
        pairs = request_variables(b"GET", b"/", {"Accept": "  text/plain \t"})
        self.assertEqual(value(pairs, b"HTTP_ACCEPT"), b"text/plain")

    def test_repeatedHeadersMerged(self) -> None:
        """Repeated headers merge at their first position: ``, `` or ``; `` (Cookie).

        Names are matched without regard to case, as HTTP does.
        """
        pairs = request_variables(
            b"GET",
            b"/",
            [
                ("Cookie", "a=1"),
                ("X-Foo", "one"),
                ("cookie", "b=2"),
                ("x-foo", "two"),
                ("X-FOO", "three"),
            ],
        )
        self.assertEqual(
            pairs[len(defaultPairs()) :],
            [(b"HTTP_COOKIE", b"a=1; b=2"), (b"HTTP_X_FOO", b"one, two, three")],
        )

    def test_host(self) -> None:
        """A Host header replaces the default HTTP_HOST, in the same place."""
        pairs = request_variables(
            b"GET", b"/", [("X-A", "1"), ("Host", "example.test:8080")]
        )
        expected = defaultPairs()
        expected[12] = (b"HTTP_HOST", b"example.test:8080")
        self.assertEqual(pairs, [*expected, (b"HTTP_X_A", b"1")])

    def test_contentType(self) -> None:
        """Content-Type is sent as CONTENT_TYPE only, never as HTTP_CONTENT_TYPE."""
        pairs = request_variables(
            b"POST", b"/", [("content-type", "application/json")], (), 2
        )
        self.assertEqual(value(pairs, b"CONTENT_TYPE"), b"application/json")
        self.assertIsNone(value(pairs, b"HTTP_CONTENT_TYPE"))

    def test_duplicateContentType(self) -> None:
        """Two Content-Type headers cannot be merged, so they are refused."""
        error = self.assertRaises(
            LocalProtocolError,
            request_variables,
            b"POST",
            b"/",
            [("Content-Type", "a/b"), ("Content-Type", "c/d")],
        )
        self.assertEqual(str(error), sansio.ERR_DUPLICATE_CONTENT_TYPE)

    def test_contentLengthHeader(self) -> None:
        """A Content-Length header that agrees is dropped; CONTENT_LENGTH carries it."""
        pairs = request_variables(b"POST", b"/", [("Content-Length", "3")], (), 3)
        self.assertEqual(value(pairs, b"CONTENT_LENGTH"), b"3")
        self.assertIsNone(value(pairs, b"HTTP_CONTENT_LENGTH"))

    def test_contentLengthHeaderDisagrees(self) -> None:
        """A Content-Length header that disagrees with the body is refused."""
        error = self.assertRaises(
            LocalProtocolError,
            request_variables,
            b"POST",
            b"/",
            [("Content-Length", "4")],
            (),
            3,
        )
        self.assertEqual(
            str(error),
            "the Content-Length header (b'4') disagrees with the body's length (3)",
        )

    def test_badHeaders(self) -> None:
        """A name that is not a token, or CR, LF or NUL in a value, is refused."""
        for name in ("Bad Name", "", "X:Y", "caf\u00e9"):
            self.assertRaises(
                LocalProtocolError, request_variables, b"GET", b"/", [(name, "v")]
            )
        error = self.assertRaises(
            LocalProtocolError, request_variables, b"GET", b"/", [("Bad Name", "v")]
        )
        self.assertEqual(str(error), "the header name b'Bad Name' is not an HTTP token")
        for bad in ("a\rb", "a\nb", "a\x00b"):
            error = self.assertRaises(
                LocalProtocolError, request_variables, b"GET", b"/", [("X-A", bad)]
            )
            self.assertEqual(
                str(error), "the value of the header b'X-A' holds CR, LF or NUL"
            )

    def test_badMethod(self) -> None:
        """A method that is not an HTTP token is refused."""
        error = self.assertRaises(LocalProtocolError, request_variables, "GE T")
        self.assertEqual(str(error), "the method b'GE T' is not an HTTP token")

    def test_badTarget(self) -> None:
        """A target that does not start with ``/`` is refused."""
        for target in (b"", b"a/b", b"http://example.test/", b"*"):
            error = self.assertRaises(
                LocalProtocolError, request_variables, b"GET", target
            )
            self.assertEqual(str(error), f"the path {target!r} does not start with '/'")

    def test_nulInPath(self) -> None:
        """A path that decodes to NUL is refused: PATH_INFO could not carry it."""
        error = self.assertRaises(
            LocalProtocolError, request_variables, b"GET", b"/a%00b"
        )
        self.assertEqual(str(error), sansio.ERR_NUL_IN_PATH)

    def test_badContentLength(self) -> None:
        """A negative or non-integer body length is refused."""
        bad: Any
        for bad in (-1, True, 1.5):
            error = self.assertRaises(
                LocalProtocolError,
                request_variables,
                b"GET",
                b"/",
                (),
                (),
                bad,
            )
            self.assertEqual(str(error), sansio.ERR_BAD_CONTENT_LENGTH_ARG)


class OverrideTests(SynchronousTestCase):
    """SCGI variables can be set, replaced and left out."""

    def test_replaceInPlace(self) -> None:
        """A known variable keeps its position and takes the new value."""
        pairs = request_variables(
            variables=[
                ("REMOTE_ADDR", "203.0.113.9"),
                (b"SERVER_NAME", b"example.test"),
            ]
        )
        expected = defaultPairs()
        expected[8] = (b"REMOTE_ADDR", b"203.0.113.9")
        expected[11] = (b"SERVER_NAME", b"example.test")
        self.assertEqual(pairs, expected)

    def test_append(self) -> None:
        """A new variable is appended, in the order given."""
        pairs = request_variables(variables=[("Z_ONE", "1"), ("A_TWO", "")])
        self.assertEqual(pairs, [*defaultPairs(), (b"Z_ONE", b"1"), (b"A_TWO", b"")])

    def test_remove(self) -> None:
        """``None`` leaves a variable out; leaving out an absent one does nothing."""
        pairs = request_variables(
            variables=[("QUERY_STRING", None), ("NOT_THERE", None)]
        )
        self.assertEqual(
            pairs, [pair for pair in defaultPairs() if pair[0] != b"QUERY_STRING"]
        )

    def test_lastWins(self) -> None:
        """Overrides apply in order, so the last one for a name wins."""
        pairs = request_variables(
            variables=[("X_A", "1"), ("X_A", "2"), ("SERVER_PORT", "1")]
        )
        self.assertEqual(value(pairs, b"X_A"), b"2")
        self.assertEqual(value(pairs, b"SERVER_PORT"), b"1")

    def test_overrideHeader(self) -> None:
        """A variable override beats the HTTP_* pair built from a header."""
        pairs = request_variables(
            b"GET", b"/", [("Cookie", "a=1")], {"HTTP_COOKIE": "b=2"}
        )
        self.assertEqual(value(pairs, b"HTTP_COOKIE"), b"b=2")

    def test_reserved(self) -> None:
        """CONTENT_LENGTH and SCGI cannot be overridden or removed."""
        for name in ("CONTENT_LENGTH", "SCGI"):
            for new in ("5", None):
                error = self.assertRaises(
                    LocalProtocolError, request_variables, variables={name: new}
                )
                self.assertEqual(
                    str(error),
                    f"{name} cannot be overridden: the encoder sets it to keep the "
                    "request valid",
                )

    def test_badOverrides(self) -> None:
        """Empty names, NUL, and non-ASCII text names are refused."""
        error = self.assertRaises(
            LocalProtocolError, request_variables, variables={"": "x"}
        )
        self.assertEqual(str(error), "the variable name b'' is empty or holds NUL")
        error = self.assertRaises(
            LocalProtocolError, request_variables, variables={"X": "a\x00"}
        )
        self.assertEqual(str(error), "the value of the variable X holds NUL")
        error = self.assertRaises(
            LocalProtocolError, request_variables, variables={"CAF\u00c9": "x"}
        )
        self.assertEqual(str(error), "the name 'CAF\u00c9' is not ASCII")

    def test_bytesNamesKept(self) -> None:
        """A bytes name may hold any byte but NUL; the server parser accepts it."""
        head = encode_request(variables={b"X_\xe9": b"\xff"})
        headers = serverEvents(head)[0]
        assert isinstance(headers, HeadersReceived)
        self.assertEqual(headers.environ["X_\xe9"], b"\xff")


_segment = st.text(
    alphabet=st.characters(
        codec="utf-8",
        exclude_characters="/%?#.\x00",
        exclude_categories=["Cs"],
    ),
    min_size=1,
    max_size=6,
)
_headerName = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-",
    min_size=1,
    max_size=8,
).filter(lambda name: name.lower() not in ("content-type", "content-length"))
_headerValue = st.binary(max_size=8).map(
    lambda raw: raw.replace(b"\r", b"").replace(b"\n", b"").replace(b"\0", b"")
)


class RequestPropertyTests(SynchronousTestCase):
    """Properties of the encoder, checked against the server's own code."""

    @settings(derandomize=True, max_examples=150, deadline=None)
    @given(
        segments=st.lists(_segment, max_size=4),
        query=st.text(max_size=8).filter(lambda q: "#" not in q),
        headers=st.lists(st.tuples(_headerName, _headerValue), max_size=5),
        body=st.binary(max_size=20),
        secure=st.booleans(),
    )
    def test_roundTrip(
        self,
        segments: list[str],
        query: str,
        headers: list[tuple[str, bytes]],
        body: bytes,
        secure: bool,
    ) -> None:
        """Whatever the request, the server's strict parser accepts it unchanged.

        The parsed pairs are exactly the pairs built, CONTENT_LENGTH matches the body
        and the body arrives whole.
        """
        path = "/" + "/".join(segments) + ("?" + query if query else "")
        pairs = request_variables(b"PUT", path, headers, (), len(body), secure=secure)
        events = serverEvents(encode_variables(pairs) + body)
        first = events[0]
        assert isinstance(first, HeadersReceived)
        self.assertEqual(list(first.raw), pairs)
        self.assertEqual(first.content_length, len(body))
        received = b"".join(
            event.data for event in events if isinstance(event, BodyReceived)
        )
        self.assertEqual(received, body)
        self.assertEqual(events[-1], RequestEnded())

    @settings(derandomize=True, max_examples=150, deadline=None)
    @given(
        mount=st.lists(_segment, min_size=1, max_size=3),
        rest=st.lists(_segment, max_size=3),
        slash=st.booleans(),
    )
    def test_mountAgreesWithServer(
        self, mount: list[str], rest: list[str], slash: bool
    ) -> None:
        """The server's mount rules find exactly the segments of the script name.

        That is the first rule of ``mount_depth``: SCRIPT_NAME is a segment-wise
        prefix of the raw path and PATH_INFO is exactly the rest.
        """
        script = "/" + "/".join(mount)
        path = script + "".join("/" + segment for segment in rest)
        if slash:
            path += "/"
        pairs = request_variables(b"GET", path, script_name=script)
        environ = {name.decode("latin-1"): value for name, value in pairs}
        raw_path = environ["REQUEST_URI"].partition(b"?")[0]
        depth = mount_depth(path_segments(raw_path), environ, None)
        self.assertEqual(depth, len(mount))


# The response parser.


def drain(parser: ResponseParser) -> list[ResponseEvent]:
    """Return every event the parser can give now."""
    events: list[ResponseEvent] = []
    while (event := parser.next_event()) is not None:
        events.append(event)
    return events


def joinBodies(events: Sequence[ResponseEvent]) -> list[ResponseEvent]:
    """Join consecutive body events, so any split of a response compares equal."""
    joined: list[ResponseEvent] = []
    for event in events:
        if isinstance(event, ResponseBody):
            if not event.data:
                raise AssertionError("the parser gave an empty ResponseBody")
            previous = joined[-1] if joined else None
            if isinstance(previous, ResponseBody):
                joined[-1] = ResponseBody(previous.data + event.data)
                continue
        joined.append(event)
    return joined


def run(
    parser: ResponseParser, chunks: Sequence[bytes]
) -> tuple[list[ResponseEvent], MalformedResponseError | None]:
    """Feed the chunks then EOF, draining after each; stop at a malformed response."""
    events: list[ResponseEvent] = []
    try:
        for chunk in [*chunks, b""]:
            parser.receive_data(chunk)
            while (event := parser.next_event()) is not None:
                events.append(event)
    except MalformedResponseError as error:
        return joinBodies(events), error
    return joinBodies(events), None


def bytewise(data: bytes) -> list[bytes]:
    """Cut ``data`` into one-byte chunks."""
    return [data[index : index + 1] for index in range(len(data))]


def head(
    status: int = 200,
    reason: bytes = b"OK",
    headers: Sequence[tuple[bytes, bytes]] = (),
    length: int | None = None,
) -> ResponseHead:
    """Build a head event."""
    return ResponseHead(status, reason, tuple(headers), length)


class ResponseParserTestCase(SynchronousTestCase):
    """The feed-both-ways helpers of the response parser tests."""

    def assertParses(
        self,
        data: bytes,
        expected: Sequence[ResponseEvent],
        *,
        method: bytes = b"GET",
    ) -> None:
        """Feed ``data`` whole and byte by byte, then EOF; expect the same events."""
        for way, chunks in (("whole", [data]), ("byte by byte", bytewise(data))):
            parser = ResponseParser(method=method)
            events, error = run(parser, chunks)
            self.assertIsNone(error, way)
            self.assertEqual(events, list(expected), way)
            self.assertIs(parser.state, ResponseState.DONE, way)
            self.assertEqual(parser.bytes_received, len(data), way)
            self.assertIsNone(parser.next_event(), way)

    def assertRejected(
        self,
        data: bytes,
        message: str,
        *,
        before: Sequence[ResponseEvent] = (),
        method: bytes = b"GET",
        **limits: int,
    ) -> None:
        """Feed ``data`` whole and byte by byte: each fails with exactly ``message``.

        The events given before the error must be ``before`` (bodies joined), and
        the error must be sticky.
        """
        for way, chunks in (("whole", [data]), ("byte by byte", bytewise(data))):
            parser = ResponseParser(method=method, **limits)
            events, error = run(parser, chunks)
            if error is None:
                self.fail(f"{way}: no error; events {events!r}")
            self.assertIs(type(error), MalformedResponseError, way)
            self.assertEqual(str(error), message, way)
            self.assertEqual(events, list(before), way)
            self.assertIs(parser.state, ResponseState.ERROR, way)
            again = self.assertRaises(MalformedResponseError, parser.next_event)
            self.assertIs(again, error, way)


class ResponseParserTests(ResponseParserTestCase):
    """Valid CGI responses give a head, the body and the end."""

    def test_deepthought(self) -> None:
        """The specification's response parses to 200, its header and ``42``."""
        self.assertParses(
            DEEPTHOUGHT_RESPONSE,
            [
                head(headers=[(b"Content-Type", b"text/plain")]),
                ResponseBody(b"42"),
                ResponseEnded(),
            ],
        )

    def test_bareLineFeeds(self) -> None:
        """Bare-LF line endings, even mixed with CRLF, are accepted."""
        expected: list[ResponseEvent] = [
            head(404, b"Not Found", [(b"A", b"1"), (b"B", b"2")]),
            ResponseBody(b"x\r\n"),
            ResponseEnded(),
        ]
        self.assertParses(b"Status: 404 Not Found\nA: 1\nB: 2\n\nx\r\n", expected)
        self.assertParses(b"Status: 404 Not Found\r\nA: 1\nB: 2\r\n\nx\r\n", expected)

    def test_noStatus(self) -> None:
        """Without a Status header the status is 200 OK."""
        self.assertParses(
            b"Content-Type: text/plain\r\n\r\n",
            [head(headers=[(b"Content-Type", b"text/plain")]), ResponseEnded()],
        )

    def test_locationOnly(self) -> None:
        """A Location without a Status is a 302 Found, as in CGI and nginx."""
        self.assertParses(
            b"location: /x\r\n\r\n",
            [head(302, b"Found", [(b"location", b"/x")]), ResponseEnded()],
        )

    def test_statusAnywhere(self) -> None:
        """The Status header may come after others; it is not among the headers."""
        self.assertParses(
            b"Location: /y\r\nStatus: 301 Moved\r\n\r\n",
            [head(301, b"Moved", [(b"Location", b"/y")]), ResponseEnded()],
        )

    def test_statusForms(self) -> None:
        """A Status without a reason, with tabs, or in any case is understood."""
        cases = {
            b"Status: 204\r\n\r\n": head(204, b""),
            b"STATUS:\t500   Oops  again \r\n\r\n": head(500, b"Oops  again"),
            b"status:299 Whatever\r\n\r\n": head(299, b"Whatever"),
        }
        for data, expected in cases.items():
            self.assertParses(data, [expected, ResponseEnded()])

    def test_headerValues(self) -> None:
        """Values are stripped of surrounding whitespace and may be empty."""
        self.assertParses(
            b"Status: 200 OK\r\nX-Empty:\r\nX-Space:  a  b \t\r\n\r\n",
            [head(headers=[(b"X-Empty", b""), (b"X-Space", b"a  b")]), ResponseEnded()],
        )

    def test_contentLength(self) -> None:
        """A body exactly as long as Content-Length is complete at EOF."""
        self.assertParses(
            b"Status: 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            [
                head(headers=[(b"Content-Length", b"5")], length=5),
                ResponseBody(b"hello"),
                ResponseEnded(),
            ],
        )

    def test_contentLengthRepeatedSame(self) -> None:
        """Content-Length repeated with the same value (leading zeros too) is one."""
        self.assertParses(
            b"Content-Length: 2\r\nContent-Length: 002\r\n\r\nok",
            [
                head(
                    headers=[(b"Content-Length", b"2"), (b"Content-Length", b"002")],
                    length=2,
                ),
                ResponseBody(b"ok"),
                ResponseEnded(),
            ],
        )

    def test_bodyWithoutLength(self) -> None:
        """Without Content-Length the body runs to EOF, blank lines and all."""
        self.assertParses(
            b"A: 1\n\n\r\n\r\nrest",
            [
                head(headers=[(b"A", b"1")]),
                ResponseBody(b"\r\n\r\nrest"),
                ResponseEnded(),
            ],
        )

    def test_head(self) -> None:
        """A response to HEAD has no body; its Content-Length is not checked."""
        self.assertParses(
            b"Status: 200 OK\r\nContent-Length: 20\r\n\r\n",
            [head(headers=[(b"Content-Length", b"20")], length=20), ResponseEnded()],
            method=b"HEAD",
        )

    def test_noBodyStatuses(self) -> None:
        """204, 304 and 1xx responses have no body; Content-Length is not checked."""
        for status in (100, 204, 304):
            data = b"Status: %d X\r\nContent-Length: 9\r\n\r\n" % status
            self.assertParses(
                data,
                [head(status, b"X", [(b"Content-Length", b"9")], 9), ResponseEnded()],
            )

    def test_limitsReached(self) -> None:
        """A head of exactly max_head_size bytes, or max_headers lines, is accepted."""
        data = b"A: 12345\r\n\r\n"
        parser = ResponseParser(max_head_size=len(data))
        self.assertEqual(run(parser, [data])[1], None)
        parser = ResponseParser(max_headers=2)
        self.assertEqual(run(parser, [b"Status: 200 OK\nA: 1\n\n"])[1], None)

    def test_defaults(self) -> None:
        """The default limits are 64 KiB of head and 500 header lines."""
        parser = ResponseParser()
        self.assertEqual(parser.max_head_size, DEFAULT_MAX_HEAD_SIZE)
        self.assertEqual(DEFAULT_MAX_HEAD_SIZE, 65536)
        self.assertEqual(parser.max_headers, DEFAULT_MAX_RESPONSE_HEADERS)
        self.assertEqual(DEFAULT_MAX_RESPONSE_HEADERS, 500)

    def test_badLimits(self) -> None:
        """Limits below 1 are refused at construction."""
        self.assertRaises(ValueError, ResponseParser, max_head_size=0)
        self.assertRaises(ValueError, ResponseParser, max_headers=0)

    def test_progress(self) -> None:
        """State, body_remaining and body_received follow the response."""
        parser = ResponseParser()
        self.assertIs(parser.state, ResponseState.HEAD)
        self.assertIsNone(parser.body_remaining)
        parser.receive_data(b"Content-Length: 4\r\n\r\nab")
        self.assertIsInstance(parser.next_event(), ResponseHead)
        self.assertIs(parser.state, ResponseState.BODY)
        self.assertEqual(parser.body_remaining, 4)
        self.assertEqual(parser.next_event(), ResponseBody(b"ab"))
        self.assertEqual(parser.body_remaining, 2)
        self.assertEqual(parser.body_received, 2)
        self.assertIsNone(parser.next_event())
        self.assertFalse(parser.eof)
        parser.receive_data(b"cd")
        parser.receive_data(b"")
        self.assertTrue(parser.eof)
        self.assertEqual(parser.next_event(), ResponseBody(b"cd"))
        self.assertEqual(parser.body_remaining, 0)
        self.assertEqual(parser.next_event(), ResponseEnded())
        self.assertIs(parser.state, ResponseState.DONE)

    def test_remainingUnknownOrNone(self) -> None:
        """body_remaining is None without Content-Length, 0 when no body may come."""
        parser = ResponseParser()
        parser.receive_data(b"A: 1\r\n\r\n")
        parser.next_event()
        self.assertIsNone(parser.body_remaining)
        parser = ResponseParser(method="head")
        parser.receive_data(b"Content-Length: 7\r\n\r\n")
        parser.next_event()
        self.assertEqual(parser.body_remaining, 0)

    def test_dataAfterEOF(self) -> None:
        """Giving bytes after EOF is our own misuse, raised at once."""
        parser = ResponseParser()
        parser.receive_data(b"")
        error = self.assertRaises(LocalProtocolError, parser.receive_data, b"x")
        self.assertEqual(str(error), ResponseParser.ERR_DATA_AFTER_EOF)

    def test_doneIgnoresNextEvent(self) -> None:
        """After the end, next_event keeps returning None."""
        parser = ResponseParser()
        run(parser, [b"A: 1\r\n\r\n"])
        self.assertIsNone(parser.next_event())
        self.assertIsNone(parser.next_event())


class MalformedResponseTests(ResponseParserTestCase):
    """Each malformed response fails with its own message."""

    def test_empty(self) -> None:
        """A connection closed before any byte is "closed without a response"."""
        self.assertRejected(b"", ResponseParser.ERR_EMPTY)

    def test_eofInHead(self) -> None:
        """EOF before the blank line is a truncated head."""
        for data in (b"Status: 200 OK", b"Status: 200 OK\r\n", b"A: 1\r\nB: 2\r\n\r"):
            self.assertRejected(data, ResponseParser.ERR_EOF_HEAD)

    def test_headTooLarge(self) -> None:
        """A head over max_head_size is refused before its end arrives."""
        message = "the response head is longer than 16 bytes"
        self.assertRejected(b"A: " + b"x" * 20, message, max_head_size=16)
        self.assertRejected(b"A: 1\r\nB: 2\r\nC: 3\r\n\r\n", message, max_head_size=16)
        self.assertRejected(b"A: 123456789012\r\n\r\n", message, max_head_size=16)

    def test_headTooLargeEarly(self) -> None:
        """The size limit is checked as bytes arrive, not only at EOF or a newline."""
        parser = ResponseParser(max_head_size=16)
        parser.receive_data(b"X" * 17)
        error = self.assertRaises(MalformedResponseError, parser.next_event)
        self.assertEqual(str(error), "the response head is longer than 16 bytes")
        self.assertEqual(error.bytes_received, 17)

    def test_tooManyHeaders(self) -> None:
        """More than max_headers lines (Status included) are refused."""
        self.assertRejected(
            b"Status: 200 OK\r\nA: 1\r\nB: 2\r\n\r\n",
            "the response head holds more than 2 header lines",
            max_headers=2,
        )

    def test_nph(self) -> None:
        """An HTTP status line (a non-parsed-header response) is refused."""
        for line in (b"HTTP/1.1 200 OK", b"HTTP/1.0 404 Not Found"):
            self.assertRejected(
                line + b"\r\nContent-Type: text/plain\r\n\r\nbody",
                ResponseParser.ERR_NPH,
            )

    def test_noHeaders(self) -> None:
        """A head with no header line at all is refused."""
        for data in (b"\r\nbody", b"\nbody"):
            self.assertRejected(data, ResponseParser.ERR_NO_HEADERS)

    def test_folded(self) -> None:
        """A line starting with whitespace (obsolete folding) is refused."""
        self.assertRejected(b"A: 1\r\n  more\r\n\r\n", ResponseParser.ERR_FOLDED)
        self.assertRejected(b"\tA: 1\r\n\r\n", ResponseParser.ERR_FOLDED)

    def test_noColon(self) -> None:
        """A header line without a colon is refused, and shown."""
        self.assertRejected(
            b"A: 1\r\ngarbage\r\n\r\n",
            "a response header line has no ':': b'garbage'",
        )

    def test_badName(self) -> None:
        """A name that is not a token (space before the colon, empty) is refused."""
        self.assertRejected(
            b"Content-Type : x\r\n\r\n",
            "a response header name is not an HTTP token: b'Content-Type '",
        )
        self.assertRejected(
            b": x\r\n\r\n", "a response header name is not an HTTP token: b''"
        )

    def test_badValue(self) -> None:
        """CR or NUL inside a value is refused."""
        for data in (b"A: x\ry\r\n\r\n", b"A: x\x00y\r\n\r\n"):
            self.assertRejected(
                data, "the value of the response header b'A' holds CR or NUL"
            )

    def test_badStatus(self) -> None:
        """A Status that is not three digits (100-999) and a reason is refused."""
        for status in (b"", b"abc", b"20", b"2000 X", b"099 X", b"200OK", b"-200 X"):
            self.assertRejected(
                b"Status: " + status + b"\r\n\r\n",
                f"the Status header is not a three-digit code and reason: {status!r}",
            )

    def test_duplicateStatus(self) -> None:
        """Two Status headers are refused."""
        self.assertRejected(
            b"Status: 200 OK\r\nStatus: 404 No\r\n\r\n",
            ResponseParser.ERR_DUPLICATE_STATUS,
        )

    def test_badContentLength(self) -> None:
        """A Content-Length that is not digits, or absurdly large, is refused."""
        for length in (b"", b"-1", b"+1", b"1.0", b"0x10", b"1 2", b"9" * 19):
            self.assertRejected(
                b"Content-Length: " + length + b"\r\n\r\n",
                f"the Content-Length is not a valid length: {length!r}",
            )

    def test_conflictingContentLength(self) -> None:
        """Two Content-Length headers that disagree are refused."""
        self.assertRejected(
            b"Content-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            ResponseParser.ERR_CONFLICTING_CONTENT_LENGTH,
        )

    def test_transferEncoding(self) -> None:
        """Any Transfer-Encoding is refused: a CGI body is never chunk-framed."""
        self.assertRejected(
            b"Status: 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n0\r\n\r\n",
            ResponseParser.ERR_TRANSFER_ENCODING,
        )

    def test_bodyTooLong(self) -> None:
        """Bytes beyond Content-Length are refused, and never handed on."""
        self.assertRejected(
            b"Content-Length: 2\r\n\r\nokEXTRA",
            "the response body is longer than its Content-Length of 2 bytes",
            before=[
                head(headers=[(b"Content-Length", b"2")], length=2),
                ResponseBody(b"ok"),
            ],
        )

    def test_extraAfterZeroLength(self) -> None:
        """With Content-Length 0, any body byte is one too many."""
        self.assertRejected(
            b"Content-Length: 0\r\n\r\nx",
            "the response body is longer than its Content-Length of 0 bytes",
            before=[head(headers=[(b"Content-Length", b"0")], length=0)],
        )

    def test_bodyTruncated(self) -> None:
        """EOF before Content-Length bytes is a truncated body."""
        self.assertRejected(
            b"Content-Length: 10\r\n\r\nhello",
            "the connection closed with 5 of the 10 body bytes (Content-Length) "
            "missing",
            before=[
                head(headers=[(b"Content-Length", b"10")], length=10),
                ResponseBody(b"hello"),
            ],
        )

    def test_bodyNotAllowed(self) -> None:
        """A body after a response to HEAD, or after a 204 or 304, is refused."""
        self.assertRejected(
            b"A: 1\r\n\r\nx",
            "a response to HEAD must have no body, but body bytes came",
            before=[head(headers=[(b"A", b"1")])],
            method=b"HEAD",
        )
        self.assertRejected(
            b"Status: 204 No Content\r\n\r\nx",
            "a response to a 204 status must have no body, but body bytes came",
            before=[head(204, b"No Content")],
        )

    def test_dataAfterErrorDropped(self) -> None:
        """Bytes given after an error are dropped; the same error is raised again."""
        parser = ResponseParser()
        parser.receive_data(b"HTTP/1.1 200 OK\r\n")
        first = self.assertRaises(MalformedResponseError, parser.next_event)
        parser.receive_data(b"Status: 200 OK\r\n\r\n")
        self.assertEqual(parser.bytes_received, 35)
        self.assertIs(
            self.assertRaises(MalformedResponseError, parser.next_event), first
        )

    def test_bytesReceivedCarried(self) -> None:
        """The error says how many bytes had arrived."""
        parser = ResponseParser()
        _, error = run(parser, [b"HTTP/1.1 200 OK\r\n"])
        assert error is not None
        self.assertEqual(error.bytes_received, 17)


_validResponses = st.sampled_from(
    [
        DEEPTHOUGHT_RESPONSE,
        b"Status: 404 Not Found\nContent-Length: 3\n\nabc",
        b"Location: /x\r\n\r\n",
        b"A: 1\r\nB:\r\nStatus: 299 W\r\n\r\n\r\n\r\nbody",
    ]
)


class ResponsePropertyTests(SynchronousTestCase):
    """Properties of the response parser (deterministic, bounded)."""

    @settings(derandomize=True, max_examples=300, deadline=None)
    @given(st.binary(max_size=200), st.lists(st.integers(0, 200), max_size=6))
    def test_onlyMalformedResponseError(self, data: bytes, cuts: list[int]) -> None:
        """Any bytes, cut anywhere, give events or MalformedResponseError only."""
        bounds = sorted({0, len(data), *(cut for cut in cuts if cut <= len(data))})
        chunks = [data[a:b] for a, b in itertools.pairwise(bounds)]
        parser = ResponseParser(max_head_size=64, max_headers=4)
        events, error = run(parser, [chunk for chunk in chunks if chunk])
        if error is None:
            self.assertIsInstance(events[0], ResponseHead)
            self.assertEqual(events[-1], ResponseEnded())

    @settings(derandomize=True, max_examples=200, deadline=None)
    @given(_validResponses, st.lists(st.integers(1, 80), max_size=8))
    def test_splitsDoNotMatter(self, data: bytes, cuts: list[int]) -> None:
        """However a valid response is cut, the events (bodies joined) are the same."""
        whole, error = run(ResponseParser(), [data])
        self.assertIsNone(error)
        bounds = sorted({0, len(data), *(cut for cut in cuts if cut < len(data))})
        chunks = [data[a:b] for a, b in itertools.pairwise(bounds)]
        split, error = run(ResponseParser(), chunks)
        self.assertIsNone(error)
        self.assertEqual(split, whole)
