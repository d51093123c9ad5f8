"""The C allocator's settings for processes that live long: the web app, its decoder workers and
the command line's runs over many files.

glibc's malloc raises its mmap threshold each time a large block is freed (up to 32 MB), so the
buffers of audio and activations, whose sizes change with each clip's length and rate, come to
live in the heaps, where freeing them leaves holes that later, differently sized requests only
partly reuse; and each thread that allocates may get a heap of its own. Resident memory then
climbs with use though nothing leaks (issue 23: 0.44 -> 2.03 GB over 772 files). Fixed
thresholds keep blocks of 128 KiB and more in mappings of their own, returned to the system when
freed, the heaps' free tops are returned beyond 128 KiB, and two heaps serve all threads: the line
stays flat (benchmarks/bench_memory.py, tests/test_memory.py).

    tune_allocator()     # once, at start-up: the entry points call it

It does nothing where the C library is not glibc. Variables a user sets (MALLOC_MMAP_THRESHOLD_,
MALLOC_TRIM_THRESHOLD_, MALLOC_ARENA_MAX) are glibc's own and win over these settings.
"""

from __future__ import annotations

import ctypes
import logging
import os

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
MMAP_THRESHOLD_BYTES = 128 * 1024  # blocks this large get a mapping of their own (glibc's start value, kept)
TRIM_THRESHOLD_BYTES = 128 * 1024  # free memory at a heap's top beyond this goes back to the system
ARENA_MAX = 2  # heaps for all threads (glibc's default: 8 per core)
ENVIRONMENT = {"MALLOC_MMAP_THRESHOLD_": M_MMAP_THRESHOLD, "MALLOC_TRIM_THRESHOLD_": M_TRIM_THRESHOLD,
               "MALLOC_ARENA_MAX": M_ARENA_MAX}


def tune_allocator() -> bool:
    """The settings above, for this process; True when applied (glibc). A setting the environment
    already makes is left to it."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    values = {M_MMAP_THRESHOLD: MMAP_THRESHOLD_BYTES, M_TRIM_THRESHOLD: TRIM_THRESHOLD_BYTES, M_ARENA_MAX: ARENA_MAX}
    for variable, parameter in ENVIRONMENT.items():
        if os.environ.get(variable):
            values.pop(parameter)
    ok = all(mallopt(parameter, value) == 1 for parameter, value in values.items())
    if not ok:
        log.warning("the C allocator refused a setting: memory may grow with use")
    return ok
