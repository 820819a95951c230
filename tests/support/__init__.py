"""What the tests share, in one package; no test module imports another.

- :mod:`tests.support.scgi`: the spec's golden vectors, the one request encoder (the
  library's own, plus raw framing for malformed input) and the one response parser
  (the library's own, with the strict checks of what a server writes).
- :mod:`tests.support.memory`: the in-memory driver (a site's real channel on a
  string transport); :class:`scgi_twisted.testing.SCGITestClient` is the driver with
  the library's client on the other side.
- :mod:`tests.support.apps`: a typed request surface and resources that record.
- :mod:`tests.support.sockets`: a site on real sockets that records its connections,
  and blocking clients.
- :mod:`tests.support.processes`: ``twistd`` subprocesses and supervised workers.
- :mod:`tests.support.frontends` and :mod:`tests.support.frontend_cases`: real nginx,
  Apache and lighttpd in front of a backend, and the cases every frontend runs.
- :mod:`tests.support.upstream`: nginx balancing over backends on unix sockets.
"""
