"""`/v1/powers-of-attorney`: issue, read, list, add an attorney, revoke, renounce."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response

from api import commands, problem_docs
from api.deps import DECIMAL, ServicesDep, role
from api.schemas import (
    ADD_EXAMPLE,
    ISSUE_EXAMPLE,
    RENOUNCE_EXAMPLE,
    REVOKE_EXAMPLE,
    Moment,
    PowerOfAttorneyPage,
    PowerOfAttorneyPublic,
    SealedEventPublic,
    Status,
)
from domain.court_case import parse_case_number
from domain.documents import parse_iin
from domain.evidence import SignedDocument
from domain.history import sealed_events
from domain.outcomes import Outcome

router = APIRouter(prefix="/v1/powers-of-attorney", tags=["powers of attorney"])
Portal = Annotated[str, Depends(role("portal"))]
Reader = Annotated[str, Depends(role("portal", "court", "auditor"))]
Court = Annotated[str, Depends(role("court", "auditor"))]
SIGNED_COMMAND = problem_docs.responses(400, 403, 409, 422, signed=True)


@router.post(
    "",
    status_code=201,
    response_model=PowerOfAttorneyPublic,
    openapi_extra=commands.signed_body_openapi(ISSUE_EXAMPLE),
    responses={
        200: {
            "model": PowerOfAttorneyPublic,
            "description": "the same document again: the POA it issued",
        },
        201: {
            "description": "issued: the POA, at its `Location`",
            "headers": {"Location": {"required": True, "schema": {"type": "string"}}},
        },
        **SIGNED_COMMAND,
    },
)
async def issue(_: Portal, request: Request, services: ServicesDep) -> Response:
    outcome = await commands.run_signed(request, services, "issue", services.registry.issue)
    response = commands.poa_response(outcome, services, 201 if outcome.created else 200)
    response.headers["Location"] = f"/v1/powers-of-attorney/{outcome.poa.id}"
    return response


@router.get("/{poa_id}")
def read(
    poa_id: UUID,
    services: ServicesDep,
    _: Reader,
    at: Annotated[Moment | None, Query(description="RFC 3339; the state at that moment")] = None,
) -> PowerOfAttorneyPublic:
    if at is None:
        moment = services.clock()
        return PowerOfAttorneyPublic.of(services.registry.get_poa(poa_id), moment)
    return PowerOfAttorneyPublic.of(services.registry.get_poa_at(poa_id, at), at)


SEARCH_PARAMETERS = (
    "case_number",
    "principal_iin",
    "attorney_iin",
    "status",
    "cursor",
    "limit",
)


@router.get("")
def search(
    request: Request,
    services: ServicesDep,
    _: Reader,
    case_number: str | None = None,
    principal_iin: str | None = None,
    attorney_iin: str | None = None,
    status: Annotated[
        Status | None,
        Query(
            description="The POA's status; `active` with `attorney_iin` also leaves out the "
            "POAs that attorney renounced.",
        ),
    ] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200), DECIMAL] = 50,
) -> PowerOfAttorneyPage:
    if case_number is not None:
        parse_case_number(case_number)
    for name, iin in (("principal_iin", principal_iin), ("attorney_iin", attorney_iin)):
        if iin is not None:
            parse_iin(iin, name)
    items, next_cursor = services.read_models.list_poas(
        case_number=case_number,
        principal_iin=principal_iin,
        attorney_iin=attorney_iin,
        status=status,
        now=services.clock(),
        cursor=cursor,
        limit=limit,
    )
    return PowerOfAttorneyPage(items=items, next_cursor=next_cursor)


@router.post(
    "/{poa_id}/attorneys",
    response_model=PowerOfAttorneyPublic,
    openapi_extra=commands.signed_body_openapi(ADD_EXAMPLE),
    responses=SIGNED_COMMAND,
)
async def add_attorney(
    _: Portal, poa_id: UUID, request: Request, services: ServicesDep
) -> Response:

    def command(evidence: SignedDocument) -> Outcome:
        return services.registry.add_attorney(poa_id, evidence)

    outcome = await commands.run_signed(request, services, "add_attorney", command)
    return commands.poa_response(outcome, services)


@router.post(
    "/{poa_id}/revocation",
    response_model=PowerOfAttorneyPublic,
    openapi_extra=commands.signed_body_openapi(REVOKE_EXAMPLE),
    responses=SIGNED_COMMAND,
)
async def revoke(_: Portal, poa_id: UUID, request: Request, services: ServicesDep) -> Response:

    def command(evidence: SignedDocument) -> Outcome:
        return services.registry.revoke(poa_id, evidence)

    outcome = await commands.run_signed(request, services, "revoke", command)
    return commands.poa_response(outcome, services)


@router.post(
    "/{poa_id}/renunciation",
    response_model=PowerOfAttorneyPublic,
    openapi_extra=commands.signed_body_openapi(RENOUNCE_EXAMPLE),
    responses=SIGNED_COMMAND,
)
async def renounce(_: Portal, poa_id: UUID, request: Request, services: ServicesDep) -> Response:

    def command(evidence: SignedDocument) -> Outcome:
        return services.registry.renounce(poa_id, evidence)

    outcome = await commands.run_signed(request, services, "renounce", command)
    return commands.poa_response(outcome, services)


@router.get(
    "/{poa_id}/events",
    response_model=None,
    responses={200: {"model": list[SealedEventPublic], "description": "oldest first"}},
)
def events(poa_id: UUID, services: ServicesDep, _: Court) -> list[dict[str, Any]]:
    registry = services.registry
    registry.get_poa(poa_id)
    positions = services.read_models.positions_of(poa_id)
    return [
        {"position": positions.get(event["version"]), **event}
        for event in sealed_events(registry.recorder, registry.sealed_mapper, poa_id)
    ]
