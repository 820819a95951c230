"""Hand a file to the frontend instead of streaming it through Python.

nginx, Apache and lighttpd can each send a file themselves when the SCGI response
asks them to, with a header naming the file and an empty body:

* **nginx**: ``X-Accel-Redirect: <internal URI>``, served from an ``internal``
  location whose ``alias`` is the files' directory.  The URI is percent-encoded
  (nginx decodes it).
* **Apache**: ``X-Sendfile: <absolute path>``, with ``ProxySCGISendfile On``.  The
  path is sent raw (Apache takes it literally).
* **lighttpd**: ``X-Sendfile: <absolute path>``, with ``"x-sendfile" => "enable"``
  and ``"x-sendfile-docroot"``.  The path is percent-encoded (lighttpd decodes it).

:class:`FileOffload` holds that choice (made once, with the deployment) and turns a
path into the right header::

    from twisted.web.resource import Resource

    from scgi_twisted.offload import FileOffload

    downloads = FileOffload("nginx", root="/srv/app/files")


    class Report(Resource):
        isLeaf = True

        def render_GET(self, request):
            return downloads.send(request, "/srv/app/files/report.pdf")

The response is ``200`` with the file's ``Content-Type`` (guessed from its name unless
given), the header, and an empty body; the frontend drops the empty body and sends the
file instead.  nginx and lighttpd add its length, ``ETag``, ``Last-Modified`` and
range support; Apache sends it whole, chunked.

The path is checked before anything is sent: it must be absolute, lie strictly inside
``root`` (no ``..`` segment, compared lexically: symlinks are not resolved), and hold
no NUL, CR or LF.  For Apache it must not hold a ``%`` that is not a ``%XX`` escape:
Apache refuses those.  The helper does not look at the file system: a missing file is
the frontend's 404 (Apache's 500).  Apache sends **any** file a backend names, so
``root`` is the only limit there; nginx and lighttpd enforce their own directory too.

Without the frontend's setting, the header is passed on to the client (with the empty
body): the deployment guides in ``docs/`` show each frontend's configuration, tested
end to end.
"""

from __future__ import annotations

import mimetypes
import os
import posixpath
import re
from dataclasses import dataclass
from typing import Literal, Protocol, get_args
from urllib.parse import quote_from_bytes

__all__ = [
    "DEFAULT_INTERNAL_PREFIX",
    "FileOffload",
    "Frontend",
    "OffloadError",
    "OffloadRequest",
    "offload",
]

Frontend = Literal["nginx", "apache", "lighttpd"]
"""The frontends that can serve offloaded files."""

DEFAULT_INTERNAL_PREFIX = "/_offload/"
"""The URI prefix of nginx's ``internal`` location, unless told otherwise."""

_FRONTENDS: tuple[str, ...] = get_args(Frontend)
_FORBIDDEN = ("\x00", "\r", "\n")
_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")


class OffloadError(ValueError):
    """A path or a setting that cannot be offloaded safely; the message says why."""


class OffloadRequest(Protocol):
    """What the helper needs of a request: a ``twisted.web.server.Request`` has it."""

    def setResponseCode(self, code: int, message: bytes | None = None) -> None:
        """Set the response's status."""

    def setHeader(self, name: bytes, value: bytes) -> None:
        """Set a response header."""


def _text(value: str | os.PathLike[str], what: str) -> str:
    """Return ``value`` as text, refusing NUL, CR and LF.

    :raises OffloadError: if it holds one, or is not text.
    """
    text = os.fspath(value)
    if not isinstance(text, str):
        raise OffloadError(f"{what} must be text, not {type(text).__name__}")
    for character in _FORBIDDEN:
        if character in text:
            raise OffloadError(f"{what} {text!r} holds {character!r}")
    return text


def _absolute(value: str | os.PathLike[str], what: str) -> str:
    """Return an absolute path without ``..`` segments, normalised.

    :raises OffloadError: if it is relative, holds ``..``, or NUL, CR or LF.
    """
    path = _text(value, what)
    if not path.startswith("/"):
        raise OffloadError(f"{what} {path!r} is not absolute")
    if ".." in path.split("/"):
        raise OffloadError(f"{what} {path!r} has a '..' segment")
    return posixpath.normpath(path)


@dataclass(frozen=True)
class FileOffload:
    """How the frontend serves offloaded files, and from which directory.

    :param frontend: ``"nginx"``, ``"apache"`` or ``"lighttpd"``.
    :param root: the absolute directory the files live in; only paths below it are
        offloaded.  It is nginx's ``alias`` and lighttpd's ``x-sendfile-docroot``.
    :param internal_prefix: nginx only: the URI of the ``internal`` location that
        maps to ``root`` (it starts and ends with ``/``).
    :raises OffloadError: for an unknown frontend, a root that is not absolute, or a
        ``internal_prefix`` that does not start and end with ``/``.
    """

    frontend: Frontend
    root: str
    internal_prefix: str = DEFAULT_INTERNAL_PREFIX

    def __post_init__(self) -> None:
        """Check and normalise the settings."""
        if self.frontend not in _FRONTENDS:
            raise OffloadError(
                f"frontend {self.frontend!r} is not one of {', '.join(_FRONTENDS)}"
            )
        root = _absolute(self.root, "root")
        object.__setattr__(self, "root", root)
        prefix = _text(self.internal_prefix, "internal_prefix")
        if not (prefix.startswith("/") and prefix.endswith("/")) or any(
            character in prefix for character in "?#%\\"
        ):
            raise OffloadError(
                f"internal_prefix {prefix!r} must start and end with '/' and hold "
                "no '?', '#', '%' or '\\'"
            )
        if ".." in prefix.split("/"):
            raise OffloadError(f"internal_prefix {prefix!r} has a '..' segment")

    def relative(self, path: str | os.PathLike[str]) -> str:
        """Return ``path`` relative to :attr:`root`, after checking it.

        :param path: an absolute path below :attr:`root`.
        :returns: the path below the root, such as ``"reports/2026.pdf"``.
        :raises OffloadError: if the path is relative, has a ``..`` segment, names
            a directory (ends with ``/``, or is the root), lies outside the root, or
            holds NUL, CR or LF.
        """
        text = _text(path, "path")
        normal = _absolute(text, "path")
        if text.endswith("/") or normal == self.root:
            raise OffloadError(f"path {text!r} names a directory, not a file")
        base = self.root.rstrip("/") + "/"
        if not normal.startswith(base):
            raise OffloadError(f"path {text!r} is not inside {self.root!r}")
        return normal[len(base) :]

    def header(self, path: str | os.PathLike[str]) -> tuple[bytes, bytes]:
        """Return the response header that makes the frontend send ``path``.

        :param path: an absolute path below :attr:`root`.
        :returns: ``(b"X-Accel-Redirect", internal URI)`` for nginx, the path
            percent-encoded; ``(b"X-Sendfile", path)`` for Apache, as raw bytes; and
            ``(b"X-Sendfile", path)`` for lighttpd, percent-encoded (it decodes).
        :raises OffloadError: as :meth:`relative`; for Apache also for a path with
            a ``%`` not followed by two hex digits, which Apache 2.4 refuses
            (``AH10244: invalid URI path``, a 500 to the client).
        """
        relative = os.fsencode(self.relative(path))
        if self.frontend == "nginx":
            uri = self.internal_prefix.encode("ascii") + quote_from_bytes(
                relative, safe="/"
            ).encode("ascii")
            return b"X-Accel-Redirect", uri
        absolute = os.fsencode(self.root.rstrip("/")) + b"/" + relative
        if self.frontend == "apache":
            if _BAD_ESCAPE.search(absolute):
                raise OffloadError(
                    f"path {os.fspath(path)!r} holds a '%' that is not a %XX escape: "
                    "Apache refuses such X-Sendfile paths (AH10244); serve this file "
                    "another way"
                )
            return b"X-Sendfile", absolute
        return b"X-Sendfile", quote_from_bytes(absolute, safe="/").encode("ascii")

    def send(
        self,
        request: OffloadRequest,
        path: str | os.PathLike[str],
        *,
        content_type: str | bytes | None = None,
    ) -> bytes:
        """Make ``request``'s response hand ``path`` to the frontend.

        Return the result from ``render_*``: the response is ``200`` with the
        offload header, the ``Content-Type``, and an empty body.

        :param request: the request being rendered.
        :param path: an absolute path below :attr:`root`.
        :param content_type: the file's type; guessed from its name by default
            (``application/octet-stream`` when unknown).
        :returns: ``b""``, the body to return from ``render_*``.
        :raises OffloadError: as :meth:`relative`, or for a ``content_type``
            holding NUL, CR or LF; the response is left untouched.
        """
        name, value = self.header(path)
        if content_type is None:
            guessed = mimetypes.guess_type(os.fspath(path))[0]
            content_type = guessed or "application/octet-stream"
        if isinstance(content_type, str):
            try:
                content_type = content_type.encode("latin-1")
            except UnicodeEncodeError:
                raise OffloadError(
                    f"content_type {content_type!r} is not Latin-1"
                ) from None
        if any(character in content_type for character in (b"\x00", b"\r", b"\n")):
            raise OffloadError(f"content_type {content_type!r} holds NUL, CR or LF")
        request.setResponseCode(200)
        request.setHeader(b"Content-Type", content_type)
        request.setHeader(name, value)
        return b""


def offload(
    request: OffloadRequest,
    path: str | os.PathLike[str],
    *,
    frontend: Frontend,
    root: str,
    internal_prefix: str = DEFAULT_INTERNAL_PREFIX,
    content_type: str | bytes | None = None,
) -> bytes:
    """Make ``request``'s response hand ``path`` to the frontend, in one call.

    The same as ``FileOffload(frontend, root, internal_prefix).send(request, path,
    content_type=content_type)``; see :class:`FileOffload`.

    :returns: ``b""``, the body to return from ``render_*``.
    :raises OffloadError: for a path or setting that cannot be offloaded safely.
    """
    return FileOffload(frontend, root, internal_prefix).send(
        request, path, content_type=content_type
    )
