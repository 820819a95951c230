"""The traversal of one SCGI request: its mount point, and a lookup before its body.

The site owns traversal: :meth:`SCGISite.getResourceFor
<scgi_twisted.SCGISite.getResourceFor>` asks the request's :class:`Traversal` (the
channel's ``traversal``) for a resource found before the body arrived, and otherwise
has it move the mount point's segments from ``postpath`` to ``prepath`` before
traversing the tree as ``Site`` does.  The channel only decides when a request is
looked up early (:meth:`Traversal.lookUpEarly`): as soon as its headers arrive, where
uploads may stream.
"""

from __future__ import annotations

from typing import Any

from twisted.web.http import parse_qs

from ._environ import (
    mount_depth,
    path_segments,
    request_method,
    request_protocol,
    request_uri,
)
from ._streaming import IStreamingUploadResource

__all__ = ["Traversal"]


class Traversal:
    """Where one request's resource is found: the mount once, a kept early lookup.

    :param environ: the request's CGI environment.
    :param mount: the configured mount prefix, or ``None``.
    """

    _mountPending: bool = True
    _found: tuple[Any, list[bytes], list[bytes], list[bytes], Any] | None = None
    _error: Exception | None = None

    def __init__(self, environ: dict[str, bytes], mount: bytes | None) -> None:
        """Traverse for the request of ``environ``, under ``mount``."""
        self._environ = environ
        self._mount = mount

    def applyMount(self, request: Any) -> None:
        """Move the mount point's segments from ``postpath`` to ``prepath``, once."""
        if not self._mountPending:
            return
        self._mountPending = False
        environ = self._environ
        mount = self._mount
        if mount is None and "SCRIPT_NAME" not in environ:
            return  # nothing can move
        postpath = request.postpath
        assert postpath is not None
        depth = mount_depth(postpath, environ, mount)
        if depth:
            request.prepath = postpath[:depth]
            request.postpath = postpath[depth:]

    def lookUpEarly(self, request: Any, site: Any) -> Any:
        """Find the resource before the body arrives, and keep the result.

        The request's method, URI, path and arguments are set as
        ``Request.requestReceived`` sets them, then ``site.getResourceFor`` is
        asked; the ordinary path (once the body is complete) gets the kept result
        from :meth:`foundEarly` instead of traversing the tree a second time.  A
        streaming resource is rendered at once by the channel, and not kept.

        :returns: the resource, or ``None`` if there is none yet (the request is for
            ``*``, or the traversal raised: :meth:`foundEarly` raises it again).
        """
        environ = self._environ
        uri = request_uri(environ)
        path, _, query = uri.partition(b"?")
        if path == b"*":
            return None
        request.method = request_method(environ)
        request.uri = uri
        request.clientproto = request_protocol(environ)
        request.path = path
        # Twisted's own parser, as in Request.requestReceived: it takes any bytes.
        request.args = parse_qs(query, 1) if query else {}  # type: ignore[no-untyped-call]
        request.site = site
        request.prepath = []
        request.postpath = path_segments(path)
        try:
            resource = site.getResourceFor(request)
        except Exception as error:
            # The ordinary path raises it again, once the body is complete, and
            # answers with its error page: the tree is still traversed once.
            self._error = error
            return None
        if IStreamingUploadResource.providedBy(resource):
            return resource  # rendered now: there is no ordinary path to keep it for
        self._found = (
            resource,
            list(request.prepath or ()),
            list(request.postpath or ()),
            list(getattr(request, "sitepath", ())),
            request.site,
        )
        return resource

    def foundEarly(self, request: Any) -> Any:
        """Return the resource found before the body arrived, restoring the paths.

        :returns: the resource, or ``None`` if there is no kept lookup.
        :raises Exception: what the lookup before the body arrived raised.
        """
        error = self._error
        if error is not None:
            self._error = None
            raise error
        found = self._found
        if found is None:
            return None
        self._found = None
        resource, prepath, postpath, sitepath, site = found
        request.prepath = prepath
        request.postpath = postpath
        request.sitepath = sitepath
        request.site = site
        return resource
