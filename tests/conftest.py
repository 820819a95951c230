"""pytest's view of the suite: which tests need a real frontend.

Every test of a module that uses :mod:`tests.frontends` (directly, or through
:mod:`tests._frontend_cases`) gets the ``frontend`` marker, so that a run without nginx,
Apache and lighttpd can leave them out on purpose (``-m "not frontend"``, as the
version matrix in ``noxfile.py`` does) instead of failing on them. The marker is worked
out from the imports, so a new end-to-end module needs no extra line to be counted.
trial does not read this file; it runs every test.
"""

from __future__ import annotations

from types import ModuleType

import pytest

FRONTEND_MODULES = frozenset({"tests.frontends", "tests._frontend_cases"})


def usesFrontends(module: ModuleType) -> bool:
    """Tell whether ``module`` imported anything of the frontend machinery.

    :param module: a test module.
    :return: ``True`` if one of its globals is one of :data:`FRONTEND_MODULES` or was
        defined in one of them.
    """
    for value in vars(module).values():
        if isinstance(value, ModuleType):
            origin: object = value.__name__
        else:
            origin = getattr(value, "__module__", None)
        if origin in FRONTEND_MODULES:
            return True
    return False


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test whose module uses the frontend machinery as ``frontend``."""
    for item in items:
        module = getattr(item, "module", None)
        if module is not None and usesFrontends(module):
            item.add_marker(pytest.mark.frontend)
