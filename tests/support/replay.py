"""What the event store says by replay alone, beside which the read models are tested."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from domain.errors import NotFoundError
from domain.registry import Registry


def authority_by_replay(
    registry: Registry, case_number: str, attorney_iin: str, right: str, moment: datetime
) -> list[UUID]:
    """The POAs by which the attorney may exercise `right` in the case at `moment`, each
    POA replayed from its events as it stood then."""
    try:
        case = registry.get_case(case_number)
    except NotFoundError:
        return []
    found = []
    for poa_id in case.poa_ids:
        try:
            poa = registry.get_poa_at(poa_id, moment)
        except NotFoundError:
            continue
        active = poa.is_active_at(moment) and attorney_iin in poa.active_attorneys()
        if right in poa.rights and active:
            found.append(poa_id)
    return found
