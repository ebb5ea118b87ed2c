"""Work retried with capped exponential backoff until it succeeds, is stopped, or unwanted.

Skipping a message would lose it, so every failure is retried: those expected while the
store or the broker is away quietly, anything else with its traceback, as a defect. Both
are named in `failing` (the member's `/readyz` says `settling`) until the work passes: a
defect at once, an outage once the same work has kept failing for `STUCK_AFTER_S`, since
not every outage is one the other checks see (a broker that keeps its connections open
but answers nothing, a dead-letter topic the broker will not take).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from eventsourcing.persistence import InterfaceError, OperationalError
from kafka.errors import KafkaError

from consumers.metrics import ConsumerMetrics
from domain.errors import StoreUnavailableError

log = logging.getLogger("epoa.consumer")

BACKOFF_FIRST_S = 0.1
BACKOFF_CAP_S = 5.0
#: Work failing for a reason that may pass is named in `failing` after this long.
STUCK_AFTER_S = 10.0

#: Failures expected while the store or the broker is away.
TRANSIENT = (StoreUnavailableError, OperationalError, InterfaceError, KafkaError)

T = TypeVar("T")


class Backoff:
    """`until_done(work, wanted)`; between attempts `idle(seconds)` keeps the member alive."""

    def __init__(
        self,
        stop: threading.Event,
        idle: Callable[[float], None],
        metrics: ConsumerMetrics,
    ) -> None:
        self.stop = stop
        self.idle = idle
        self.metrics = metrics
        self._defect: str | None = None
        self._outage: tuple[float, str] | None = None

    @property
    def failing(self) -> str | None:
        """What is being retried, for `/readyz`: after a failure no outage explains, or
        after failures that may pass for `STUCK_AFTER_S` or longer."""
        if self._defect is not None:
            return self._defect
        if self._outage is None:
            return None
        since, what = self._outage
        stuck = time.monotonic() - since
        return f"{what}, for {stuck:.0f} s"[:500] if stuck >= STUCK_AFTER_S else None

    def until_done(
        self, work: Callable[[], T], wanted: Callable[[], bool], where: str = ""
    ) -> T | None:
        """`work()` once it succeeds; None if stopping or the work is no longer wanted."""
        delay = BACKOFF_FIRST_S
        attempts = 0
        began = time.monotonic()
        while True:
            attempts += 1
            try:
                done = work()
                self._clear()
                return done
            except Exception as error:
                self.metrics.transient_failures.inc()
                transient = isinstance(error, TRANSIENT)
                what = f"{where or 'work'} failed {attempts} time(s): {error!r}"
                if transient:
                    self._outage = (began, what)
                else:
                    self._defect = what[:500]
                log.log(
                    logging.WARNING if transient else logging.ERROR,
                    "attempt failed %s, retrying in %.1f s: %r",
                    where,
                    delay,
                    error,
                    exc_info=not transient,
                    extra={"event": "case_event_retry", "delay_s": delay},
                )
            self.idle(delay)
            if self.stop.is_set() or not wanted():
                self._clear()
                return None
            delay = min(delay * 2, BACKOFF_CAP_S)

    def _clear(self) -> None:
        self._defect = None
        self._outage = None
