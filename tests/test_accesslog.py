"""The batched access log: the combined format byte for byte, batching, sinks, reopen.

:mod:`scgi_twisted._accesslog` formats each request into the line twisted.web's
``combinedLogFormatter`` writes for it and writes the lines in batches: on a timer
of the site's clock, past a size, on reopen and on close.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.task import Clock
from twisted.logger import formatEvent, formatEventAsClassicLogText
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.http import combinedLogFormatter, datetimeToLogString
from twisted.web.resource import Resource
from twisted.web.server import Request

from scgi_twisted import SCGISite, _accesslog
from scgi_twisted._accesslog import (
    BUFFER_LIMIT,
    FLUSH_INTERVAL,
    PIPE_BUF,
    AccessLog,
    FileSink,
    LoggerSink,
    StreamSink,
    combinedLine,
    escape,
    refusedLine,
)
from scgi_twisted._service import SignalHook

from .support.memory import collectLogEvents, connect
from .support.scgi import buildRequest, nginxVariables

TIMESTAMP = datetimeToLogString(1764790000.0)


@dataclass
class FakeRequest:
    """What a log formatter reads of a finished request."""

    address: Any
    method: bytes
    uri: bytes
    clientproto: bytes
    code: int
    sentLength: int
    headers: dict[bytes, bytes] = field(default_factory=dict)

    def getClientAddress(self) -> Any:
        """Return the client's address."""
        return self.address

    def getHeader(self, name: bytes) -> bytes | None:
        """Return a request header, or ``None``."""
        return self.headers.get(name)


anyBytes = st.binary(max_size=40)
addresses = st.one_of(
    st.builds(
        IPv4Address,
        st.just("TCP"),
        st.ip_addresses(v=4).map(str),
        st.integers(0, 65535),
    ),
    st.builds(
        IPv6Address,
        st.just("TCP"),
        st.ip_addresses(v=6).map(str),
        st.integers(0, 65535),
    ),
    st.builds(UNIXAddress, st.just(b"/run/x.sock")),
    st.none(),
)


class FormatTests(SynchronousTestCase):
    """Lines equal twisted.web's ``combinedLogFormatter``'s, byte for byte."""

    @settings(max_examples=500, deadline=None)
    @given(
        address=addresses,
        method=anyBytes,
        uri=anyBytes,
        proto=anyBytes,
        code=st.integers(100, 999),
        length=st.integers(0, 10**9),
        referrer=st.one_of(st.none(), anyBytes),
        agent=st.one_of(st.none(), anyBytes),
    )
    def test_sameAsTwisted(  # noqa: PLR0917
        self,
        address: Any,
        method: bytes,
        uri: bytes,
        proto: bytes,
        code: int,
        length: int,
        referrer: bytes | None,
        agent: bytes | None,
    ) -> None:
        """Any bytes in any field (quotes, backslashes, controls, non-ASCII, empty).

        Every client address kind (IPv4, IPv6, unix, none) and a length of 0 (``-``).
        """
        headers = {}
        if referrer is not None:
            headers[b"referer"] = referrer
        if agent is not None:
            headers[b"user-agent"] = agent
        request = FakeRequest(address, method, uri, proto, code, length, headers)
        self.assertEqual(
            combinedLine(TIMESTAMP, request),
            combinedLogFormatter(TIMESTAMP, request),
        )

    def test_escape(self) -> None:
        """Quotes, backslashes and bytes outside printable ASCII are escaped.

        A single quote is not; text is taken as ASCII.
        """
        self.assertEqual(escape(b"/a b"), "/a b")
        self.assertEqual(escape(b'say "hi"'), 'say \\"hi\\"')
        self.assertEqual(escape(b"it's"), "it's")
        self.assertEqual(escape(b'it\'s "x"'), 'it\'s \\"x\\"')
        self.assertEqual(escape(b"a\\b"), "a\\\\b")
        self.assertEqual(escape(b"\x00\xff\n"), "\\x00\\xff\\n")
        self.assertEqual(escape("::1"), "::1")

    def test_realRequest(self) -> None:
        """A request served by ``SCGISite`` is logged as ``combinedLogFormatter`` would.

        Both formatters see the same finished request in ``Site.log``.
        """
        seen: list[tuple[str, str]] = []

        class Logging(SCGISite):
            def log(self, request: Request) -> None:  # type: ignore[override]
                seen.append(
                    (
                        combinedLine(TIMESTAMP, request),
                        combinedLogFormatter(TIMESTAMP, request),
                    )
                )

        root = Resource()
        root.putChild(b"x", _Text())
        site = Logging(root, reactor=Clock())
        channel, _ = connect(site)
        variables = nginxVariables(
            b'/x?q="1"',
            HTTP_REFERER=b"https://example.com/\xc3\xa9",
            HTTP_USER_AGENT=b"curl/8.5.0",
            REMOTE_ADDR=b"2001:db8::1",
        )
        channel.dataReceived(buildRequest(variables))
        ((ours, theirs),) = seen
        self.assertEqual(ours, theirs)
        self.assertIn('"2001:db8::1" - - ', ours)
        self.assertIn('"GET /x?q=\\"1\\" HTTP/1.1" 200 5 ', ours)


class _Text(Resource):
    """Answers ``hello``."""

    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        """Five bytes."""
        return b"hello"


class RecordingSink:
    """A sink that records every batch."""

    def __init__(self) -> None:
        self.batches: list[str] = []
        self.reopened = 0
        self.closed = False

    def write(self, text: str) -> None:
        """Record a batch."""
        self.batches.append(text)

    def reopen(self) -> None:
        """Count a reopen."""
        self.reopened += 1

    def close(self) -> None:
        """Record the close."""
        self.closed = True


class BatchingTests(SynchronousTestCase):
    """Lines wait for the timer, a size, a reopen or the close; one write per batch."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.sink = RecordingSink()
        self.log = AccessLog(self.sink, self.clock)

    def test_timer(self) -> None:
        """Lines are written together ``FLUSH_INTERVAL`` after the first.

        The timer is armed only while lines wait: an idle log has none.
        """
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.log.append("one")
        self.clock.advance(FLUSH_INTERVAL / 2)
        self.log.append("two")
        self.assertEqual(self.sink.batches, [])
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.advance(FLUSH_INTERVAL / 2)
        self.assertEqual(self.sink.batches, ["one\ntwo\n"])
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.log.append("three")
        self.clock.advance(FLUSH_INTERVAL)
        self.assertEqual(self.sink.batches, ["one\ntwo\n", "three\n"])

    def test_size(self) -> None:
        """Past ``BUFFER_LIMIT`` characters the batch is written at once."""
        line = "x" * 1023
        count = BUFFER_LIMIT // 1024
        for _ in range(count - 1):
            self.log.append(line)
        self.assertEqual(self.sink.batches, [])
        self.log.append(line)
        self.assertEqual(self.sink.batches, [(line + "\n") * count])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_close(self) -> None:
        """Closing writes what waits and closes the sink; later lines are dropped."""
        self.log.append("last")
        self.log.close()
        self.assertEqual(self.sink.batches, ["last\n"])
        self.assertTrue(self.sink.closed)
        self.log.append("late")
        self.clock.advance(FLUSH_INTERVAL)
        self.assertEqual(self.sink.batches, ["last\n"])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_reopen(self) -> None:
        """Reopening writes what waits to the old destination first."""
        self.log.append("before")
        self.log.reopen()
        self.assertEqual(self.sink.batches, ["before\n"])
        self.assertEqual(self.sink.reopened, 1)

    def test_timestamp(self) -> None:
        """The time of a line comes from the clock, formatted as twisted.web does."""
        self.clock.advance(1764790000.75)
        self.assertEqual(self.log.timestamp(), TIMESTAMP)
        self.clock.advance(0.5)
        self.assertEqual(
            self.log.timestamp(),
            datetimeToLogString(1764790001.0),
        )

    def test_writeError(self) -> None:
        """A failing write (a full disk) loses the batch, is logged, raises nothing."""

        class Full(RecordingSink):
            def write(self, text: str) -> None:
                raise OSError(28, "No space left on device")

        events = collectLogEvents(self)
        log = AccessLog(Full(), self.clock)
        log.append("lost")
        log.flush()
        (event,) = events
        self.assertEqual(
            formatEvent(event),
            "Could not write 1 access log line(s): No space left on device",
        )


class FileSinkTests(SynchronousTestCase):
    """The file is appended to, and reopened after a rename (logrotate)."""

    def test_appendAndReopen(self) -> None:
        """After a rename and a reopen, new lines go to a new file at the path.

        The renamed file keeps the lines written before; existing content is kept
        (appended to).
        """
        directory = self.mktemp()
        os.makedirs(directory)
        path = os.path.join(directory, "access.log")
        with open(path, "w") as existing:
            existing.write("old\n")
        sink = FileSink(path)
        self.addCleanup(sink.close)
        sink.write("a\nb\n")
        os.rename(path, path + ".1")
        sink.write("c\n")  # still the renamed file
        sink.reopen()
        sink.write("d\n")
        with open(path + ".1") as rotated:
            self.assertEqual(rotated.read(), "old\na\nb\nc\n")
        with open(path) as current:
            self.assertEqual(current.read(), "d\n")

    def test_reopenFails(self) -> None:
        """If the path cannot be opened again, the old file stays in use."""
        directory = self.mktemp()
        os.makedirs(directory)
        path = os.path.join(directory, "sub", "access.log")
        os.makedirs(os.path.dirname(path))
        sink = FileSink(path)
        self.addCleanup(sink.close)
        os.rename(os.path.dirname(path), directory + "/moved")
        sink.reopen()
        sink.write("kept\n")
        with open(os.path.join(directory, "moved", "access.log")) as moved:
            self.assertEqual(moved.read(), "kept\n")


class StreamSinkTests(SynchronousTestCase):
    """Writes to a shared descriptor are whole lines, at most ``PIPE_BUF`` at a time."""

    def test_pieces(self) -> None:
        """Each write is whole lines no larger than ``PIPE_BUF`` (a longer line alone).

        Together the writes are the batch, in order.
        """
        writes: list[bytes] = []
        self.patch(_accesslog, "_writeAll", lambda fd, data: writes.append(data))
        lines = [f"line {n} " + "x" * (n * 37 % 300) for n in range(200)]
        lines.insert(50, "y" * (PIPE_BUF + 10))
        batch = "".join(line + "\n" for line in lines)
        StreamSink(1).write(batch)
        self.assertEqual(b"".join(writes).decode(), batch)
        self.assertGreater(len(writes), 2)
        for data in writes:
            self.assertTrue(data.endswith(b"\n"))
            if len(data) > PIPE_BUF:
                self.assertEqual(data.count(b"\n"), 1)

    def test_closeKeepsDescriptor(self) -> None:
        """Closing the sink does not close the descriptor; later writes are dropped."""
        readEnd, writeEnd = os.pipe()
        self.addCleanup(os.close, readEnd)
        self.addCleanup(os.close, writeEnd)
        sink = StreamSink(writeEnd)
        sink.write("a\n")
        sink.close()
        sink.write("b\n")
        os.write(writeEnd, b"c\n")
        self.assertEqual(os.read(readEnd, 100), b"a\nc\n")


class SignalHookTests(SynchronousTestCase):
    """``SIGUSR1`` runs the callback in the reactor, after the handler it replaced."""

    def test_chained(self) -> None:
        """The previous handler runs too; uninstalling restores it."""
        calls: list[str] = []
        previous = signal.signal(
            signal.SIGUSR1, lambda signum, frame: calls.append("previous")
        )
        self.addCleanup(signal.signal, signal.SIGUSR1, previous)

        class Reactor:
            def callFromThread(self, f: Any, *args: Any) -> None:
                calls.append("scheduled")
                f(*args)

        hook = SignalHook(signal.SIGUSR1, Reactor(), lambda: calls.append("reopen"))
        hook.install()
        os.kill(os.getpid(), signal.SIGUSR1)
        self.assertEqual(calls, ["previous", "scheduled", "reopen"])
        hook.uninstall()
        os.kill(os.getpid(), signal.SIGUSR1)
        self.assertEqual(calls, ["previous", "scheduled", "reopen", "previous"])


class DocumentedFormatTests(SynchronousTestCase):
    """The samples in ``docs/operations.md`` are what the code writes."""

    def block(self, start: str) -> list[str]:
        """Return the lines of the guide's ``text`` block that starts with ``start``."""
        guide = Path(__file__).resolve().parent.parent / "docs" / "operations.md"
        for block in guide.read_text(encoding="utf-8").split("```text\n")[1:]:
            text = block.split("```", 1)[0]
            if text.startswith(start):
                return text.splitlines()
        raise AssertionError(f"no text block starting with {start!r}")

    def test_line(self) -> None:
        """The sample line is the line of the request it describes."""
        (line,) = self.block('"203.0.113.9"')
        request = FakeRequest(
            IPv4Address("TCP", "203.0.113.9", 51234),
            b"GET",
            b"/app/x?y=1",
            b"HTTP/1.1",
            200,
            1097,
            {b"user-agent": b"curl/8.5.0"},
        )
        stamp = datetimeToLogString(1795635037.0)
        self.assertEqual(combinedLine(stamp, request), line)

    def test_batchEvent(self) -> None:
        """The sample batch is the ``twistd`` log's text of one ``LoggerSink`` event."""
        lines = self.block("2026-11-25T19:30:38+0000 [scgi_twisted.access#info]")
        events = collectLogEvents(self)
        LoggerSink().write("".join(line[1:] + "\n" for line in lines[1:]))
        (event,) = events
        text = formatEventAsClassicLogText(
            event, formatTime=lambda when: "2026-11-25T19:30:38+0000"
        )
        assert text is not None
        self.assertEqual(text.splitlines(), lines)

    def test_refused(self) -> None:
        """The sample refused line is what a 413 before the request is built gives."""
        (line,) = self.block('"-" - - ')
        stamp = datetimeToLogString(1795635062.0)
        self.assertEqual(refusedLine(stamp, None, None, 413, 61), line)
