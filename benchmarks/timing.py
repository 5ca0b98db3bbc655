"""Timing one call repeatedly, shared by the benchmarks that time calls in one process."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def call_seconds(call: Callable[[], object], calls: int) -> list[float]:
    """The wall-clock seconds of each of ``calls`` calls of ``call``."""
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return times


def median_microseconds(call: Callable[[], object], calls: int) -> float:
    """The median of :func:`call_seconds`, in microseconds."""
    return 1e6 * float(np.median(call_seconds(call, calls)))
