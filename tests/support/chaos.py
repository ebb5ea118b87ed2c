"""Chaos on a running `Stack`: `chaos` kills one of its processes with SIGKILL at random
times, leaves it down a random while, starts it again and waits until it is back, and
returns a `Kill` per round with how long the process was down and how long it took to
serve again."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from tests.support.stack import NAMES, Stack


@dataclass(frozen=True)
class Kill:
    round: int
    name: str
    at: float
    down_for: float
    back_after: float
    """Seconds from the restart until it served again (API) or held its partitions."""


def chaos(
    stack: Stack,
    rounds: int,
    rng: random.Random,
    *,
    between: tuple[float, float] = (1.0, 3.0),
    down: tuple[float, float] = (0.0, 1.0),
    partitions: int = 3,
    report: Callable[[str], None] = print,
) -> list[Kill]:
    """`rounds` times: wait a random while, SIGKILL one of the three processes, leave it
    down a random while, start it again and wait until it is back. The victims come in
    shuffled threes, so that every process dies in any run of three rounds or more. A
    consumer is killed only once it holds its partitions again: on the test broker (tansu),
    a member that leaves before its first assignment can leave the group unable to assign
    anyone (`tests/support/broker.py`)."""
    kills = []
    victims: list[str] = []
    began = time.monotonic()
    for number in range(1, rounds + 1):
        if not victims:
            victims = rng.sample(NAMES, len(NAMES))
        time.sleep(rng.uniform(*between))
        name = victims.pop()
        at = time.monotonic() - began
        stack.kill(name)
        pause = rng.uniform(*down)
        time.sleep(pause)
        stack.start(name)
        back = stack.wait_up(name, partitions)
        kills.append(Kill(number, name, at, pause, back))
        report(f"round {number}: {name} killed at {at:.1f} s, down {pause:.1f} s, up {back:.1f} s")
    return kills
