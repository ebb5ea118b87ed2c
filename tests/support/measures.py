"""Memory and latency figures for the soak report: `rss_kib` reads a process's resident
set size from /proc, `percentile` gives the nearest-rank percentile of a list of values and
`median` the median of any number of them, 0 for none."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from pathlib import Path


def rss_kib(pid: int) -> int | None:
    """Resident set size of a process, from /proc (Linux)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(share * len(ordered) + 0.5)))
    return ordered[rank - 1]


def median(values: Iterable[float]) -> float:
    found = list(values)
    return statistics.median(found) if found else 0.0
