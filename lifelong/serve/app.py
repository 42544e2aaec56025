"""The FastAPI application: routes, bearer-token check, the dashboard's files, and the API
docs served from installed files (Swagger UI 5 as the ``fastapi-offline`` package ships it:
no CDN, so ``/docs`` works offline)."""

from __future__ import annotations

import hmac
from importlib import resources

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

from lifelong.serve.routes import learn_router, query_router
from lifelong.serve.service import Service

# the dashboard's files: its own, and uPlot (vendored from npm, MIT: dashboard/vendor/)
DASHBOARD_FILES = {
    "dashboard.js": ("dashboard.js", "text/javascript"),
    "dashboard.css": ("dashboard.css", "text/css"),
    "uPlot.iife.min.js": ("vendor/uPlot.iife.min.js", "text/javascript"),
    "uPlot.min.css": ("vendor/uPlot.min.css", "text/css"),
}
DOCS_FILES = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon.png": "image/png",
}


def create_app(service: Service, *, token: str | None = None, max_bytes: int = 64 << 20) -> FastAPI:
    """The service's HTTP API; with ``token``, every API route needs ``Authorization:
    Bearer TOKEN`` (the dashboard page itself holds no data and is open)."""
    from lifelong import __version__

    app = FastAPI(
        title="lifelong serve",
        version=__version__,
        description="An agent that learns from a live stream and answers while it learns.",
        docs_url=None,  # served below from installed files, not a CDN
        redoc_url=None,
    )

    def authorised(request: Request) -> None:
        if token is None:
            return
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise HTTPException(
                401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"}
            )

    guard = [Depends(authorised)]
    app.include_router(learn_router(service, max_bytes), dependencies=guard)
    app.include_router(query_router(service, max_bytes), dependencies=guard)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def dashboard() -> str:
        return _asset("index.html")

    @app.get("/dashboard/{name}", include_in_schema=False)
    def dashboard_file(name: str) -> Response:
        if name not in DASHBOARD_FILES:
            raise HTTPException(404, f"no dashboard file {name}")
        where, kind = DASHBOARD_FILES[name]
        return Response(_asset(where), media_type=kind)

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url,
            title=f"{app.title}: API",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon.png",
        )

    @app.get("/docs/assets/{name}", include_in_schema=False)
    def docs_file(name: str) -> Response:
        if name not in DOCS_FILES:
            raise HTTPException(404, f"no docs file {name}")
        data = resources.files("fastapi_offline").joinpath("static", name).read_bytes()
        return Response(data, media_type=DOCS_FILES[name])

    return app


def _asset(name: str) -> str:
    """A file of the dashboard, from the package (the page loads nothing from elsewhere)."""
    return resources.files("lifelong.serve").joinpath("dashboard", *name.split("/")).read_text()
