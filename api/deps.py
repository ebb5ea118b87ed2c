"""Dependencies as `Annotated` aliases (the services, the caller's role), and the signed body."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request, params
from fastapi.dependencies.utils import get_flat_params
from fastapi.routing import APIRoute
from pydantic import BeforeValidator, ValidationError
from pydantic_core import PydanticCustomError

from api.auth import ApiKeys
from api.metrics import Metrics
from api.problems import ProblemError
from api.schemas import SignedRequest
from domain.canonical import parse_json_object
from domain.eds import Verifier
from domain.errors import DomainError, InvalidInputError
from domain.evidence import SignedDocument
from domain.registry import Registry
from epoa.settings import Settings


@dataclass
class Services:
    settings: Settings
    registry: Registry
    verifier: Verifier
    api_keys: ApiKeys
    metrics: Metrics
    read_models: Any
    clock: Callable[[], datetime]


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]

_DECIMAL = re.compile(r"-?[0-9]+")


def _decimal(value: object) -> object:
    """A number in a query string is written in decimal digits: `1_0`, `1.0`, ` 3` (a `+`
    unencoded) or other digits than ASCII are refused, never read as some number."""
    if isinstance(value, str) and not _DECIMAL.fullmatch(value):
        raise PydanticCustomError(
            "int_parsing", "Input should be an integer written in decimal digits (0-9)"
        )
    return value


DECIMAL = BeforeValidator(_decimal)
"""For every integer of a query string: `Annotated[int, Query(...), DECIMAL]`, in this
order: before the `Query`, it leaves the bounds out of the OpenAPI schema's `minimum` and
`maximum` (pydantic writes them as `ge` and `le`, which JSON Schema does not know)."""


def role(*allowed: str) -> Callable[[Request, Services], Awaitable[str]]:
    """A dependency that admits only API keys of the `allowed` roles. It is `async` (and
    does no I/O): a plain `def` dependency would cost every request a thread hand-off."""

    async def check(request: Request, services: ServicesDep) -> str:
        found = caller_role(request.headers.get("authorization", ""), services.api_keys)
        if found is None:
            raise ProblemError(
                "unauthenticated", 401, "an `Authorization: Bearer <key>` is required"
            )
        if found not in allowed:
            raise ProblemError(
                "forbidden", 403, f"role {found!r} may not call this; allowed: {list(allowed)}"
            )
        plain_query(request, declared_query(request.scope["route"]))
        return found

    return check


def declared_query(route: APIRoute) -> tuple[str, ...]:
    """The query parameters `route` takes, by the names a caller writes (worked out once per
    route and kept on it: routes are not hashable)."""
    names: tuple[str, ...] | None = getattr(route, "_epoa_query", None)
    if names is None:
        flat = get_flat_params(route.dependant)
        names = tuple(field.alias for field in flat if _in_query(field))
        route._epoa_query = names  # type: ignore[attr-defined]
    return names


def _in_query(field: Any) -> bool:
    return isinstance(getattr(field, "field_info", None), params.Query)


def caller_role(authorization: str, api_keys: ApiKeys) -> str | None:
    """The role of the API key in an `Authorization: Bearer <key>` header value, if any."""
    scheme, _, key = authorization.partition(" ")
    return api_keys.role_of(key.strip()) if scheme.lower() == "bearer" else None


def verified(raw: bytes, services: Services) -> SignedDocument:
    """The signed request body, parsed refusing duplicate member names, its signature
    verified. CPU work, no I/O: it runs on the command's worker thread."""
    try:
        data = parse_json_object(raw)
        body = SignedRequest.model_validate(data)
    except DomainError as error:
        raise ProblemError("validation", 400, f"malformed JSON body: {error.detail}") from None
    except ValidationError as error:
        raise ProblemError("validation", 422, _pydantic_detail(error)) from None
    return services.verifier.verify(body.document, body.signature, at=services.clock())


def plain_query(request: Request, known: tuple[str, ...]) -> None:
    """Every query parameter known and given once: a misspelt one (`casenumber=`) would
    otherwise be ignored (a list would widen to every POA), and one given twice would be
    read as its last value (an authority check would answer another question)."""
    names = [name for name, _ in request.query_params.multi_items()]
    unknown = sorted(set(names) - set(known))
    if unknown:
        takes = f"known: {', '.join(known)}" if known else "this route takes none"
        raise InvalidInputError(f"unknown query parameter(s) {unknown}; {takes}")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InvalidInputError(f"query parameter(s) {repeated} given more than once")


def _pydantic_detail(error: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors())


def now() -> datetime:
    return datetime.now(UTC)
