"""pytest's view of the suite: which tests need a real frontend.

A class that starts nginx, Apache or lighttpd says so with a class attribute
``startsFrontend = True`` (``tests.support.frontends.Frontend``, ``Stack``,
``StackSpec``, ``FrontendTestMixin``, ``tests.support.upstream.UpstreamNginx``;
subclasses inherit it).
Every test of a module that holds such a class among its globals (defined there or
imported) gets the ``frontend`` marker, so that a run without the frontends can leave
them out on purpose (``-m "not frontend"``, as the version matrix in ``noxfile.py``
does) instead of failing on them. Modules that only borrow a helper from
``tests.support.frontends`` (a certificate, a free port) are not marked. trial does
not read this file; it runs every test.

The few tests that time real timers over real sockets say so with
``measuresWallClock = True`` on their class and get the ``timing`` marker
(``-m "not timing"`` leaves them out on a loaded machine); every timeout is also
pinned to the tick on a ``Clock``.
"""

from __future__ import annotations

from types import ModuleType

import pytest


def usesFrontends(module: ModuleType) -> bool:
    """Tell whether ``module`` holds a class that starts a real frontend.

    :param module: a test module.
    :return: ``True`` if one of its globals is a class whose ``startsFrontend``
        attribute is true.
    """
    return any(
        isinstance(value, type) and getattr(value, "startsFrontend", False) is True
        for value in vars(module).values()
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests that need a frontend, and those that measure wall-clock time.

    Every test whose module uses a real frontend is marked ``frontend``; every test
    of a class with ``measuresWallClock = True`` (the real-socket limits, whose
    timeouts are checked against ``time.monotonic()``) is marked ``timing``.
    """
    for item in items:
        module = getattr(item, "module", None)
        if module is not None and usesFrontends(module):
            item.add_marker(pytest.mark.frontend)
        if getattr(getattr(item, "cls", None), "measuresWallClock", False) is True:
            item.add_marker(pytest.mark.timing)
