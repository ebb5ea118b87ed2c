"""Liveness, readiness and metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import ServicesDep
from api.problems import ProblemError
from api.schemas import HealthPublic, ReadyPublic
from epoa.db_admin import probe
from epoa.storage import is_postgres

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=None, responses={200: {"model": HealthPublic}})
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", response_model=None, responses={200: {"model": ReadyPublic}})
def readyz(services: ServicesDep) -> dict[str, Any]:
    """Ready while the event store answers. On PostgreSQL a new connection with short
    timeouts asks, so the probe answers within seconds during an outage, instead of
    waiting out the pool's retries, and turns ready again as soon as the store is back."""
    database_url = services.settings.database_url
    try:
        if is_postgres(database_url):
            position = probe(database_url)
        else:
            position = services.registry.recorder.max_notification_id() or 0
    except Exception as error:
        raise ProblemError(
            "unavailable", 503, f"the event store does not answer: {type(error).__name__}"
        ) from None
    return {"status": "ready", "position": position}


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text exposition",
            "content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}},
        }
    },
)
def metrics(services: ServicesDep) -> Response:
    read_models = services.read_models
    if read_models is not None:
        position = read_models.position()
        services.metrics.projection_position.set(position)
        latest = services.registry.recorder.max_notification_id() or 0
        services.metrics.projection_lag.set(max(0, latest - position))
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)
