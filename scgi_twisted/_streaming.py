"""Streaming request bodies: render a resource before its upload has arrived.

twisted.web renders a resource only once the whole body has been received and
spooled.  A resource that provides :class:`IStreamingUploadResource` is rendered as
soon as the SCGI header block is parsed instead, and reads the body as it arrives with
:func:`~scgi_twisted.deliverBody`, in the shape of
``twisted.web.iweb.IResponse.deliverBody``:

- the protocol's ``makeConnection`` gets an ``IPushProducer`` (``pauseProducing``,
  ``resumeProducing``, ``stopProducing``) that pauses the connection itself, so a
  slow consumer holds memory flat however large the upload;
- ``dataReceived`` gets each piece of the body, never past ``CONTENT_LENGTH``;
- ``connectionLost`` is called exactly once: with ``Failure(ResponseDone())`` once
  the body is complete, or with another failure
  (:class:`~scgi_twisted.PrematureEOFError`, ``ConnectionLost``, ``ConnectionDone``)
  when the frontend went away first, the body stalled, the response was finished
  before the body, or the protocol called ``stopProducing``: a truncated upload is
  never silent.

The resource may answer before the body is complete (a 413 or 403 after the first
chunk); the connection then reads and drops the rest of the body before it closes, so
the frontend reads the answer rather than a reset.

This module holds the interface and its error; the delivery is
:class:`~scgi_twisted._upload.StreamedUpload`, itself the producer.
"""

from __future__ import annotations

from twisted.web.resource import IResource

__all__ = ["IStreamingUploadResource", "NotStreamingError"]


class IStreamingUploadResource(IResource):
    """A resource rendered as soon as the request's headers have arrived.

    Declare it with ``@implementer(IStreamingUploadResource)`` on a ``Resource``
    subclass.  In ``render_*``, ``request.content`` is empty; call
    :func:`~scgi_twisted.deliverBody` to receive the body, and return
    ``NOT_DONE_YET`` (or answer at once to refuse the upload).  Requests without a
    body, and requests that did not arrive over SCGI, are rendered the ordinary way.
    """


class NotStreamingError(RuntimeError):
    """``deliverBody`` was called for a request whose body is not streamed."""
