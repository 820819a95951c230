"""Where the shared test helpers used to be; they live in :mod:`tests.support` now.

Kept only so that branches written before the move still import; new code imports
from :mod:`tests.support`.  Remove once no branch in flight uses it.
"""

from __future__ import annotations

from .support.apps import Recorder, Seen, WebRequest
from .support.memory import (
    HalfCloseTransport,
    collectLogEvents,
    connect,
    warningsAndErrors,
)
from .support.scgi import (
    CGIResponse,
    Pairs,
    buildRequest,
    headerBlock,
    netstring,
    nginxVariables,
    parseHTTPRefusal,
    parseResponse,
    rawRequest,
)
from .support.sockets import readToEnd

__all__ = [
    "CGIResponse",
    "HalfCloseTransport",
    "Pairs",
    "Recorder",
    "Seen",
    "WebRequest",
    "buildRequest",
    "collectLogEvents",
    "connect",
    "headerBlock",
    "netstring",
    "nginxVariables",
    "parseHTTPRefusal",
    "parseResponse",
    "rawRequest",
    "readToEnd",
    "warningsAndErrors",
]
