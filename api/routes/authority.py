"""`/v1/authority`: may attorney X exercise right R in case C at time T?

The route answers every request. `Shortcut` answers the common one (now, from the authority
cache) the same way, byte for byte, without FastAPI's per-request parameter and dependency
resolution, which is most of the cost of a cached answer; whatever it is not sure of, it
leaves to the route, which so owns every problem answer.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Query
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from api.deps import Services, ServicesDep, caller_role, role
from api.schemas import AuthorityPublic, Moment
from domain.court_case import parse_case_number
from domain.documents import parse_iin
from domain.errors import DomainError, InvalidInputError
from domain.rights import BY_CODE

PATH = "/v1/authority"
ROLES = ("court", "portal", "auditor")
router = APIRouter(tags=["authority"])
Checker = Annotated[str, Depends(role(*ROLES))]


@router.get(PATH)
async def authority(
    services: ServicesDep,
    _: Checker,
    case_number: str,
    attorney_iin: str,
    right: str,
    at: Annotated[Moment | None, Query(description="RFC 3339; defaults to now")] = None,
) -> AuthorityPublic:
    check_query(case_number, attorney_iin, right)
    if at is None:
        return await now(services, case_number, attorney_iin, right)
    # A stated moment is answered from the events themselves, not from today's tables.
    found = await run_in_threadpool(
        services.registry.authority, case_number, attorney_iin, right, at
    )
    return _public(at, case_number, attorney_iin, right, [str(poa_id) for poa_id in found])


ROUTE = next(r for r in router.routes if isinstance(r, APIRoute) and r.path == PATH)


def check_query(case_number: str, attorney_iin: str, right: str) -> None:
    parse_case_number(case_number)
    parse_iin(attorney_iin, "attorney_iin")
    if right not in BY_CODE:
        raise InvalidInputError(f"right: unknown right {right!r}; see GET /v1/rights")


async def now(
    services: Services, case_number: str, attorney_iin: str, right: str
) -> AuthorityPublic:
    """The answer for the present moment, from the read models' authority cache."""
    moment = services.clock()
    found = await services.read_models.authority_now(case_number, attorney_iin, right, moment)
    return _public(moment, case_number, attorney_iin, right, found)


def _public(
    moment: datetime, case_number: str, attorney_iin: str, right: str, found: list[str]
) -> AuthorityPublic:
    return AuthorityPublic.model_validate(
        {
            "authorized": bool(found),
            "powers_of_attorney": sorted(found),
            "at": moment.astimezone(UTC),
            "case_number": case_number,
            "attorney_iin": attorney_iin,
            "right": right,
        }
    )


_PARAMETERS = frozenset(("case_number", "attorney_iin", "right"))


class Shortcut:
    """ASGI middleware answering `GET /v1/authority?case_number=..&attorney_iin=..&right=..`
    when each parameter comes once, nothing else is asked, the values are valid and the API
    key's role may ask: through the same functions as the route (`caller_role`,
    `check_query`, `now`), with the same response (a `Response` of the model's JSON, as
    FastAPI renders a model a route returns). Anything else goes on to the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"] == PATH
            and scope["method"] == "GET"
            and not scope.get("root_path")
        ):
            query = self._plain(scope)
            if query is not None:
                services, case_number, attorney_iin, right = query
                scope["route"] = ROUTE  # its template, for the metrics
                answer = await now(services, case_number, attorney_iin, right)
                body = answer.model_dump_json().encode()
                await Response(body, media_type="application/json")(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _plain(self, scope: Scope) -> tuple[Services, str, str, str] | None:
        """The services and the three values if this request is one to answer here."""
        services: Services | None = getattr(scope["app"].state, "services", None)
        if services is None:
            return None
        # As Starlette reads the query string and the first `Authorization` header.
        pairs = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
        values = dict(pairs)
        if len(pairs) != len(_PARAMETERS) or values.keys() != _PARAMETERS:
            return None
        header = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
        if caller_role(header.decode("latin-1"), services.api_keys) not in ROLES:
            return None
        case_number, attorney_iin, right = (
            values["case_number"],
            values["attorney_iin"],
            values["right"],
        )
        try:
            check_query(case_number, attorney_iin, right)
        except DomainError:
            return None
        return services, case_number, attorney_iin, right
