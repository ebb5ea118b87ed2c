"""The court's Kafka feed: `Court` concludes the cases of a `CaseBook` that have enough
POAs by publishing a signed judgment and execution document per case to the case-events
topic, keyed by case number, now and then one of them twice (a redelivery), and records
each delivered message as `Published` with its partition and offset."""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import confluent_kafka

from domain.court_case import EXECUTION_DOCUMENTS_ISSUED, JUDGMENT_IN_FORCE
from tests.support.court_events import signed_case_event
from tests.support.people import People
from tests.support.traffic import CaseBook


@dataclass(frozen=True)
class Published:
    case_number: str
    kind: str
    source: str
    event_id: str
    partition: int
    offset: int


class Court:
    """Concludes ripe cases: a judgment and an execution document per case, published to
    Kafka, keyed by case number; now and then one of them twice (a redelivery)."""

    SOURCE: Final = "urn:kz:court:ecourt"

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        people: People,
        cases: CaseBook,
        *,
        every: float = 1.0,
        ripe_at: int = 3,
        duplicate_share: float = 0.2,
        seed: int = 0,
    ) -> None:
        self.bootstrap, self.topic, self.people, self.cases = bootstrap, topic, people, cases
        self.every, self.ripe_at, self.duplicate_share = every, ripe_at, duplicate_share
        self.rng = random.Random(seed)
        self.delivered: list[Published] = []
        self.errors: list[str] = []
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="court", daemon=True)
        self._producer = confluent_kafka.Producer(
            {"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "linger.ms": 5}
        )

    def start(self) -> Court:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._thread.join(30)
        left = self._producer.flush(30)
        if left:
            self.errors.append(f"{left} case events still queued at the end")

    def __enter__(self) -> Court:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self.stopping.wait(self.every):
            case = self.cases.take_ripe(self.ripe_at)
            if case is not None:
                self.conclude(case)
            self._producer.poll(0)

    def conclude(self, case: str) -> None:
        events = [
            (JUDGMENT_IN_FORCE, str(uuid.uuid4())),
            (EXECUTION_DOCUMENTS_ISSUED, str(uuid.uuid4())),
        ]
        if self.rng.random() < self.duplicate_share:
            events.append(self.rng.choice(events))
        for kind, event_id in events:
            value = signed_case_event(self.people, kind, case, self.SOURCE, event_id)
            self._producer.produce(
                self.topic,
                key=case.encode(),
                value=value,
                on_delivery=self._delivered(case, kind, event_id),
            )
        self._producer.poll(0)

    def _delivered(
        self, case: str, kind: str, event_id: str
    ) -> Callable[[confluent_kafka.KafkaError | None, Any], None]:
        def report(error: confluent_kafka.KafkaError | None, message: Any) -> None:
            with self._lock:
                if error is not None:
                    self.errors.append(f"{case} {kind}: {error}")
                else:
                    self.delivered.append(
                        Published(
                            case, kind, self.SOURCE, event_id, message.partition(), message.offset()
                        )
                    )

        return report

    def next_offsets(self) -> dict[int, int]:
        """Per partition, one past the last offset delivered."""
        with self._lock:
            found: dict[int, int] = {}
            for event in self.delivered:
                found[event.partition] = max(found.get(event.partition, 0), event.offset + 1)
            return found
