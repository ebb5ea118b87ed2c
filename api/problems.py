"""RFC 9457 problem details: the one place that maps errors to HTTP responses
(`api.problem_docs` documents them, with the roles of each route, in the OpenAPI)."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote, quote_from_bytes

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from domain.errors import DomainError, StoreUnavailableError
from domain.seal import SealError

PROBLEM_BASE = "urn:epoa:problem:"
MEDIA_TYPE = "application/problem+json"
URI_PATH_CHARACTERS = "/%:@!$&'()*+,;=-._~"
"""What RFC 3986 lets a path hold as is; `%` too, so that what the client encoded stays so."""
log = logging.getLogger("epoa.api")

TITLES = {
    "validation": "The request is not valid",
    "invalid-signature": "The signature does not verify",
    "untrusted-certificate": "The signer's certificate is not trusted",
    "signer-mismatch": "The document is not signed by the actor it names",
    "not-found": "Not found",
    "conflict": "The request conflicts with the current state",
    "case-concluded": "The case has concluded",
    "poa-not-active": "The power of attorney is not active",
    "duplicate-document": "The document_id, or the case event's source and id, was accepted "
    "before with other content",
    "unauthenticated": "A valid API key is required",
    "forbidden": "This API key's role may not call this endpoint",
    "unavailable": "The service cannot reach its store; nothing was changed, try again",
    "integrity": "The stored history failed its integrity check",
    "internal": "Internal error",
    # The balancer's (docker-compose.yml, `lb`) when no replica answers: the API never is.
    "no-answer": "No replica of the service answered; a command may have been recorded: "
    "send it again",
}


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
        "title": TITLES.get(kind, kind),
        "status": status,
        "detail": detail,
        "instance": instance_of(request),
        **extra,
    }
    headers = dict(headers or {})
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if status == 503:
        headers["Retry-After"] = "1"
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def instance_of(request: Request) -> str:
    """The request's path as the client sent it. `instance` is a URI reference (RFC 9457),
    which the decoded path may not be (`/v1/cases/a b`) or, resolved, names another
    resource (`/v1/cases/A%2F..%2Fx` decoded is `/v1/cases/A/../x`, that is `/v1/cases/x`)."""
    raw = request.scope.get("raw_path")
    if isinstance(raw, bytes):
        return quote_from_bytes(raw, safe=URI_PATH_CHARACTERS)
    return quote(request.url.path, safe=URI_PATH_CHARACTERS)


def install(app: FastAPI) -> None:
    """Answer every error as problem+json (`api.problem_docs` documents them)."""
    _install_handlers(app)


def _methods_at(request: Request) -> list[str]:
    """Every method some route of the app answers at the request's path (RFC 9110 `Allow`)."""
    methods: set[str] = set()
    for context in iter_route_contexts(request.app.routes):
        route = context.original_route
        found = getattr(route, "methods", None)
        if context.path and found and compile_path(context.path)[0].fullmatch(request.url.path):
            methods |= found
    if "GET" in methods:
        methods.add("HEAD")  # api.head answers it
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
