"""Peak resident memory of a process (Linux VmHWM), resettable so that peaks are per stage."""

from __future__ import annotations


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
