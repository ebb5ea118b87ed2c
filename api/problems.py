"""RFC 9457 problem details: the one place that maps errors to HTTP responses."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from domain.errors import DomainError
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


class ProblemError(Exception):
    """An HTTP-level problem raised by the API itself (authentication, bad body, ...)."""

    def __init__(self, kind: str, status: int, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.kind, self.status, self.detail, self.extra = kind, status, detail, extra


def problem(kind: str, status: int, detail: str, request: Request, **extra: Any) -> JSONResponse:
    body = {
        "type": PROBLEM_BASE + kind,
        "title": _TITLES.get(kind, kind),
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        **extra,
    }
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if status == 503:
        headers = {"Retry-After": "1"}
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def domain_error(request: Request, error: DomainError) -> JSONResponse:
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
        return problem(kind, error.status_code, detail, request)

    @app.exception_handler(SealError)
    async def seal_error(request: Request, error: SealError) -> JSONResponse:
        log.error("integrity check failed: %s", error)
        return problem("integrity", 500, f"integrity check failed: {error}", request)

    @app.exception_handler(Exception)
    async def internal(request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return problem("internal", 500, "internal error; the request id is in the logs", request)
