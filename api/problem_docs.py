"""The problems each operation may answer with, and the roles it admits, in the OpenAPI.

`api.problems` answers with them; this module documents them, from the routes themselves
(their role dependency, parameters, body and store), so the document cannot drift from them.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterator, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import BaseRoute

from api.problems import MEDIA_TYPE, PROBLEM_BASE, TITLES

# What a problem status means on any route; a route's own `responses=` may say more.
_MEANINGS = {
    400: "The body is not a JSON object: `validation`",
    413: "The body exceeds 1 MiB: `validation`",
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
        "type": {"type": "string", "enum": [PROBLEM_BASE + kind for kind in TITLES]},
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


def install(app: FastAPI) -> None:
    """Serve the app's OpenAPI with its problems and roles documented (made once)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(generate(), app.routes)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def document(schema: dict[str, Any], routes: Sequence[BaseRoute]) -> dict[str, Any]:
    """Add to the OpenAPI of `routes` the problems each operation may answer with, as
    `application/problem+json` (in place of FastAPI's own 422), and the roles it admits."""
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
        roles, statuses, declared = _problems_of(route)
        for method in route.methods or ():
            operation = schema["paths"][context.path_format or route.path_format][method.lower()]
            _document(operation, roles, statuses, declared)
    for unused in ("HTTPValidationError", "ValidationError"):
        if f'"#/components/schemas/{unused}"' not in json.dumps(schema):
            schemas.pop(unused, None)
    return schema


Declared = dict[int, dict[str, Any]]


def _problems_of(route: APIRoute) -> tuple[tuple[str, ...] | None, set[int], Declared]:
    """The roles the route admits (None: public), the problem statuses it may answer with,
    and what its own `responses=` says of them."""
    from api.deps import get_services

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
    if _takes_body(route):
        statuses.add(413)
    if get_services in calls:
        statuses.add(503)
    declared = {int(code): found for code, found in route.responses.items() if f"{code}".isdigit()}
    statuses |= {code for code in declared if code >= 400}
    return roles, statuses, declared


def _document(
    operation: dict[str, Any],
    roles: tuple[str, ...] | None,
    statuses: set[int],
    declared: Declared,
) -> None:
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


def _takes_body(route: APIRoute) -> bool:
    return route.body_field is not None or "requestBody" in (route.openapi_extra or {})


def _takes_input(route: APIRoute, dependants: list[Dependant]) -> bool:
    if _takes_body(route):
        return True
    return any(d.path_params or d.query_params or d.header_params for d in dependants)
