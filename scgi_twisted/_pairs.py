"""The name/value pairs of a header block, as the parser hands them on.

Pure: no I/O, no Twisted.  The parser splits a block into its strings anyway; the
pairs as tuples are made from them only when an application asks for them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import overload

__all__ = ["Pairs"]


class Pairs(Sequence[tuple[bytes, bytes]]):
    """The name/value pairs of a header block, in arrival order, duplicates kept.

    A read-only sequence of ``(name, value)`` tuples that equals the tuple of them.
    The tuples are made the first time the pairs are looked at: a request whose
    application never asks for them (most do not) does not pay for them.
    """

    __slots__ = ("_pairs", "_strings")

    def __init__(self, strings: list[bytes]) -> None:
        """Wrap the block's strings: names and values alternate; never changed."""
        self._strings = strings
        self._pairs: tuple[tuple[bytes, bytes], ...] | None = None

    def _tuple(self) -> tuple[tuple[bytes, bytes], ...]:
        """Return the pairs as a tuple, made once."""
        pairs = self._pairs
        if pairs is None:
            strings = self._strings
            pairs = self._pairs = tuple(zip(strings[0::2], strings[1::2], strict=True))
        return pairs

    @overload
    def __getitem__(self, index: int) -> tuple[bytes, bytes]: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[tuple[bytes, bytes], ...]: ...

    def __getitem__(
        self, index: int | slice
    ) -> tuple[bytes, bytes] | tuple[tuple[bytes, bytes], ...]:
        """Return a pair, or a tuple of them for a slice."""
        return self._tuple()[index]

    def __len__(self) -> int:
        """Return how many pairs there are."""
        return len(self._strings) // 2

    def __iter__(self) -> Iterator[tuple[bytes, bytes]]:
        """Iterate over the pairs in arrival order."""
        return iter(self._tuple())

    def __eq__(self, other: object) -> bool:
        """Equal to the same pairs, as a tuple or as another such sequence."""
        if isinstance(other, Pairs):
            other = tuple(other)
        if isinstance(other, tuple):
            return self._tuple() == other
        return NotImplemented

    def __hash__(self) -> int:
        """Hash as the tuple of the pairs does."""
        return hash(self._tuple())

    def __repr__(self) -> str:
        """Show the pairs as their tuple."""
        return repr(self._tuple())
