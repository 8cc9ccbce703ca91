"""Memory sizes and what the machine has: the ``--max-memory`` parser and the limits commands check against.

Commands estimate what a run needs from its configuration before allocating anything (the sweeps from their
plan, ``lyapunov``, ``svals`` and ``theory`` from their sizes) and refuse with one line when it exceeds what a
device holds; ``--max-memory SIZE`` replaces the machine's figure. Sizes use binary units throughout: ``8G``,
``8GB`` and ``8GiB`` all mean 8 * 2**30 bytes.

Example:
    >>> parse_memory("8G"), parse_memory("512MiB"), parse_memory("1000")
    (8589934592, 536870912, 1000)
    >>> format_bytes(1536)
    '1.5 KiB'
"""

from __future__ import annotations

import math
import os
import re

from jaxspec._errors import InputError

_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40, "P": 2**50}
_SIZE_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([KMGTP]?)(?:I?B)?\s*$", re.IGNORECASE)


def parse_memory(text: str | int | float) -> int:
    """Bytes from ``"8G"``, ``"8GB"``, ``"512MiB"``, ``"1.5T"`` or a plain number of bytes (binary units).

    Raises:
        InputError: naming ``--max-memory`` and the accepted forms.
    """
    if isinstance(text, bool):
        raise InputError(f"--max-memory must be a positive size such as 8G, 512M or 1.5T, got {text!r}")
    match = _SIZE_RE.match(str(text))
    value = float(match.group(1)) * _UNITS[match.group(2).upper()] if match else math.nan
    if not math.isfinite(value) or value < 1:
        raise InputError(
            f"--max-memory must be a positive size such as 8G, 512M, 1.5T or a number of bytes, got {text!r}"
        )
    return int(value)


def format_bytes(n: float) -> str:
    """``1536`` -> ``"1.5 KiB"`` (binary units, as :func:`parse_memory` reads them)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} EiB"  # pragma: no cover


def host_memory() -> int:
    """Physical memory of this host in bytes (``SC_PHYS_PAGES * SC_PAGE_SIZE``), capped by a cgroup limit."""
    try:
        total = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        total = 2**62
    try:
        with open("/sys/fs/cgroup/memory.max") as handle:
            limit = handle.read().strip()
        if limit.isdigit():
            total = min(total, int(limit))
    except OSError:
        pass
    return total


def device_memory(device) -> tuple[int, str]:
    """``(bytes, where the number comes from)`` that ``device`` can still hold.

    Accelerators report their allocator's limit (less what is in use) through ``memory_stats()``; CPU arrays
    live in the host's memory.
    """
    try:
        stats = device.memory_stats()
    except Exception:  # noqa: BLE001 - backends without memory statistics
        stats = None
    if stats and stats.get("bytes_limit"):
        free = int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
        return free, f"{device.platform} device memory"
    return host_memory(), "host memory"
