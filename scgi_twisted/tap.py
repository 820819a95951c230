"""The ``twistd scgi`` command: its options and the service they describe.

``twistd -n scgi`` (and ``twist scgi``) parse the command line with :class:`Options` and
build the server with :func:`makeService`, modelled on ``twisted/web/tap.py``.

Every value is checked while the command line is parsed (endpoint strings are parsed
against a :class:`~twisted.internet.testing.MemoryReactor`, names are imported, sizes
and networks are read), so a bad value is a usage error that names the option and the
problem, never a traceback at start-up.  Nothing here imports the reactor at import
time or while parsing: :func:`makeService` takes the reactor (the global one unless
given) and builds everything bound to it, such as the WSGI thread pool.

This module only chooses: one process (:func:`scgi_twisted._service.makeSiteService`)
or a supervisor and its workers (:mod:`scgi_twisted._workers`).  The options live in
:mod:`scgi_twisted._options`, the service in :mod:`scgi_twisted._service`.
"""

from __future__ import annotations

from typing import Any

from twisted.application import service

from ._options import (
    DEFAULT_ABORT_TIMEOUT,
    DEFAULT_GRACE_PERIOD,
    DEFAULT_LISTEN,
    DEFAULT_TIMEOUT,
    Options,
    parseSize,
)
from ._service import SCGIService, StartupError, makeSiteService
from ._workers import makeSupervisorService

__all__ = [
    "DEFAULT_ABORT_TIMEOUT",
    "DEFAULT_GRACE_PERIOD",
    "DEFAULT_LISTEN",
    "DEFAULT_TIMEOUT",
    "Options",
    "SCGIService",
    "StartupError",
    "makeService",
    "parseSize",
]


def makeService(config: Options, reactor: Any = None) -> service.MultiService:
    """Build the ``twistd scgi`` service: one SCGI site on every ``--listen``.

    With ``--workers N`` (N > 0) it is a supervisor that runs N worker processes,
    each serving that site on the supervisor's sockets.

    :param config: the parsed options.
    :param reactor: the reactor to listen with and to run WSGI applications on; the
        global reactor if ``None``.
    :returns: a service with one child per ``--listen`` (or the supervisor).
    """
    if reactor is None:
        from twisted.internet import reactor as default_reactor  # noqa: PLC0415

        reactor = default_reactor
    if config.get("workers"):
        return makeSupervisorService(config, reactor)
    return makeSiteService(config, reactor)
