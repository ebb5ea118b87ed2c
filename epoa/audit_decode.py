"""Records to the domain events their topics name, for `epoa audit verify`, or why not.

The verifier reads bodies a forger may have written, or moved from another row: a body is
believed only if it is, field for field and type for type, the event its topic names, and
only topics of the registry's own events are resolved (a topic is a module path, and an
export is a file anyone can hand the auditor). What does not fit is `UndecodableError`,
reported as `undecodable`, so the replay after it never meets an event missing a field.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from functools import cache
from typing import Any, ClassVar, TypeVar
from uuid import UUID

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import Mapper, StoredEvent
from eventsourcing.utils import get_topic

from domain.accepted_document import AcceptedDocument
from domain.court_case import CourtCase
from domain.power_of_attorney import PowerOfAttorney
from domain.registry import Registry
from domain.seal import RawRecord, SealKey, open_state

Decode = Callable[[RawRecord], object]


class UndecodableError(ValueError):
    """A record's body is not the event its topic and stream say it is."""


@cache
def event_classes() -> dict[str, type[Aggregate.Event]]:
    """The stored events of the registry's aggregates, by topic."""
    found: dict[str, type[Aggregate.Event]] = {}
    for aggregate in (PowerOfAttorney, CourtCase, AcceptedDocument):
        for value in vars(aggregate).values():
            if (
                isinstance(value, type)
                and issubclass(value, Aggregate.Event)
                and value not in (aggregate.Event, aggregate.Created)
            ):
                found[get_topic(value)] = value
    return found


def transcoding_mapper(registry: Registry | None = None) -> Mapper[UUID]:
    """A mapper with the registry's transcoder; without a registry (an export), that of one
    kept in memory, so that both read events alike."""
    if registry is None:
        registry = Registry({"PERSISTENCE_MODULE": "eventsourcing.popo"}, SealKey.generate())
    return Mapper(registry.sealed_mapper.transcoder)


def decoder(mapper: Mapper[UUID]) -> Decode:
    def decode(record: RawRecord) -> object:
        cls = event_classes().get(record.topic)
        if cls is None:
            raise UndecodableError(f"the topic {record.topic!r} names no event of the registry")
        body = open_state(record.state).body
        stored = StoredEvent(UUID(record.originator_id), record.version, record.topic, body)
        event = mapper.to_domain_event(stored)
        problem = misfit(event, record.version)
        if problem is not None:
            raise UndecodableError(f"{cls.__qualname__}: {problem}")
        return event

    return decode


def misfit(event: object, version: int) -> str | None:
    """Why the decoded `event` is not one its class could have made, if it is not."""
    cls = type(event)
    if isinstance(event, Aggregate.Created) != (version == 1):
        return "a stream starts with the event that creates it, and with no other"
    fields, hints = _shape(cls)
    state = vars(event)
    if missing := sorted(fields - state.keys()):
        return f"the body has no {', '.join(missing)}"
    if extra := sorted(state.keys() - fields):
        return f"the body has {', '.join(extra)}, which this event has not"
    for name in sorted(fields):
        if not _is_a(state[name], hints.get(name, Any)):
            return f"the body's {name} is a {type(state[name]).__name__}, not a {hints[name]}"
    return None


_SHAPES: dict[type, tuple[frozenset[str], dict[str, Any]]] = {}


def _shape(cls: type) -> tuple[frozenset[str], dict[str, Any]]:
    """An event class's field names and type hints, read once: `get_type_hints` evaluates
    every annotation again at each call, which would cost more than the record's seal."""
    shape = _SHAPES.get(cls)
    if shape is None:
        fields = frozenset(field.name for field in dataclasses.fields(cls))
        shape = _SHAPES[cls] = (fields, typing.get_type_hints(cls))
    return shape


def _is_a(value: object, hint: Any) -> bool:
    """`isinstance` for the hints events use: classes, `X | None`, `list[...]`, `Any`."""
    if hint is Any or isinstance(hint, TypeVar) or typing.get_origin(hint) is ClassVar:
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_is_a(value, arg) for arg in typing.get_args(hint))
    if origin is not None:
        return isinstance(value, origin)
    return isinstance(value, hint)
