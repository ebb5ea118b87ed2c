"""Joining the broker at start: `epoa consume` started before its broker (a host reboot, a
compose file whose order is not kept) waits for it, however long it takes, instead of dying.

kafka-python's consumer and producer bootstrap inside their constructors and raise after
`bootstrap_timeout_ms`, leaving their IO thread behind; so a plain TCP connection to one of
the bootstrap servers comes first, with capped exponential backoff, and only then are the
clients made (again with backoff if the broker is not ready behind its port yet).
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from typing import TypeVar

from kafka.cluster import collect_hosts
from kafka.errors import KafkaError

from consumers.backoff import BACKOFF_CAP_S, BACKOFF_FIRST_S

log = logging.getLogger("epoa.consumer")

CONNECT_TIMEOUT_S = 3.0

T = TypeVar("T")


class Connecting:
    """Where joining the broker stands, for `/readyz` while no member runs yet."""

    def __init__(self) -> None:
        self.problem = "connecting"


def refusal(bootstrap: str) -> str | None:
    """None if one of the bootstrap servers accepts a TCP connection, else why none did."""
    reasons = []
    for host, port, _family in collect_hosts(bootstrap, randomize=False):
        try:
            with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
                return None
        except OSError as error:
            reasons.append(f"{host}:{port}: {error.strerror or error}")
    return "; ".join(reasons) or "no bootstrap servers"


def when_reachable(
    make: Callable[[], T], bootstrap: str, stop: threading.Event, state: Connecting
) -> T | None:
    """`make()` once the broker answers; None if `stop` is set first."""
    delay = BACKOFF_FIRST_S
    while not stop.is_set():
        problem = refusal(bootstrap)
        if problem is None:
            try:
                return make()
            except KafkaError as error:
                problem = f"the broker did not answer: {error}"
        state.problem = f"connecting: {problem}"
        log.warning(
            "cannot reach the Kafka brokers at %s, retrying in %.1f s: %s",
            bootstrap,
            delay,
            problem,
            extra={"event": "broker_unreachable", "bootstrap": bootstrap},
        )
        stop.wait(delay)
        delay = min(delay * 2, BACKOFF_CAP_S)
    return None
