"""`/v1/cases/{case_number}` and `POST /v1/case-events`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from api import commands, problem_docs
from api.deps import ServicesDep, role
from api.schemas import CaseEventAccepted, CasePublic, PowerOfAttorneyPublic, Receipt
from domain.case_events import parse_case_event
from domain.court_case import parse_case_number
from domain.outcomes import CaseEvent, CaseEventOutcome

router = APIRouter(tags=["cases"])
Court = Annotated[str, Depends(role("court"))]
Reader = Annotated[str, Depends(role("court", "portal", "auditor"))]

CASE_EVENT_EXAMPLE = {
    "specversion": "1.0",
    "id": "b1f2c3d4-0000-4000-8000-000000000001",
    "source": "urn:kz:court:ecourt",
    "type": "kz.court.case.judgment-entered-into-force",
    "subject": "7594-26-00-2/1234",
    "time": "2026-11-25T10:00:00Z",
    "datacontenttype": "application/json",
    "data": {
        "case_number": "7594-26-00-2/1234",
        "judicial_act_id": "JA-2026-000123",
        "entered_into_force_on": "2026-11-25",
    },
    "signature": "MIIG...base64 DER CMS over the JCS bytes of the event without signature...",
}


@router.get(
    "/v1/cases/{case_number:path}",
    response_model=None,
    responses={200: {"model": CasePublic, "description": "the case and its POAs"}},
)
def read_case(case_number: str, services: ServicesDep, _: Reader) -> dict[str, Any]:
    parse_case_number(case_number)
    case = services.registry.get_case(case_number)
    now = services.clock()
    shown = CasePublic(
        case_number=case.case_number,
        status="concluded" if case.concluded else "open",
        judgment=case.judgment,
        execution_documents=case.execution_documents,
        concluded_at=case.concluded_at,
        powers_of_attorney=[
            PowerOfAttorneyPublic.of(services.registry.get_poa(poa_id), now)
            for poa_id in case.poa_ids
        ],
        version=case.version,
    )
    # Times as every other answer writes them (UTC with `Z`), those inside the facts too.
    return shown.model_dump(mode="json")


@router.post(
    "/v1/case-events",
    status_code=202,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/cloudevents+json": {"examples": {"e": {"value": CASE_EVENT_EXAMPLE}}},
                "application/json": {"examples": {"e": {"value": CASE_EVENT_EXAMPLE}}},
            },
        }
    },
    responses={
        200: {
            "model": CaseEventAccepted,
            "description": "this (source, id) was seen before; nothing changed",
        },
        **problem_docs.responses(400, 403, 409, 422, signed=True),
    },
)
async def case_event(
    request: Request, response: Response, services: ServicesDep, _: Court
) -> CaseEventAccepted:
    raw = await commands.read_body(request)

    def verify_and_record() -> tuple[CaseEvent, CaseEventOutcome]:
        # On a worker thread: the event loop goes on serving while the signature is
        # checked, the command commits and its read-your-writes wait runs.
        binary_mode = "ce-specversion" if "ce-specversion" in request.headers else None
        event = parse_case_event(raw, services.verifier, binary_mode_header=binary_mode)
        return event, commands.run(
            services, "case_event", lambda: services.registry.record_case_event(event)
        )

    event, outcome = await run_in_threadpool(verify_and_record)
    if not outcome.applied:
        response.status_code = 200
    return CaseEventAccepted(
        case_number=event.case_number,
        applied=outcome.applied,
        concluded=outcome.case.concluded,
        terminated=outcome.terminated,
        receipt=None if outcome.receipt is None else Receipt.model_validate(outcome.receipt),
    )
