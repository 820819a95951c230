"""Where the frontend fixture used to be; it lives in :mod:`tests.support.frontends`.

Kept only so that branches written before the move still import; new code imports
from :mod:`tests.support.frontends`.  Remove once no branch in flight uses it.
"""

from __future__ import annotations

from .support.frontends import *  # noqa: F403
from .support.frontends import __all__  # noqa: F401
