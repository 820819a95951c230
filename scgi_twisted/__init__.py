"""scgi_twisted: a strict, fast SCGI application server for Twisted.

Serve any ``twisted.web`` resource tree to nginx, Apache or lighttpd over SCGI::

    from twisted.internet import endpoints, reactor
    from scgi_twisted import SCGISite

    endpoints.serverFromString(reactor, "tcp:4000:interface=127.0.0.1").listen(
        SCGISite(root)
    )
"""

from __future__ import annotations

from ._channel import SCGIChannel, SCGIConfig, deliverBody, getSCGIVariables
from ._environ import SCGIVariables
from ._errors import (
    BodyTooLargeError,
    ClientError,
    ConnectFailedError,
    HeaderTooLargeError,
    LocalProtocolError,
    MalformedResponseError,
    PrematureEOFError,
    RemoteProtocolError,
    ResponseTimeoutError,
    SCGIError,
)
from ._request import SCGIRequest
from ._sansio import (
    BodyReceived,
    HeadersReceived,
    RequestEnded,
    SCGIParser,
    encode_response_head,
)
from ._site import SCGISite
from ._streaming import IStreamingUploadResource, NotStreamingError

__all__ = [
    "BodyReceived",
    "BodyTooLargeError",
    "ClientError",
    "ConnectFailedError",
    "HeaderTooLargeError",
    "HeadersReceived",
    "IStreamingUploadResource",
    "LocalProtocolError",
    "MalformedResponseError",
    "NotStreamingError",
    "PrematureEOFError",
    "RemoteProtocolError",
    "RequestEnded",
    "ResponseTimeoutError",
    "SCGIChannel",
    "SCGIConfig",
    "SCGIError",
    "SCGIParser",
    "SCGIRequest",
    "SCGISite",
    "SCGIVariables",
    "deliverBody",
    "encode_response_head",
    "getSCGIVariables",
]
