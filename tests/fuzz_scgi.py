"""Coverage-guided fuzz targets (atheris) for the SCGI parser and the SCGI channel.

Not a test module: pytest collects ``test_*.py`` and trial ``test_*`` modules only,
and atheris is imported only when a target runs, so importing this module without
atheris installed is fine (``tests/test_channel_properties.py`` does, to run every seed
through both targets).

Run (from the repository root; atheris is a developer tool, not a CI dependency)::

    pip install atheris
    python tests/fuzz_scgi.py parser  -max_total_time=600
    python tests/fuzz_scgi.py channel -max_total_time=600

Replay inputs without atheris (a crash file, or a corpus to measure its coverage)::

    python tests/fuzz_scgi.py channel --replay crash-<sha1> [more files or dirs]

Any other argument is passed to libFuzzer (``-runs=N``, ``-jobs=N``, ``-dict=...``,
a corpus directory).  Without a corpus directory the target uses
``$TMPDIR/scgi_twisted-fuzz/<target>``, created and filled with the seed corpus that
:func:`seeds` generates (the specification's deepthought example and its negative
vectors, nginx-like requests, hostile prefixes).  A crash is written by libFuzzer as
``crash-<sha1>`` in the current directory; replay it with ``--replay`` and add
it as a regression test
(``tests/test_channel_properties.py``, ``FuzzRegressionTests``).

Only ``scgi_twisted`` is instrumented, so the ``cov:`` and ``ft:`` counts libFuzzer
prints measure edges in this package's code.

Inputs: the first bytes of each input are options and the rest is the byte stream
the frontend sends (see :func:`decodeParserInput` and :func:`decodeChannelInput`), so
libFuzzer's mutations change the policy, the read boundaries, the EOF and the clock as
well as the request itself.

* ``parser``: :class:`~scgi_twisted.SCGIParser` under random limits and reads.  It may
  only give events or raise ``RemoteProtocolError``; an error must be sticky; the
  events must be well ordered, never hand on more body than ``CONTENT_LENGTH``; and
  the outcome must not depend on how the stream was split.
* ``channel``: the whole channel in memory, as in the property tests
  (:func:`tests.support.channelharness.runChannel`), checked by
  :func:`tests.support.channelharness.checkOutcome`: one well-formed CGI response or
  a clean close, no exception, no second response, the connection ended after an
  error, at most one log line and nothing at error level.
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from hashlib import sha1
from pathlib import Path

__all__ = [
    "TARGETS",
    "ChannelInput",
    "ParserInput",
    "channelTarget",
    "decodeChannelInput",
    "decodeParserInput",
    "encodeChannelInput",
    "encodeParserInput",
    "main",
    "parserTarget",
    "replay",
    "seeds",
]

_ROOT = Path(__file__).resolve().parent.parent

ADVANCES = (0.0, 1.0, 2.5, 5.1, 15.1, 60.1)
"""The clock steps a channel input can ask for (the same as the property tests)."""

HEADER_LIMITS = (64 * 1024, 64, 30)
"""The ``max_header_size`` values a parser input can ask for."""


def _split(data: bytes, size: int) -> list[bytes]:
    """Cut ``data`` into reads of ``size`` bytes (0: one read)."""
    if not data:
        return []
    if size == 0:
        return [data]
    return [data[start : start + size] for start in range(0, len(data), size)]


# Input encodings.


@dataclass(frozen=True)
class ParserInput:
    """A decoded parser input.

    :ivar stream: the bytes the frontend sends.
    :ivar readSize: the size of each read (0: one read).
    :ivar eof: whether EOF follows.
    :ivar maxHeaderSize: the parser's header limit.
    :ivar maxVariables: the parser's variable limit.
    :ivar maxBodySize: the parser's body limit.
    :ivar merge: whether repeated ``HTTP_*`` names are merged.
    """

    stream: bytes
    readSize: int = 0
    eof: bool = False
    maxHeaderSize: int = HEADER_LIMITS[0]
    maxVariables: int = 500
    maxBodySize: int | None = None
    merge: bool = True


def decodeParserInput(data: bytes) -> ParserInput | None:
    """Decode ``flags, readSize`` then the stream; ``None`` if too short.

    ``flags``: bit 0 EOF, bits 1-2 the header limit (:data:`HEADER_LIMITS`), bit 3 at
    most 2 variables, bit 4 a 5-byte body limit, bit 5 strict duplicates.
    """
    if len(data) < 2:
        return None
    flags, readSize = data[0], data[1]
    return ParserInput(
        stream=data[2:],
        readSize=readSize % 32,
        eof=bool(flags & 1),
        maxHeaderSize=HEADER_LIMITS[(flags >> 1) % 4 % len(HEADER_LIMITS)],
        maxVariables=2 if flags & 8 else 500,
        maxBodySize=5 if flags & 16 else None,
        merge=not flags & 32,
    )


def encodeParserInput(stream: bytes, *, readSize: int = 0, eof: bool = False) -> bytes:
    """Encode a parser input with the default limits."""
    return bytes([int(eof), readSize]) + stream


@dataclass(frozen=True)
class ChannelInput:
    """A decoded channel input.

    :ivar stream: the bytes the frontend sends.
    :ivar readSize: the size of each read (0: one read).
    :ivar eof: whether the frontend's EOF follows.
    :ivar halfClose: the site's ``half_close``.
    :ivar strict: refuse repeated ``HTTP_*`` names.
    :ivar maxBodySize: the site's body limit.
    :ivar maxHeaderSize: the site's header limit.
    :ivar advances: the clock steps taken after the reads.
    """

    stream: bytes
    readSize: int = 0
    eof: bool = False
    halfClose: bool = False
    strict: bool = False
    maxBodySize: int | None = None
    maxHeaderSize: int = 64 * 1024
    advances: tuple[float, ...] = ()


def decodeChannelInput(data: bytes) -> ChannelInput | None:
    """Decode ``flags, readSize, clock`` then the stream; ``None`` if too short.

    ``flags``: bit 0 EOF, bit 1 half-close, bit 2 strict duplicates, bit 3 a 10-byte
    body limit, bit 4 a 200-byte header limit.  ``clock``: bits 0-1 give how many
    steps (up to three) of :data:`ADVANCES`, picked by the following bits.
    """
    if len(data) < 3:
        return None
    flags, readSize, clock = data[0], data[1], data[2]
    count = clock & 3
    advances = tuple(
        ADVANCES[(clock >> (2 + 2 * step)) % 8 % len(ADVANCES)] for step in range(count)
    )
    return ChannelInput(
        stream=data[3:],
        readSize=readSize % 64,
        eof=bool(flags & 1),
        halfClose=bool(flags & 2),
        strict=bool(flags & 4),
        maxBodySize=10 if flags & 8 else None,
        maxHeaderSize=200 if flags & 16 else 64 * 1024,
        advances=advances,
    )


def encodeChannelInput(
    stream: bytes, *, readSize: int = 0, eof: bool = False, halfClose: bool = False
) -> bytes:
    """Encode a channel input with the default site and no clock steps."""
    return bytes([int(eof) | int(halfClose) << 1, readSize, 0]) + stream


# Targets.


def parserTarget(data: bytes) -> None:
    """Check the parser's contract on one input; raise on any violation."""
    from scgi_twisted._errors import RemoteProtocolError
    from scgi_twisted._sansio import (
        BodyReceived,
        HeadersReceived,
        RequestEnded,
        SCGIParser,
    )

    decodedOrNone = decodeParserInput(data)
    if decodedOrNone is None:
        return
    decoded = decodedOrNone

    def run(reads: list[bytes]) -> tuple[list[object], str | None]:
        parser = SCGIParser(
            max_header_size=decoded.maxHeaderSize,
            max_variables=decoded.maxVariables,
            max_body_size=decoded.maxBodySize,
            merge_duplicates=decoded.merge,
        )
        events: list[object] = []
        body = bytearray()
        error: RemoteProtocolError | None = None
        try:
            for read in [*reads, *([b""] if decoded.eof else [])]:
                parser.receive_data(read)
                while (event := parser.next_event()) is not None:
                    if isinstance(event, BodyReceived):
                        assert event.data, "an empty body event"
                        body += event.data
                        continue
                    if body:
                        events.append(BodyReceived(bytes(body)))
                        body.clear()
                    events.append(event)
        except RemoteProtocolError as caught:
            error = caught
        if body:
            events.append(BodyReceived(bytes(body)))
        if error is not None:
            for _ in range(2):
                try:
                    parser.next_event()
                except RemoteProtocolError as again:
                    assert again is error, "the error is not sticky"
                else:
                    raise AssertionError("the parser recovered from an error")
        # Order: headers first, body pieces, then at most one end, nothing after.
        kinds = [type(event) for event in events]
        if kinds:
            assert kinds[0] is HeadersReceived, kinds
            assert kinds.count(HeadersReceived) == 1, kinds
            assert RequestEnded not in kinds[:-1], kinds
            headers = events[0]
            assert isinstance(headers, HeadersReceived)
            received = sum(
                len(event.data) for event in events if isinstance(event, BodyReceived)
            )
            assert received <= headers.content_length, "body past CONTENT_LENGTH"
            if kinds[-1] is RequestEnded:
                assert received == headers.content_length, "ended early"
            elif decoded.eof:
                assert error is not None, "EOF inside the request without an error"
        return events, None if error is None else type(error).__name__

    whole = run([decoded.stream] if decoded.stream else [])
    split = run(_split(decoded.stream, decoded.readSize))
    assert whole == split, f"the split changed the outcome: {whole!r} != {split!r}"


def channelTarget(data: bytes) -> None:
    """Check the channel's contract on one input; raise on any violation."""
    from tests.support.channelharness import checkOutcome, runChannel

    decoded = decodeChannelInput(data)
    if decoded is None:
        return
    outcome = runChannel(
        _split(decoded.stream, decoded.readSize),
        eof=decoded.eof,
        advances=decoded.advances,
        halfClose=decoded.halfClose,
        mergeDuplicates=not decoded.strict,
        maxBodySize=decoded.maxBodySize,
        maxHeaderSize=decoded.maxHeaderSize,
    )
    checkOutcome(outcome)


TARGETS: dict[str, tuple[Callable[[bytes], None], Callable[..., bytes]]] = {
    "parser": (parserTarget, encodeParserInput),
    "channel": (channelTarget, encodeChannelInput),
}


# The seed corpus.


def _streams() -> Iterator[bytes]:
    """Yield the request streams the corpus starts from."""
    from tests.support.scgi import (
        DEEPTHOUGHT,
        DEEPTHOUGHT_BLOCK,
        MINIMAL,
        buildRequest,
        netstring,
        nginxVariables,
    )

    block = DEEPTHOUGHT_BLOCK
    yield DEEPTHOUGHT
    yield DEEPTHOUGHT + b"trailing"
    yield MINIMAL
    yield netstring(block + b"QUERY_STRING\x00\x00") + DEEPTHOUGHT[74:]
    yield DEEPTHOUGHT[:73] + b"@" + DEEPTHOUGHT[74:]
    yield netstring(block.replace(b"SCGI\x001\x00", b"")) + DEEPTHOUGHT[74:]
    yield netstring(block.replace(b"SCGI\x001", b"SCGI\x002")) + DEEPTHOUGHT[74:]
    yield netstring(block + b"SCGI\x001\x00") + DEEPTHOUGHT[74:]
    yield netstring(block[:-1]) + DEEPTHOUGHT[74:]
    yield b"070:" + DEEPTHOUGHT[3:]
    yield DEEPTHOUGHT[:-1]
    yield b"99999999999999999999:"
    yield b"0:,"
    yield b"GET / HTTP/1.1\r\nHost: example.test\r\n\r\n"
    yield b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(32)
    for path in [b"/", b"/ok", b"/echo?a=1", b"/info", b"/pending", b"/later"]:
        yield buildRequest(nginxVariables(path))
    yield buildRequest(nginxVariables(b"/stream", SERVER_PROTOCOL=b"HTTP/1.1"))
    yield buildRequest(nginxVariables(b"/crlf-header"))
    for mode in [b"consume", b"slow", b"stop", b"early", b"refuse"]:
        yield buildRequest(
            nginxVariables(b"/upload?mode=" + mode, REQUEST_METHOD=b"POST"),
            b"a body in several pieces",
        )
    yield buildRequest(
        nginxVariables(
            b"/echo",
            REQUEST_METHOD=b"POST",
            CONTENT_TYPE=b"application/x-www-form-urlencoded",
        ),
        b"a=1&b=2",
    )
    yield buildRequest(
        nginxVariables(
            b"/echo", REQUEST_METHOD=b"POST", CONTENT_TYPE=b"multipart/form-data"
        ),
        b"not multipart",
    )
    yield buildRequest(
        [
            *nginxVariables(b"/echo"),
            (b"HTTP_COOKIE", b"a=1"),
            (b"HTTP_COOKIE", b"b=2"),
            (b"HTTP_X(Y", b"v"),
        ]
    )
    yield buildRequest(nginxVariables(b"/info", HTTPS=b"on", SERVER_NAME=b""))
    yield buildRequest(nginxVariables(b"/echo/caf\xe9", HTTP_X_A=b"a\r\nb"))


def seeds(target: str) -> list[bytes]:
    """Return the seed corpus of a target: each stream under a few option sets."""
    encode = TARGETS[target][1]
    corpus = []
    for stream in _streams():
        corpus.append(encode(stream))
        corpus.append(encode(stream, readSize=1, eof=True))
        corpus.append(encode(stream, readSize=7))
    if target == "channel":
        for stream in _streams():
            corpus.append(encodeChannelInput(stream, eof=True, halfClose=True))
    return corpus


def _writeSeeds(target: str, directory: Path) -> None:
    """Fill ``directory`` with the target's seeds (named by content)."""
    directory.mkdir(parents=True, exist_ok=True)
    for seed in seeds(target):
        path = directory / sha1(seed).hexdigest()
        if not path.exists():
            path.write_bytes(seed)


def replay(target: str, paths: list[Path]) -> None:
    """Run every input file (or every file in each directory) through a target.

    Without atheris: for regression replays, and to measure what a corpus covers
    (``python -m coverage run --branch --source=scgi_twisted tests/fuzz_scgi.py
    channel --replay DIR``).
    """
    run = TARGETS[target][0]
    files = [
        file
        for path in paths
        for file in (sorted(path.iterdir()) if path.is_dir() else [path])
    ]
    for file in files:
        run(file.read_bytes())
    print(f"{target}: {len(files)} inputs replayed, no failure")


def main(argv: list[str]) -> None:
    """Run one target under atheris: ``fuzz_scgi.py TARGET [libFuzzer args...]``."""
    if len(argv) < 2 or argv[1] not in TARGETS:
        sys.exit(f"usage: {argv[0]} {{{'|'.join(TARGETS)}}} [libFuzzer options]")
    target = argv[1]
    rest = argv[2:]
    if rest[:1] == ["--replay"]:
        replay(target, [Path(arg) for arg in rest[1:]])
        return
    atheris = importlib.import_module("atheris")
    # Instrument this package before anything imports it (the seeds do).
    with atheris.instrument_imports(include=["scgi_twisted"]):
        import scgi_twisted._channel
        import tests.support.channelharness  # noqa: F401

        del scgi_twisted
    if not any(not arg.startswith("-") for arg in rest):
        corpus = Path(tempfile.gettempdir()) / "scgi_twisted-fuzz" / target
        _writeSeeds(target, corpus)
        rest.append(str(corpus))
    else:
        for arg in rest:
            if not arg.startswith("-") and not os.path.isfile(arg):
                _writeSeeds(target, Path(arg))

    from twisted.logger import globalLogBeginner

    # Stop Twisted buffering every log event until logging begins.
    globalLogBeginner.beginLoggingTo([], redirectStandardIO=False)
    atheris.Setup([argv[0], *rest], TARGETS[target][0])
    atheris.Fuzz()


if __name__ == "__main__":
    sys.path.insert(0, str(_ROOT))
    main(sys.argv)
