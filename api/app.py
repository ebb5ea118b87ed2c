"""`create_app(settings)`: the HTTP service. Nothing is built at import time."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI, Request, Response

from api import problems
from api.auth import ApiKeys
from api.deps import Services
from api.metrics import Metrics
from api.routes import audit, authority, cases, health, powers_of_attorney, reference
from epoa.logging_setup import request_id as request_id_var
from epoa.settings import Settings

log = logging.getLogger("epoa.api")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def create_app(
    settings: Settings,
    *,
    run_projections: bool = True,
    run_checkpoints: bool | None = None,
    clock: Callable[[], datetime] | None = None,
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from epoa.audit_worker import start_checkpoint_log
        from epoa.wiring import build_read_models, build_registry, build_verifier

        the_clock = clock or (lambda: datetime.now(UTC))
        read_models = build_read_models(settings)
        registry = build_registry(settings, names=read_models.names, clock=the_clock)
        read_models.attach(registry, run=run_projections)
        signing = run_projections if run_checkpoints is None else run_checkpoints
        checkpoints = start_checkpoint_log(settings, registry) if signing else None
        if settings.api_keys is None:
            raise RuntimeError("EPOA_API_KEYS is not set")
        app.state.services = Services(
            settings=settings,
            registry=registry,
            verifier=build_verifier(settings),
            api_keys=ApiKeys.from_path(settings.api_keys),
            metrics=Metrics(),
            read_models=read_models,
            clock=the_clock,
        )
        try:
            yield
        finally:
            if checkpoints is not None:
                checkpoints.close()
            read_models.close()
            registry.close()

    app = FastAPI(
        title="epoa",
        version="1.0.0",
        summary="The registry of record for electronic powers of attorney in court cases",
        lifespan=lifespan,
    )
    problems.install(app)
    for module in (powers_of_attorney, authority, cases, reference, audit, health):
        app.include_router(module.router)
    app.middleware("http")(_observe)
    return app


async def _observe(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """Request id, latency and status per route template; one structured log line each.

    The caller's `X-Request-Id` is kept when it is a plain token (so a trace spans the
    portal and this service), otherwise one is made; every line logged while serving the
    request carries it (`epoa.logging_setup.request_id`)."""
    offered = request.headers.get("x-request-id", "")
    request_id = offered if _REQUEST_ID.fullmatch(offered) else uuid.uuid4().hex
    token = request_id_var.set(request_id)
    began = time.perf_counter()
    try:
        response = await call_next(request)
    except Exception:
        log.exception("request failed", extra={"method": request.method, "path": request.url.path})
        raise
    finally:
        request_id_var.reset(token)
    elapsed = time.perf_counter() - began
    route = request.scope.get("route")
    template = getattr(route, "path", "unmatched")
    services = getattr(request.app.state, "services", None)
    if services is not None:
        services.metrics.requests.labels(request.method, template, response.status_code).inc()
        services.metrics.latency.labels(request.method, template).observe(elapsed)
    response.headers["X-Request-Id"] = request_id
    log.info(
        "request",
        extra={
            "request_id": request_id,
            "method": request.method,
            "route": template,
            "status": response.status_code,
            "ms": round(elapsed * 1000, 2),
        },
    )
    return response
