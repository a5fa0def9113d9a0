"""The one place that decides how kernels are compiled.

`cache=True` writes compiled machine code next to the module (or to NUMBA_CACHE_DIR) so
a restart does not pay the JIT again. `fastmath` stays off: the divergences are checked
against scipy to 1e-9 and NaN marks missing values, both of which fastmath may break.
"""

from collections.abc import Callable
from typing import Any, TypeVar, cast

from numba import njit

F = TypeVar("F", bound=Callable[..., Any])

FASTMATH = False


def kernel(fn: F) -> F:
    """Compile `fn` in nopython mode with the project's options."""
    return cast(F, njit(cache=True, nogil=True, fastmath=FASTMATH)(fn))
