"""scgi_twisted: a strict, fast SCGI application server for Twisted."""

from __future__ import annotations

from ._errors import (
    BodyTooLargeError,
    HeaderTooLargeError,
    LocalProtocolError,
    PrematureEOFError,
    RemoteProtocolError,
    SCGIError,
)

__all__ = [
    "BodyTooLargeError",
    "HeaderTooLargeError",
    "LocalProtocolError",
    "PrematureEOFError",
    "RemoteProtocolError",
    "SCGIError",
]
