"""The interactive docs, `/docs` (Swagger UI) and `/redoc`, with every script, style sheet and
icon served by this service: a court's closed network reaches no CDN. The files are those
the `fastapi-offline` package ships; the pages are FastAPI's own, pointed at them."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse

ASSETS = "/docs/assets"
"""Where the docs' files are served: `swagger-ui-bundle.js`, `swagger-ui.css`,
`redoc.standalone.js` and `favicon.png`."""


def install(app: FastAPI) -> None:
    """Serve the docs on `app`, made with `docs_url=None, redoc_url=None`."""
    assert app.openapi_url is not None
    openapi_url = app.openapi_url
    directory = Path(str(files("fastapi_offline") / "static"))
    app.mount(ASSETS, StaticFiles(directory=directory), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = _root(request)
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon.png",
            swagger_ui_parameters={"validatorUrl": None},  # no badge fetched from swagger.io
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = _root(request)
        return get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS}/favicon.png",
            with_google_fonts=False,
        )


def _root(request: Request) -> str:
    """The path a proxy mounts the service under (the ASGI `root_path`), or ''."""
    return str(request.scope.get("root_path", ""))
