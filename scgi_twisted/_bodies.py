"""The in-memory request bodies a site gives ``twisted.web`` as ``request.content``.

Small bodies (:class:`BodyBuffer`) are kept as the pieces read; bodies of
:data:`POOLED_BODY_MIN` bytes up to :data:`POOLED_BODY_SIZE` are written into a
buffer from a :class:`BufferPool` (:class:`PooledBody`), given back when the body is
closed.  Both behave as the ``BytesIO`` twisted.web would use.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

__all__ = [
    "POOLED_BODY_KEEP",
    "POOLED_BODY_MIN",
    "POOLED_BODY_SIZE",
    "BodyBuffer",
    "BufferPool",
    "PooledBody",
]


class _MemoryBody:
    """What the in-memory bodies share.

    Any file method a body does not answer itself is answered by the ``BytesIO``
    that :meth:`_materialize` makes.
    """

    _file: io.BytesIO | None
    _position: int
    _size: int

    def _seekTarget(self, offset: int, whence: int) -> int:
        """Return the position ``BytesIO.seek(offset, whence)`` would move to.

        :raises ValueError: where ``BytesIO`` raises it.
        """
        if whence == 0:
            if offset < 0:
                raise ValueError(f"negative seek value {offset}")
            return offset
        if whence == 1:
            return max(0, self._position + offset)
        if whence == 2:
            return max(0, self._size + offset)
        raise ValueError(f"invalid whence ({whence}, should be 0, 1 or 2)")

    def _materialize(self) -> io.BytesIO:
        """Move the body into a ``BytesIO`` at the same position, once."""
        raise NotImplementedError

    def _release(self) -> None:
        """Let go of the memory the body lives in (the file excepted)."""
        raise NotImplementedError

    def tell(self) -> int:
        """Return the position."""
        if self._file is None:
            return self._position
        return self._file.tell()

    def close(self) -> None:
        """Drop the body; from then on every operation raises ``ValueError``."""
        if self._file is None:
            self._file = io.BytesIO()  # a closed file answers from now on
        self._release()
        self._file.close()

    def readable(self) -> bool:
        """Return ``True``: the body can be read."""
        return True

    def seekable(self) -> bool:
        """Return ``True``: the body can be sought."""
        return True

    def __iter__(self) -> Iterator[bytes]:
        """Iterate over the lines, as a file does."""
        return iter(self._materialize())

    def __getattr__(self, name: str) -> Any:
        """Answer every other file method from the ``BytesIO``."""
        return getattr(self._materialize(), name)


class BodyBuffer(_MemoryBody):
    """An in-memory request body, read back from the pieces it was written in.

    A ``BytesIO`` written in many pieces re-allocates as it grows, and joining the
    pieces copies the whole body once more.  This object keeps the pieces as they
    arrived and answers ``read``, ``seek`` and ``tell`` from them, so a body read in
    pieces (as twisted.web applications and ``static`` consumers do) is never copied
    whole.  Any other file method (``readline``, ``getvalue``, iteration, a write
    that is not at the end) joins the pieces into one ``BytesIO`` first, and from
    then on that file answers everything.
    """

    def __init__(self) -> None:
        """Create an empty body."""
        self._chunks: list[bytes] = []
        self._size = 0
        self._file: io.BytesIO | None = None
        # The position, as an offset and as (piece index, offset in that piece).
        self._position = 0
        self._index = 0
        self._offset = 0

    def write(self, data: bytes) -> int:
        """Append ``data`` to the body (the position moves to the end)."""
        if self._file is None and self._position == self._size:
            data = bytes(data)
            if data:
                self._chunks.append(data)
                self._size += len(data)
                self._position = self._size
                self._index = len(self._chunks)
                self._offset = 0
            return len(data)
        return self._materialize().write(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        """Move the position, as ``BytesIO.seek`` does."""
        if self._file is not None:
            return self._file.seek(offset, whence)
        position = self._seekTarget(offset, whence)
        if position >= self._size:
            # As BytesIO: past the end is allowed; a write there fills with zeros.
            if position > self._size:
                return self._materialize().seek(position)
            self._index, self._offset = len(self._chunks), 0
        elif position == 0:
            self._index, self._offset = 0, 0
        else:
            index, start = 0, 0
            while start + len(self._chunks[index]) <= position:
                start += len(self._chunks[index])
                index += 1
            self._index, self._offset = index, position - start
        self._position = position
        return position

    def read(self, size: int | None = -1) -> bytes:
        """Read up to ``size`` bytes (all that is left if negative or ``None``)."""
        if self._file is not None:
            return self._file.read(size)
        left = self._size - self._position
        if size is None or size < 0 or size > left:
            size = left
        if size == 0:
            return b""
        chunks = self._chunks
        index, offset = self._index, self._offset
        chunk = chunks[index]
        end = offset + size
        if end <= len(chunk):
            # The usual case: within one piece (a whole piece is not copied).
            data = chunk if offset == 0 and end == len(chunk) else chunk[offset:end]
        else:
            parts = [chunk[offset:]]
            wanted = size - len(parts[0])
            while wanted:
                index += 1
                chunk = chunks[index]
                part = chunk[:wanted]
                parts.append(part)
                wanted -= len(part)
            end = len(part)
            data = b"".join(parts)
        if end == len(chunk):
            index, end = index + 1, 0
        self._index, self._offset = index, end
        self._position += size
        return data

    def _materialize(self) -> io.BytesIO:
        """Join the pieces into one file at the same position, once."""
        if self._file is None:
            self._file = io.BytesIO(b"".join(self._chunks))
            self._file.seek(self._position)
            self._chunks = []
        return self._file

    def _release(self) -> None:
        """Drop the pieces."""
        self._chunks = []
        self._size = self._position = self._index = self._offset = 0


class BufferPool:
    """Reusable buffers for in-memory request bodies.

    A body of a few hundred KiB kept as the pieces the transport read is allocated
    and freed in large blocks for every request; the C allocator hands such blocks
    back to the kernel and takes them again, page by page, every time
    (``docs/performance.md`` has the measurement).  A body copied into a buffer
    taken from here touches memory that is already mapped, and the transport's
    read buffers are freed at once and reused.

    :param size: the size of every buffer, in bytes.
    :param keep: the most idle buffers kept; the idle memory is at most
        ``size * keep`` bytes.
    """

    def __init__(self, size: int, keep: int) -> None:
        """Create an empty pool."""
        self.size = size
        self.keep = keep
        self._idle: list[bytearray] = []

    @property
    def idle(self) -> int:
        """The number of idle buffers."""
        return len(self._idle)

    def take(self) -> bytearray:
        """Return an idle buffer, or a new one."""
        if self._idle:
            return self._idle.pop()
        return bytearray(self.size)

    def give(self, buffer: bytearray) -> None:
        """Take a buffer back for reuse (or drop it, past ``keep``)."""
        if len(self._idle) < self.keep and len(buffer) == self.size:
            self._idle.append(buffer)


class PooledBody(_MemoryBody):
    """An in-memory request body, written into a buffer of a :class:`BufferPool`.

    It answers ``write``, ``read``, ``seek`` and ``tell`` as ``BytesIO`` does, from
    the buffer.  Anything else (``readline``, ``getvalue``, iteration, a write past
    the buffer or not at the end, a seek past the end) copies the body into a
    ``BytesIO`` first, gives the buffer back, and lets that file answer from then
    on.  ``close`` gives the buffer back: nothing read from the body refers to it.
    """

    def __init__(self, pool: BufferPool) -> None:
        """Take a buffer from ``pool``."""
        self._pool = pool
        self._buffer: bytearray | None = pool.take()
        self._view: memoryview | None = memoryview(self._buffer)
        self._size = 0
        self._position = 0
        self._file: io.BytesIO | None = None

    def write(self, data: bytes) -> int:
        """Append ``data`` to the body."""
        view = self._view
        size = self._size
        end = size + len(data)
        if view is not None and self._position == size and end <= len(view):
            view[size:end] = data
            self._size = self._position = end
            return len(data)
        return self._materialize().write(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        """Move the position, as ``BytesIO.seek`` does."""
        if self._file is None:
            position = self._seekTarget(offset, whence)
            if position <= self._size:
                self._position = position
                return position
            return self._materialize().seek(position)
        return self._file.seek(offset, whence)

    def read(self, size: int | None = -1) -> bytes:
        """Read up to ``size`` bytes (all that is left if negative or ``None``)."""
        view = self._view
        if view is None:
            return self._materialize().read(size)
        start = self._position
        left = self._size - start
        if size is None or size < 0 or size > left:
            size = left
        self._position = start + size
        return view[start : start + size].tobytes()

    def _materialize(self) -> io.BytesIO:
        """Copy the body into a file at the same position and give the buffer back."""
        if self._file is None:
            view = self._view
            assert view is not None
            self._file = io.BytesIO(view[: self._size].tobytes())
            self._file.seek(self._position)
            self._release()
        return self._file

    def _release(self) -> None:
        """Return the buffer to the pool, once."""
        view, buffer = self._view, self._buffer
        self._view = self._buffer = None
        if view is not None and buffer is not None:
            view.release()
            self._pool.give(buffer)


POOLED_BODY_SIZE = 1024 * 1024
"""The size of the pooled body buffers: bodies from :data:`POOLED_BODY_MIN` bytes up
to this size are written into one."""

POOLED_BODY_MIN = 64 * 1024
"""Smaller bodies are kept as the pieces read: a few small blocks, nothing to gain."""

POOLED_BODY_KEEP = 16
"""The most idle body buffers a site keeps (16 MiB)."""
