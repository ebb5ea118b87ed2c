"""`create_app(settings)`: the HTTP service. Nothing is built at import time."""

from __future__ import annotations

import gc
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from fastapi import FastAPI
from prometheus_client import Counter, Histogram
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import docs_ui, problem_docs, problems
from api.auth import ApiKeys
from api.deps import Services
from api.head import HeadAsGet
from api.metrics import Metrics
from api.routes import audit, authority, cases, health, powers_of_attorney, reference
from epoa.logging_setup import request_id as request_id_var
from epoa.settings import Settings

if TYPE_CHECKING:
    from domain.eds import Verifier

log = logging.getLogger("epoa.api")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
QUIET = frozenset({authority.PATH})
"""Routes whose successful requests are logged at DEBUG: the high-volume reads, which the
metrics count (a JSON log line costs about as much as a cached authority check)."""


def create_app(
    settings: Settings,
    *,
    run_projections: bool = True,
    run_checkpoints: bool | None = None,
    clock: Callable[[], datetime] | None = None,
    verifier: Verifier | None = None,
) -> FastAPI:
    """`verifier`: the one `epoa serve` built before its banner (the trust bundle and the
    CRLs read once, their warnings logged once); else one is built at start-up."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from epoa.audit_worker import start_checkpoint_log
        from epoa.storage import is_postgres
        from epoa.wiring import build_read_models, build_registry, build_verifier

        the_clock = clock or (lambda: datetime.now(UTC))
        # A bad trust bundle or CRL stops start-up first.
        the_verifier = verifier if verifier is not None else build_verifier(settings)
        read_models = build_read_models(settings)
        registry = build_registry(settings, names=read_models.names, clock=the_clock)
        read_models.attach(registry, run=run_projections)
        signing = run_projections if run_checkpoints is None else run_checkpoints
        checkpoints = start_checkpoint_log(settings, registry) if signing else None
        if settings.api_keys is None:
            raise RuntimeError("EPOA_API_KEYS is not set")
        metrics = Metrics()
        if is_postgres(settings.database_url):
            metrics.watch_clock(settings.database_url, lambda: the_clock().timestamp())
        app.state.services = Services(
            settings=settings,
            registry=registry,
            verifier=the_verifier,
            api_keys=ApiKeys.from_path(settings.api_keys),
            metrics=metrics,
            read_models=read_models,
            clock=the_clock,
        )
        # What start-up built lives as long as the app: keep it out of the collector's full
        # passes, which otherwise walk every object at each and pause requests for them.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()
            if checkpoints is not None:
                checkpoints.close()
            await read_models.aclose()
            read_models.close()
            registry.close()

    app = _App(
        title="epoa",
        version="1.0.0",
        summary="The registry of record for electronic powers of attorney in court cases",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        # A path with a slash too many is no resource (404), never a redirect: Starlette's
        # would name whatever `Host` the request gave, before the key is checked.
        redirect_slashes=False,
    )
    docs_ui.install(app)
    problems.install(app)
    problem_docs.install(app)
    for module in (powers_of_attorney, authority, cases, reference, audit, health):
        app.include_router(module.router)
    # Where Starlette's `Router(middleware=...)` puts a router's own middleware: inside
    # every app middleware and exception handler, as the route itself is.
    app.router.middleware_stack = authority.Shortcut(app.router.middleware_stack)
    return app


def _template(scope: Scope, owner: FastAPI) -> str:
    """The route template a request matched: a route's path, `{mount}/{path}` for a file of a
    mounted app (the docs' assets), or `unmatched`."""
    route = scope.get("route")
    if route is not None:
        return str(route.path)
    endpoint = scope.get("endpoint")
    if endpoint is not None:
        for mounted in owner.routes:
            if isinstance(mounted, Mount) and mounted.app is endpoint:
                return mounted.path + "/{path}"
    return "unmatched"


class _App(FastAPI):
    def build_middleware_stack(self) -> ASGIApp:
        # Outside Starlette's error middleware, so an unhandled error's 500 is counted,
        # logged and answered with the request id like every other response.
        return Observe(HeadAsGet(super().build_middleware_stack()), self)


NO_STORE = (b"cache-control", b"no-store")
"""Every answer but one that says otherwise: an authority answer or a POA's state kept by a
cache would be shown after it changed, and a person's name is personal data."""


class Observe:
    """Request id, latency and status per route template; one structured log line each,
    at INFO (at DEBUG for a successful request to a `QUIET` route).

    The caller's `X-Request-Id` is kept when it is a plain token (so a trace spans the
    portal and this service), otherwise one is made; every line logged while serving the
    request carries it (`epoa.logging_setup.request_id`). A plain ASGI middleware: the
    request and the response pass through untouched but for that header and, where the
    route set none, `Cache-Control: no-store`."""

    def __init__(self, app: ASGIApp, owner: FastAPI) -> None:
        self.app, self.owner = app, owner
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._metrics: Metrics | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        offered = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                offered = value.decode("latin-1")
                break
        request_id = offered if _REQUEST_ID.fullmatch(offered) else uuid.uuid4().hex
        header = (b"x-request-id", request_id.encode("ascii"))
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", ()), header]
                if not any(name.lower() == b"cache-control" for name, _ in headers):
                    headers.append(NO_STORE)
                message["headers"] = headers
            await send(message)

        token = request_id_var.set(request_id)
        began = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            self._observe(scope, request_id, status, began, failed=True)
            raise
        else:
            self._observe(scope, request_id, status, began, failed=False)
        finally:
            request_id_var.reset(token)

    def _observe(
        self, scope: Scope, request_id: str, status: int, began: float, failed: bool
    ) -> None:
        elapsed = time.perf_counter() - began
        method = scope["method"]
        template = _template(scope, self.owner)
        services = getattr(self.owner.state, "services", None)
        if services is not None:
            requests, latency = self._children_of(services.metrics, method, template, status)
            requests.inc()
            latency.observe(elapsed)
        if failed:
            log.exception("request failed", extra={"method": method, "path": scope["path"]})
        level = logging.DEBUG if template in QUIET and status < 400 else logging.INFO
        if log.isEnabledFor(level):
            log.log(
                level,
                "request",
                extra={
                    "request_id": request_id,
                    "method": method,
                    "route": template,
                    "status": status,
                    "ms": round(elapsed * 1000, 2),
                },
            )

    def _children_of(
        self, metrics: Metrics, method: str, template: str, status: int
    ) -> tuple[Counter, Histogram]:
        """The labelled counter and histogram, looked up once per (method, route, status)."""
        if metrics is not self._metrics:
            self._metrics, self._children = metrics, {}
        key = (method, template, status)
        found = self._children.get(key)
        if found is None:
            found = (
                metrics.requests.labels(method, template, status),
                metrics.latency.labels(method, template),
            )
            if len(self._children) < 1024:
                self._children[key] = found
        return found
