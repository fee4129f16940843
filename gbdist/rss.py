"""Peak resident memory of a process (Linux VmHWM), resettable so that peaks are per stage."""

from __future__ import annotations

from functools import lru_cache


def reset_peak_rss() -> None:
    """Reset the kernel's peak-RSS counter of this process (no-op where /proc does not allow it)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def peak_rss_bytes() -> int:
    """Peak RSS of this process since start or the last reset, bytes (0 where /proc is absent)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


@lru_cache(maxsize=1)
def _malloc_trim():
    """glibc's ``malloc_trim``, or None where there is none (looked up once a process, not once a
    task: finding the C library took 2 ms here)."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


def release_free_memory() -> None:
    """Give the C heap's free memory back to the system (glibc ``malloc_trim``; no-op elsewhere).

    A SOAP code frees its working arrays after a call, but glibc may keep the pages, and a Dask
    worker whose resident memory stays above 80% of its limit pauses and runs nothing more."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
