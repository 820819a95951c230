"""The limits and policies of SCGI connections: one :class:`SCGIConfig` per site."""

from __future__ import annotations

from dataclasses import dataclass

from ._sansio import DEFAULT_MAX_HEADER_SIZE, DEFAULT_MAX_VARIABLES

__all__ = ["SCGIConfig"]


@dataclass(frozen=True)
class SCGIConfig:
    """The limits and policies of SCGI connections, shared by all of a site's channels.

    :ivar max_header_size: the largest header block accepted, in bytes (431 beyond).
    :ivar max_variables: the largest number of variables accepted (431 beyond).
    :ivar max_body_size: the largest request body accepted, in bytes (413 beyond), or
        ``None`` for no limit.
    :ivar merge_duplicates: merge repeated ``HTTP_*`` variables (nginx 1.22 sends them)
        instead of refusing them.
    :ivar mount: the path prefix the application lives under when the frontend sends
        no usable ``SCRIPT_NAME``/``PATH_INFO``, e.g. ``b"/app"``.
    :ivar half_close: treat a read-EOF after a complete request as a half-close (keep
        serving) instead of as the client going away.
    :ivar linger_timeout: after an early answer, how long to wait for the peer to
        finish sending before the connection is aborted, in seconds.
    :ivar abort_timeout: after a timeout closes the connection, how long before it is
        aborted if the peer ignores the close, in seconds.
    :ivar max_drain: the most request bytes read and dropped after an early answer
        before the connection is aborted.
    :ivar header_timeout: how long the whole header block may take to arrive, in
        seconds; ``None`` means the channel's ``timeOut``.
    :ivar stream_uploads: where the resource of a request with a body is looked up
        as soon as its headers arrive, so that an :class:`IStreamingUploadResource`
        can read the body as it comes: ``False`` nowhere (the default: the tree is
        traversed once the body is in, as twisted.web does), ``True`` for every
        path, or a tuple of path prefixes (``b"/upload"``, matched whole segments at
        a time against the request's URL path as sent).
    :ivar write_timeout: how long written output may wait for the peer to take it
        before the connection is aborted, in seconds; ``None`` for no limit.  It runs
        while the transport's write buffer is full and, once the connection is being
        closed, until everything is sent.
    """

    max_header_size: int = DEFAULT_MAX_HEADER_SIZE
    max_variables: int = DEFAULT_MAX_VARIABLES
    max_body_size: int | None = None
    merge_duplicates: bool = True
    mount: bytes | None = None
    half_close: bool = False
    linger_timeout: float = 5.0
    abort_timeout: float = 15.0
    max_drain: int = 128 * 1024 * 1024
    header_timeout: float | None = None
    stream_uploads: bool | tuple[bytes, ...] = False
    write_timeout: float | None = 300.0  # _site.DEFAULT_WRITE_TIMEOUT

    def streamsAt(self, uri: bytes) -> bool:
        """Return whether a request for ``uri`` with a body is looked up early.

        :param uri: the request's URI, with any query.
        """
        scope = self.stream_uploads
        if isinstance(scope, bool):
            return scope
        path = uri.partition(b"?")[0]
        return any(path == prefix or path.startswith(prefix + b"/") for prefix in scope)
