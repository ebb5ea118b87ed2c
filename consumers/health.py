"""The consumer's HTTP port: `GET /metrics`, `GET /healthz` (alive), `GET /readyz` (working).

`/readyz` asks every check at each request; a check answers None when all is well, or why
not. 200 `{"status": "ready", "checks": {...}}` when none fails; otherwise 503 with an RFC 9457
problem (`urn:epoa:problem:unavailable`) whose `down` names what fails, as the API's does.
Served from daemon threads of the standard library's WSGI server.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import StartResponse, WSGIEnvironment

from prometheus_client import CollectorRegistry, make_wsgi_app

log = logging.getLogger("epoa.consumer")

#: Each check's name, and None when it passes or a short reason when it does not.
Checks = Callable[[], Mapping[str, str | None]]

PROBLEM = "application/problem+json"


def serve(
    registry: CollectorRegistry, port: int, addr: str = "0.0.0.0", checks: Checks | None = None
) -> tuple[WSGIServer, threading.Thread]:
    """Serve from a daemon thread; `server.shutdown()` then `server.server_close()` stop it."""
    app = health_app(registry, checks or dict)
    server = make_server(addr, port, app, server_class=_Server, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="epoa-consumer-http", daemon=True)
    thread.start()
    return server, thread


def health_app(registry: CollectorRegistry, checks: Checks) -> Any:
    metrics = make_wsgi_app(registry)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            body = _problem("method-not-allowed", 405, "only GET is served here", path)
            return _json(start_response, 405, body, PROBLEM, [("Allow", "GET, HEAD")])
        if path == "/metrics":
            return metrics(environ, start_response)  # type: ignore[no-any-return]
        if path == "/healthz":
            return _json(start_response, 200, {"status": "ok"})
        if path == "/readyz":
            return _readiness(start_response, checks, path)
        body = _problem("not-found", 404, f"{path} is not served here", path)
        return _json(start_response, 404, body, PROBLEM)

    return app


def _readiness(start_response: StartResponse, checks: Checks, path: str) -> Iterable[bytes]:
    try:
        found = dict(checks())
    except Exception as error:
        log.exception("a readiness check failed")
        found = {"checks": f"could not be run: {type(error).__name__}"}
    report = {name: reason or "ok" for name, reason in found.items()}
    down = sorted(name for name, reason in found.items() if reason)
    if not down:
        return _json(start_response, 200, {"status": "ready", "checks": report})
    detail = "; ".join(f"{name}: {found[name]}" for name in down)
    body = _problem("unavailable", 503, detail, path, down=down, checks=report)
    return _json(start_response, 503, body, PROBLEM, [("Retry-After", "1")])


def _problem(kind: str, status: int, detail: str, path: str, **extra: Any) -> dict[str, Any]:
    titles = {
        "unavailable": "The consumer cannot do its work now",
        "not-found": "Not found",
        "method-not-allowed": "Method not allowed",
    }
    return {
        "type": f"urn:epoa:problem:{kind}",
        "title": titles[kind],
        "status": status,
        "detail": detail,
        "instance": path,
        **extra,
    }


def _json(
    start_response: StartResponse,
    status: int,
    body: Mapping[str, Any],
    media_type: str = "application/json",
    headers: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    data = json.dumps(body).encode()
    reasons = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}
    start_response(
        f"{status} {reasons[status]}",
        [
            ("Content-Type", media_type),
            ("Content-Length", str(len(data))),
            ("Cache-Control", "no-store"),
            *(headers or []),
        ],
    )
    return [data]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Probes come every few seconds: no access log line for each."""


def store_check(database_url: str, registry: Any) -> Callable[[], str | None]:
    """Whether the event store answers now. On PostgreSQL a new connection with short
    timeouts asks (`epoa.db_admin.probe`, as the API's `/readyz`), so the answer comes
    within seconds during an outage instead of after the pool's retries."""
    from epoa.db_admin import probe
    from epoa.storage import is_postgres

    def check() -> str | None:
        try:
            if is_postgres(database_url):
                probe(database_url)
            else:
                registry.recorder.max_notification_id()
        except Exception as error:
            return f"the event store does not answer ({type(error).__name__})"
        return None

    return check
