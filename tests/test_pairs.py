"""The pairs of a header block (``HeadersReceived.raw``): a lazy tuple of pairs.

The parser hands on the block's strings; the pairs must behave as the tuple of
``(name, value)`` tuples they replace, for every read a caller can make.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from scgi_twisted._pairs import Pairs
from scgi_twisted._sansio import HeadersReceived, SCGIParser

from .support.scgi import rawRequest

STRINGS = [b"CONTENT_LENGTH", b"0", b"SCGI", b"1", b"HTTP_X", b"a", b"HTTP_X", b"b"]
TUPLE = (
    (b"CONTENT_LENGTH", b"0"),
    (b"SCGI", b"1"),
    (b"HTTP_X", b"a"),
    (b"HTTP_X", b"b"),
)


class PairsTests(SynchronousTestCase):
    """``Pairs`` reads as the tuple of the pairs."""

    def test_sequence(self) -> None:
        """Length, items, negative indexes, slices and iteration match the tuple."""
        pairs = Pairs(list(STRINGS))
        self.assertEqual(len(pairs), 4)
        self.assertEqual(pairs[0], (b"CONTENT_LENGTH", b"0"))
        self.assertEqual(pairs[-1], (b"HTTP_X", b"b"))
        self.assertEqual(pairs[1:3], TUPLE[1:3])
        self.assertEqual(list(pairs), list(TUPLE))
        self.assertEqual(pairs.index((b"SCGI", b"1")), 1)
        self.assertEqual(pairs.count((b"HTTP_X", b"a")), 1)
        self.assertIn((b"HTTP_X", b"b"), pairs)
        with self.assertRaises(IndexError):
            pairs[4]

    def test_equality(self) -> None:
        """Equal to the tuple (either side), to equal pairs; not to a list."""
        pairs = Pairs(list(STRINGS))
        self.assertTrue(pairs == TUPLE)
        self.assertTrue(TUPLE == pairs)  # noqa: SIM300 - the tuple on the left
        self.assertEqual(pairs, Pairs(list(STRINGS)))
        self.assertNotEqual(pairs, TUPLE[:3])
        self.assertNotEqual(pairs, list(TUPLE))
        self.assertEqual(hash(pairs), hash(TUPLE))
        self.assertEqual(repr(pairs), repr(TUPLE))

    def test_madeOnce(self) -> None:
        """The tuples are made on the first read and the same ones given after."""
        pairs = Pairs(list(STRINGS))
        self.assertIs(pairs[2], pairs[2])
        self.assertIs(next(iter(pairs)), pairs[0])

    def test_empty(self) -> None:
        """No strings: no pairs."""
        self.assertEqual(Pairs([]), ())
        self.assertEqual(len(Pairs([])), 0)

    @given(st.lists(st.binary().filter(lambda b: b"\0" not in b), max_size=8))
    def test_parserRaw(self, values: list[bytes]) -> None:
        """The parser's ``raw`` equals every pair of the block, in order.

        A repeated ``HTTP_*`` name (merged in ``environ``) is kept twice there.
        """
        extra = [(b"V%d" % (index,), value) for index, value in enumerate(values)]
        pairs = [
            (b"CONTENT_LENGTH", b"0"),
            (b"SCGI", b"1"),
            (b"HTTP_X", b"a"),
            *extra,
            (b"HTTP_X", b"b"),
        ]
        parser = SCGIParser(merge_duplicates=True)
        parser.receive_data(rawRequest(pairs))
        event = parser.next_event()
        assert isinstance(event, HeadersReceived)
        self.assertEqual(event.environ["HTTP_X"], b"a, b")
        self.assertEqual(event.raw, tuple(pairs))
        self.assertEqual(list(event.raw), pairs)
