"""Work retried with capped exponential backoff until it succeeds, is stopped, or unwanted.

Skipping a message would lose it, so every failure is retried: those expected while the
store or the broker is away quietly, anything else with its traceback, as a defect, and
named in `failing` (the member's `/readyz` says `settling`) until it passes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

from eventsourcing.persistence import InterfaceError, OperationalError
from kafka.errors import KafkaError

from consumers.metrics import ConsumerMetrics
from domain.errors import StoreUnavailableError

log = logging.getLogger("epoa.consumer")

BACKOFF_FIRST_S = 0.1
BACKOFF_CAP_S = 5.0

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
        self.failing: str | None = None
        """What is being retried after a failure that no outage explains, for `/readyz`."""

    def until_done(
        self, work: Callable[[], T], wanted: Callable[[], bool], where: str = ""
    ) -> T | None:
        """`work()` once it succeeds; None if stopping or the work is no longer wanted."""
        delay = BACKOFF_FIRST_S
        attempts = 0
        while True:
            attempts += 1
            try:
                done = work()
                self.failing = None
                return done
            except Exception as error:
                self.metrics.transient_failures.inc()
                transient = isinstance(error, TRANSIENT)
                if not transient:
                    self.failing = f"{where or 'work'} failed {attempts} time(s): {error!r}"[:500]
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
                self.failing = None
                return None
            delay = min(delay * 2, BACKOFF_CAP_S)
