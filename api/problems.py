"""RFC 9457 problem details: the one place that maps errors to HTTP responses, and that
documents them, with the roles of each route, in the OpenAPI."""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, compile_path

from domain.errors import DomainError, StoreUnavailableError
from domain.seal import SealError

PROBLEM_BASE = "urn:epoa:problem:"
MEDIA_TYPE = "application/problem+json"
log = logging.getLogger("epoa.api")

_TITLES = {
    "validation": "The request is not valid",
    "invalid-signature": "The signature does not verify",
    "untrusted-certificate": "The signer's certificate is not trusted",
    "signer-mismatch": "The document is not signed by the actor it names",
    "not-found": "Not found",
    "conflict": "The request conflicts with the current state",
    "case-concluded": "The case has concluded",
    "poa-not-active": "The power of attorney is not active",
    "duplicate-document": "The document_id was accepted before with other content",
    "unauthenticated": "A valid API key is required",
    "forbidden": "This API key's role may not call this endpoint",
    "unavailable": "The service cannot reach its store; nothing was changed, try again",
    "integrity": "The stored history failed its integrity check",
    "internal": "Internal error",
}


# What a problem status means on any route; a route's own `responses=` may say more.
_MEANINGS = {
    400: "The body is not a JSON object: `validation`",
    401: "No valid API key: `unauthenticated`",
    403: "The API key's role may not call this: `forbidden`",
    404: "Not found: `not-found`",
    409: "The request conflicts with the current state: `conflict`",
    422: "The request is not valid: `validation`",
    500: "Internal error: `internal`; or stored history failed its integrity check: `integrity`",
    503: "The store does not answer; nothing was changed, try again: `unavailable`",
}
# The same, on routes that take a signed document.
_SIGNED_MEANINGS = {
    **_MEANINGS,
    403: "The API key's role may not call this: `forbidden`; or the document is not signed "
    "by the actor it names: `signer-mismatch`",
    409: "The document conflicts with the current state: `conflict`, `case-concluded`, "
    "`poa-not-active`, `duplicate-document`",
    422: "The document is not valid: `validation`; its signature does not verify: "
    "`invalid-signature`; its signer's certificate is not trusted: `untrusted-certificate`",
}
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details: `type` is stable, `detail` is for people.",
    "type": "object",
    "required": ["type", "title", "status", "detail", "instance"],
    "properties": {
        "type": {"type": "string", "enum": [PROBLEM_BASE + kind for kind in _TITLES]},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {"type": "string", "description": "the request's path"},
        "errors": {
            "type": "array",
            "description": "with `validation` of the parameters: each one refused",
            "items": {
                "type": "object",
                "required": ["loc", "msg"],
                "properties": {
                    "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                    "msg": {"type": "string"},
                },
            },
        },
    },
}


def responses(*statuses: int, signed: bool = False) -> dict[int | str, dict[str, Any]]:
    """`responses=` of a route for the problems it may answer with besides those `install`
    documents on every route: 401 and 403 behind a role, 404 with path parameters, 422 with
    parameters or a body, 503 with the store, 500 always. `signed`: the route takes a
    signed document (signature problems are 422, a wrong signer 403)."""
    meanings = _SIGNED_MEANINGS if signed else _MEANINGS
    return {status: {"description": meanings[status]} for status in statuses}


class ProblemError(Exception):
    """An HTTP-level problem raised by the API itself (authentication, bad body, ...)."""

    def __init__(self, kind: str, status: int, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.kind, self.status, self.detail, self.extra = kind, status, detail, extra


def problem(
    kind: str,
    status: int,
    detail: str,
    request: Request,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = {
        "type": PROBLEM_BASE + kind,
        "title": _TITLES.get(kind, kind),
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        **extra,
    }
    headers = dict(headers or {})
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if status == 503:
        headers["Retry-After"] = "1"
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def install(app: FastAPI) -> None:
    _install_handlers(app)
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(generate(), app.routes)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def document(schema: dict[str, Any], routes: Sequence[BaseRoute]) -> dict[str, Any]:
    """Add to the OpenAPI of `routes` the problems each operation may answer with, as
    `application/problem+json` (in place of FastAPI's own 422), and the roles it admits."""
    from api.deps import get_services

    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    components.setdefault("securitySchemes", {})["apiKey"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "an API key; each has one role: portal, court, auditor or admin",
    }
    for context in iter_route_contexts(routes):
        route = context.original_route
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        dependants = list(_dependants(route.dependant))
        calls = [dependant.call for dependant in dependants]
        roles = next((found for call in calls if (found := _roles_of(call)) is not None), None)
        statuses = {500}
        if roles is not None:
            statuses |= {401, 403}
        if any(dependant.path_params for dependant in dependants):
            statuses.add(404)
        if _takes_input(route, dependants):
            statuses.add(422)
        if get_services in calls:
            statuses.add(503)
        declared = {
            int(code): found for code, found in route.responses.items() if f"{code}".isdigit()
        }
        statuses |= {code for code in declared if code >= 400}
        for method in route.methods or ():
            operation = schema["paths"][context.path_format or route.path_format][method.lower()]
            documented = operation["responses"]
            for status in statuses:
                meaning = _MEANINGS.get(status, HTTPStatus(status).phrase)
                description = declared.get(status, {}).get("description", meaning)
                documented[str(status)] = _problem_response(status, description)
            operation["responses"] = dict(sorted(documented.items()))
            if roles is not None:
                note = f"Roles: {', '.join(roles) or 'none'}."
                operation["description"] = f"{operation.get('description', '')}\n\n{note}".strip()
                operation["x-roles"] = list(roles)
                operation["security"] = [{"apiKey": []}]
    for unused in ("HTTPValidationError", "ValidationError"):
        if f'"#/components/schemas/{unused}"' not in json.dumps(schema):
            schemas.pop(unused, None)
    return schema


def _problem_response(status: int, description: str) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    if status == 401:
        response["headers"] = {
            "WWW-Authenticate": {"required": True, "schema": {"type": "string", "const": "Bearer"}}
        }
    if status == 503:
        response["headers"] = {"Retry-After": {"required": True, "schema": {"type": "string"}}}
    return response


def _dependants(dependant: Dependant) -> Iterator[Dependant]:
    """The route's own dependant and every one it depends on, however deep."""
    yield dependant
    for dependency in dependant.dependencies:
        yield from _dependants(dependency)


def _roles_of(call: Callable[..., Any] | None) -> tuple[str, ...] | None:
    """The roles a `deps.role(...)` dependency admits (every check it makes shares one code
    object, and keeps the roles in its closure); None for any other dependency."""
    from api.deps import role

    if call is None or getattr(call, "__code__", None) is not role().__code__:
        return None
    allowed = inspect.getclosurevars(call).nonlocals.get("allowed", ())
    return tuple(allowed)


def _takes_input(route: APIRoute, dependants: list[Dependant]) -> bool:
    if route.body_field is not None or "requestBody" in (route.openapi_extra or {}):
        return True
    return any(d.path_params or d.query_params or d.header_params for d in dependants)


def _methods_at(request: Request) -> list[str]:
    """Every method some route of the app answers at the request's path (RFC 9110 `Allow`)."""
    methods: set[str] = set()
    for context in iter_route_contexts(request.app.routes):
        route = context.original_route
        found = getattr(route, "methods", None)
        if context.path and found and compile_path(context.path)[0].fullmatch(request.url.path):
            methods |= found
    return sorted(methods)


def _install_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def domain_error(request: Request, error: DomainError) -> JSONResponse:
        if isinstance(error, StoreUnavailableError):
            # The driver's words name hosts and ports: for the log, not for the caller.
            log.warning("answering 503: %s", error.detail)
            detail = "the store cannot be reached; nothing was changed, try again"
            return problem(error.kind, error.status, detail, request)
        return problem(error.kind, error.status, error.detail, request)

    @app.exception_handler(ProblemError)
    async def problem_error(request: Request, error: ProblemError) -> JSONResponse:
        return problem(error.kind, error.status, error.detail, request, **error.extra)

    @app.exception_handler(RequestValidationError)
    async def validation(request: Request, error: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", ""))} for e in error.errors()
        ]
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
        return problem("validation", 422, detail, request, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        kind = {401: "unauthenticated", 403: "forbidden", 404: "not-found"}.get(
            error.status_code, "validation" if error.status_code < 500 else "internal"
        )
        detail = str(error.detail)
        if error.status_code == 404 and detail == "Not Found":
            detail = f"no resource at {request.url.path}"
        headers = dict(error.headers or {})
        if error.status_code == 405:
            # Starlette names only the methods of the first route on the path.
            headers["Allow"] = ", ".join(_methods_at(request))
        return problem(kind, error.status_code, detail, request, headers=headers)

    @app.exception_handler(SealError)
    async def seal_error(request: Request, error: SealError) -> JSONResponse:
        log.error("integrity check failed: %s", error)
        return problem("integrity", 500, f"integrity check failed: {error}", request)

    @app.exception_handler(Exception)
    async def internal(request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return problem("internal", 500, "internal error; the request id is in the logs", request)
