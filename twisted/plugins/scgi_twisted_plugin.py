"""The ``twistd scgi`` plugin.

Only the ``ServiceMaker`` lives here, naming its module by string, so that listing the
plugins (``twistd --help``) imports nothing of scgi_twisted.  Never add an
``__init__.py`` beside this file or in ``twisted/``: see ``docs/options.md``.
"""

from twisted.application.service import ServiceMaker

TwistedSCGI = ServiceMaker(  # type: ignore[no-untyped-call]
    "SCGI server",
    "scgi_twisted.tap",
    (
        "Serve a twisted.web resource, a WSGI application or a directory to an SCGI "
        "frontend (nginx, Apache, lighttpd)."
    ),
    "scgi",
)
