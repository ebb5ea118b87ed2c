"""HEAD answered as GET without its body (RFC 9110, section 9.3.2): FastAPI's routes take
only the methods they declare, and monitors and load balancers often probe with HEAD."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGet:
    """A plain ASGI middleware: a HEAD request goes on as a GET, and every part of the
    response body is dropped on the way out; the headers, `Content-Length` included, are
    those of the GET. The caller's scope keeps `HEAD` and learns the route matched, for the
    logs and metrics."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        inner = {**scope, "method": "GET"}
        try:
            await self.app(inner, receive, without_body)
        finally:
            if "route" in inner:  # the route template the metrics and the log name
                scope["route"] = inner["route"]
