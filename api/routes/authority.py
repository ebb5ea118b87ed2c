"""`/v1/authority`: may attorney X exercise right R in case C at time T?"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from api.deps import ServicesDep, role
from api.schemas import AuthorityPublic
from domain.court_case import parse_case_number
from domain.documents import parse_iin
from domain.errors import InvalidInputError
from domain.rights import BY_CODE

router = APIRouter(tags=["authority"])
Checker = Annotated[str, Depends(role("court", "portal", "auditor"))]


@router.get("/v1/authority")
def authority(
    services: ServicesDep,
    _: Checker,
    case_number: str,
    attorney_iin: str,
    right: str,
    at: Annotated[datetime | None, Query(description="RFC 3339; defaults to now")] = None,
) -> AuthorityPublic:
    parse_case_number(case_number)
    parse_iin(attorney_iin, "attorney_iin")
    if right not in BY_CODE:
        raise InvalidInputError(f"right: unknown right {right!r}; see GET /v1/rights")
    if at is not None and at.tzinfo is None:
        raise InvalidInputError("at: the time zone is required")
    if at is None:
        moment = services.clock()
        found = services.read_models.authority_at(case_number, attorney_iin, right, moment)
    else:
        # A stated moment is answered from the events themselves, not from today's tables.
        moment = at
        found = [
            str(poa_id)
            for poa_id in services.registry.authority(case_number, attorney_iin, right, at)
        ]
    return AuthorityPublic(
        authorized=bool(found),
        powers_of_attorney=sorted(found),
        at=moment,
        case_number=case_number,
        attorney_iin=attorney_iin,
        right=right,
    )
