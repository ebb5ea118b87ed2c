"""Kafka offsets as tracking positions in the event store: the one place of the `+ 1`.

The store, not Kafka, knows how far each partition was processed: the position is recorded
in the same transaction as the events a message produced. Tracking ids start at 1 in
`eventsourcing`, offsets at 0, so a message at offset `n` is tracked as `n + 1`, and the
largest tracking id of a partition is therefore the offset to resume from.
"""

from __future__ import annotations

from eventsourcing.persistence import Tracking, TrackingRecorder


def stream_name(topic: str, partition: int) -> str:
    """One tracking name per topic-partition: tracking ids must increase per name."""
    return f"kafka:{topic}:{partition}"


def tracking_for(topic: str, partition: int, offset: int) -> Tracking:
    return Tracking(stream_name(topic, partition), offset + 1)


def resume_offset(recorder: TrackingRecorder, topic: str, partition: int) -> int:
    """The offset of the first message of the partition that the store has not seen."""
    last = recorder.max_tracking_id(stream_name(topic, partition))
    return 0 if last is None else last
