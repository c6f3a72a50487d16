"""The C allocator's settings for a gateway process that streams large bodies (glibc only).

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
"""

from __future__ import annotations

import ctypes
import os
import platform

#: Blocks up to this size come from the heap, not from a new mapping each.
MMAP_THRESHOLD = 4 * 1024 * 1024
#: Free memory at the heap's top kept for reuse before any is returned to the kernel.
TRIM_THRESHOLD = 32 * 1024 * 1024
_M_TRIM_THRESHOLD = -1  # glibc malloc.h
_M_MMAP_THRESHOLD = -3
_OPERATOR_SET = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


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
