"""Memory settings of a gateway process: the C allocator's for streaming large bodies (glibc
only), and Python's cycle collector's for many short calls.

Body pieces of 64–256 KiB cross the proxy by the thousand. With glibc's defaults a block that
size is served by a fresh ``mmap`` (so every page of it faults in, zeroed by the kernel, and is
unmapped again when freed), and the heap's top is handed back to the kernel as soon as 128 KiB
are free there, only to be asked for again by the next piece. Measured on the 1 MB download of
``bench/compare.py`` that paging cost about half the gateway's CPU per request. Serving blocks
up to :data:`MMAP_THRESHOLD` from the heap and keeping up to :data:`TRIM_THRESHOLD` of free heap
removes it; the peak memory (what a stream needs at once) is unchanged.

``athkit gateway serve`` calls :func:`tune_for_streaming` once at start. An operator who sets
glibc's own ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` keeps their values; on other
C libraries (musl, macOS) nothing is changed.

A proxied call allocates some hundreds of Python objects (coroutines, frames, header lists), so
with CPython's default of a young-generation collection every 700 allocations the collector ran
on nearly every call, each time also walking what start-up built (modules, the app, its config),
which is never garbage: 2–6% of the gateway's CPU per call. :func:`tune_collector` freezes
what start-up made (``gc.freeze``) and collects the young generation every
:data:`GC_YOUNG_THRESHOLD` allocations; cycles are still collected, a little later.
"""

from __future__ import annotations

import ctypes
import gc
import os
import platform

#: Blocks up to this size come from the heap, not from a new mapping each.
MMAP_THRESHOLD = 4 * 1024 * 1024
#: Free memory at the heap's top kept for reuse before any is returned to the kernel.
TRIM_THRESHOLD = 32 * 1024 * 1024
_M_TRIM_THRESHOLD = -1  # glibc malloc.h
_M_MMAP_THRESHOLD = -3
_OPERATOR_SET = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
#: Allocations between collections of the youngest generation (CPython's default: 700).
GC_YOUNG_THRESHOLD = 10_000


def tune_for_streaming() -> bool:
    """Apply the thresholds above; True when they were applied."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    if any(name in os.environ for name in _OPERATOR_SET):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok_mmap = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    ok_trim = mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    return bool(ok_mmap and ok_trim)


def tune_collector() -> None:
    """Freeze the objects made so far out of the collector's walks, and collect the young
    generation every :data:`GC_YOUNG_THRESHOLD` allocations (a higher setting is kept)."""
    gc.collect()
    gc.freeze()
    young, middle, old = gc.get_threshold()
    gc.set_threshold(max(young, GC_YOUNG_THRESHOLD), middle, old)
