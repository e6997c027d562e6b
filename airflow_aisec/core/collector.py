"""Pausing CPython's cyclic garbage collector around work that builds many long-lived small objects."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for the duration; its previous state is restored.

    A wide table makes hundreds of thousands of small containers that all stay alive (a result per
    column, statistics and findings per feature): the allocation bursts trigger collections that
    traverse them again and again, about half of the time of judging 100,000 columns. Reference
    counting still frees what the work makes; cycles wait until the end of the call. The pause is
    process-wide, so it is kept to one gate check.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
