"""Running a command: count its outcome, and wait until the read models show it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TypeVar

from api.deps import Services
from api.schemas import SignedRequest
from domain.errors import DomainError, StoreUnavailableError

T = TypeVar("T")
log = logging.getLogger("epoa.api")


def run(
    services: Services, name: str, command: Callable[[], T], positions: Callable[[T], list[int]]
) -> T:
    try:
        outcome = command()
    except DomainError as error:
        services.metrics.commands.labels(name, error.kind).inc()
        raise
    recorded = positions(outcome)
    services.metrics.commands.labels(name, "recorded" if recorded else "idempotent").inc()
    if recorded and services.read_models is not None:
        try:
            services.read_models.wait_for(max(recorded), services.settings.read_wait_seconds)
        except StoreUnavailableError:
            # The command is recorded: say so, even if the read models cannot show it yet.
            log.warning("command %s recorded; read models unreachable for its wait", name)
    return outcome


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
