"""Pausing Python's cyclic garbage collector around large batch builds."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["collector_paused"]


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a batch builds many small, acyclic objects.

    Otherwise its full collections rescan the whole (growing) heap again and again: reading 100,000 children or
    building features for 1,000,000 cases takes twice as long. The previous state is restored on exit.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
