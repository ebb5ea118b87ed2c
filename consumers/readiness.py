"""Whether this group member can do its work: it reaches the broker, holds its assignment,
keeps polling, and no message keeps failing for a reason no outage explains (`settling`).
The loop notes what it sees; `/readyz` (another thread) asks `problems()` and adds the
store's own check (`consumers.health.store_check`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from kafka import KafkaConsumer

from consumers.assignment import Partitions, broker_reachable, group_stable

#: A member that has not polled for this long is stuck: not ready.
STALLED_AFTER_S = 30.0


class Readiness:
    def __init__(self, failing: Callable[[], str | None]) -> None:
        self.failing = failing
        self.broker_answered = False
        self.last_poll: float | None = None
        self.observed: dict[str, str | None] = {
            "broker": "not polled yet",
            "group": "waiting for the group's assignment",
        }

    def polled(self, answered: bool) -> None:
        self.broker_answered = answered
        if answered:
            self.last_poll = time.monotonic()

    def observe(self, consumer: KafkaConsumer, partitions: Partitions) -> bool:
        """Note the broker's and the group's state (on the loop's thread, where kafka-python
        may be asked); True if nothing keeps the member from working."""
        broker = None
        if not self.broker_answered:
            broker = "the last poll failed"
        elif not broker_reachable(consumer):
            broker = "the group coordinator is unknown or unreachable"
        group = None
        if not partitions.ever_assigned or not group_stable(consumer):
            group = "waiting for the group's assignment"
        elif partitions.unpositioned:
            group = "reading the store's positions of newly assigned partitions"
        self.observed = {"broker": broker, "group": group}
        return not any(self.problems().values())

    def problems(self) -> dict[str, str | None]:
        """What keeps this member from working, by check (None: nothing); any thread may ask."""
        found = dict(self.observed)
        last = self.last_poll
        if last is None:
            found["polling"] = "has not polled yet"
        elif (silent := time.monotonic() - last) > STALLED_AFTER_S:
            found["polling"] = f"has not polled for {silent:.0f} s"
        else:
            found["polling"] = None
        found["settling"] = self.failing()
        return found
