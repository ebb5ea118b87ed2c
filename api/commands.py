"""Running a command: count its outcome, and wait until the read models show it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from api.deps import Services, verified
from api.problems import ProblemError
from api.schemas import PowerOfAttorneyPublic, Receipt, SignedRequest
from domain.errors import DomainError, StoreUnavailableError
from domain.evidence import SignedDocument
from domain.outcomes import Outcome

log = logging.getLogger("epoa.api")

MAX_BODY_BYTES = 1 << 20
"""The largest request body read (1 MiB): a document with its CMS (at most 256 KiB, a third
more in base64) and hundreds of attorneys fits several times over."""


class Recorded(Protocol):
    positions: list[int]
    """Where the command's records landed in the log; empty when it recorded nothing."""
    receipt: dict[str, Any] | None
    """For a repeat, the receipt of the records its first acceptance made."""


T = TypeVar("T", bound=Recorded)


def run(services: Services, name: str, command: Callable[[], T]) -> T:
    try:
        outcome = command()
    except DomainError as error:
        services.metrics.commands.labels(name, error.kind).inc()
        raise
    recorded = outcome.positions
    services.metrics.commands.labels(name, "recorded" if recorded else "idempotent").inc()
    # A repeat waits for the records it answers with: the first acceptance may have
    # committed a moment ago, on another replica whose answer is still waiting for them.
    shown = recorded or [r["position"] for r in (outcome.receipt or {}).get("records", [])]
    if shown and services.read_models is not None:
        try:
            services.read_models.wait_for(max(shown), services.settings.read_wait_seconds)
        except StoreUnavailableError:
            # The command is recorded: say so, even if the read models cannot show it yet.
            log.warning("command %s recorded; read models unreachable for its wait", name)
    return outcome


async def run_signed(
    request: Request,
    services: Services,
    name: str,
    command: Callable[[SignedDocument], Outcome],
) -> Outcome:
    """A person's signed command: the body is read here, then verified, run and waited for
    in ONE hand-off to a worker thread (the verification is CPU work, the rest blocks)."""
    raw = await read_body(request)
    return await run_in_threadpool(_run_signed, services, name, command, raw)


async def read_body(request: Request) -> bytes:
    """The request body, refused (413) as soon as it is known to exceed `MAX_BODY_BYTES`:
    by its `Content-Length`, else while it arrives, so a huge body is never held whole; a
    400 if the client leaves before it has all arrived."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _too_large()
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise _too_large()
            chunks.append(chunk)
    except ClientDisconnect:
        # No whole request arrived: the client's doing, not an internal error (no one
        # reads the answer, but the log and the metrics record it as the client's).
        raise ProblemError(
            "validation", 400, "the connection closed before the whole body arrived"
        ) from None
    return b"".join(chunks)


def _too_large() -> ProblemError:
    return ProblemError("validation", 413, f"the body exceeds {MAX_BODY_BYTES} bytes")


def _run_signed(
    services: Services, name: str, command: Callable[[SignedDocument], Outcome], raw: bytes
) -> Outcome:
    evidence = verified(raw, services)
    return run(services, name, lambda: command(evidence))


def poa_response(outcome: Outcome, services: Services, status_code: int = 200) -> Response:
    """The POA after a command, with its receipt, as FastAPI renders the route's
    `response_model` (the model's JSON), without validating again what was just built."""
    public = PowerOfAttorneyPublic.of(outcome.poa, services.clock())
    public.receipt = None if outcome.receipt is None else Receipt.model_validate(outcome.receipt)
    return Response(
        public.model_dump_json().encode(), status_code=status_code, media_type="application/json"
    )


def signed_body_openapi(example: Mapping[str, object]) -> dict[str, object]:
    """The request body as OpenAPI shows it (the route reads the raw bytes itself, so that
    duplicate member names can be refused before any JSON object is built)."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": SignedRequest.model_json_schema(),
                    "examples": {"signed": {"value": example}},
                }
            },
        }
    }
