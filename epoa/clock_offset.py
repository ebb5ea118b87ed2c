"""How far this host's clock is from the database server's.

Every process records the acts it takes at its own clock: API replicas, the projector and
the consumer, on as many hosts. A POA's own moments never go back (README), but a case's
conclusion dated by a host whose clock is behind can come before a command another host
dated later, and the state at a past moment is read by those dates. So the hosts must agree
on the time (NTP), and a process on PostgreSQL says when its host does not: it measures
its clock against the server's at start (a warning past `MAX_OFFSET_SECONDS`) and at each
scrape of `/metrics` (`epoa_clock_offset_seconds`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from epoa.storage import is_postgres, quick_connection

log = logging.getLogger("epoa")

MAX_OFFSET_SECONDS = 1.0
"""Beyond this the start-up warns: NTP keeps hosts within milliseconds of each other."""

METRIC = "epoa_clock_offset_seconds"
HELP = (
    "This host's clock minus the PostgreSQL server's, measured at the scrape "
    "(NaN when the server does not answer)"
)

Clock = Callable[[], float]
"""Seconds since the epoch, as `time.time` gives them: the clock acts are dated by."""


@dataclass(frozen=True)
class Offset:
    seconds: float
    """This host's clock minus the server's: positive when this host is ahead."""
    uncertainty: float
    """Half the round trip of the query: the server read its clock somewhere in it."""

    def beyond(self, limit: float) -> bool:
        """Whether the clocks differ by more than `limit` whatever the round trip hid."""
        return abs(self.seconds) - self.uncertainty > limit

    def __str__(self) -> str:
        side = "ahead of" if self.seconds > 0 else "behind"
        spread = f"+/- {self.uncertainty:.3f} s"
        return f"{abs(self.seconds):.3f} s {side} the database server's ({spread})"


def measure(database_url: str, clock: Clock = time.time, timeout_s: int = 2) -> Offset:
    """Ask the server for its clock over a new connection with short timeouts (a scrape
    must answer quickly during an outage) and compare it with `clock` read either side."""
    with quick_connection(database_url, timeout_s) as conn:
        before = clock()
        row = conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()
        after = clock()
    if row is None:
        raise RuntimeError("the server gave no time")
    return Offset((before + after) / 2 - float(row[0]), (after - before) / 2)


def warn_if_off(database_url: str, clock: Clock = time.time) -> Offset | None:
    """At start: log a warning if this host's clock is more than `MAX_OFFSET_SECONDS` from
    the server's. Nothing on SQLite (one host), nor when the server does not answer (the
    store's own checks say so)."""
    if not is_postgres(database_url):
        return None
    try:
        offset = measure(database_url, clock)
    except Exception as error:  # the store's own checks report it
        log.debug("the database server's clock could not be read: %s", error)
        return None
    if offset.beyond(MAX_OFFSET_SECONDS):
        log.warning(
            "this host's clock is %s: acts are dated by the clock of the host that records "
            "them, so every host of the registry must keep the same time (NTP)",
            offset,
        )
    return offset


class ClockOffsetCollector(Collector):
    """`epoa_clock_offset_seconds`, measured each time the registry is collected."""

    def __init__(self, database_url: str, clock: Clock = time.time) -> None:
        self.database_url, self.clock = database_url, clock

    def describe(self) -> list[GaugeMetricFamily]:
        return []  # not measured at registration

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            value = measure(self.database_url, self.clock).seconds
        except Exception:
            value = math.nan
        yield GaugeMetricFamily(METRIC, HELP, value=value)
