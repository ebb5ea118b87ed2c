"""Person directory files as large as a test needs: distinct valid IINs, fast enough for
hundreds of thousands of rows, and the peak memory of the command that imports one."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

HEADER = "iin,full_name,birth_date\n"
SECOND_WEIGHTS = (3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2)


def iins(count: int, first: int = 1) -> Iterator[str]:
    """`count` distinct valid IINs: 11-digit numbers from `first` on with their check digit
    (domain.iin's rule, spelled out here so that a million of them take a second)."""
    number = first
    while count:
        eleven = f"{number:011d}"
        number += 1
        digits = [int(c) for c in eleven]
        check = sum(d * w for d, w in zip(digits, range(1, 12), strict=True)) % 11
        if check == 10:
            check = sum(d * w for d, w in zip(digits, SECOND_WEIGHTS, strict=True)) % 11
            if check == 10:
                continue
        count -= 1
        yield eleven + str(check)


def rows(count: int, first: int = 1) -> list[str]:
    """`count` good rows, without their line ends."""
    return [f"{iin},PERSON {n} TESTOVA,1980-01-01" for n, iin in enumerate(iins(count, first))]


def write(path: Path, lines: Sequence[str], end: str = "\n") -> Path:
    path.write_text(HEADER.replace("\n", end) + "".join(line + end for line in lines))
    return path


PEAK = (
    "import resource, subprocess, sys\n"
    "done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
    "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)


def peak_rss_kib(command: Sequence[str], env: Mapping[str, str], cwd: Path) -> int:
    """The peak resident set size of `command`, run to its end by a process of its own
    (`ru_maxrss` of a process's children is the largest of them all)."""
    done = subprocess.run(
        [sys.executable, "-c", PEAK, *command],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    status, peak = done.stdout.split()
    assert status == "0", done.stderr
    return int(peak)
