"""The front door: ``GET /`` sends a browser to the pages and an API client to the documentation, and ``/docs`` and
``/redoc`` serve Swagger UI and ReDoc from files installed with the service (the ``fastapi-offline`` package ships
them: Swagger UI under Apache-2.0, ReDoc under MIT), so they work without internet and load nothing from a CDN."""

from __future__ import annotations

import functools
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from serving.ui import SESSION_COOKIE

__all__ = ["DOCS_ASSETS", "install_front_door"]

DOCS_ASSETS = "/docs-assets"
_FILES = Path(fastapi_offline.__file__).resolve().with_name("static")


# ReDoc's sidebar shows its maker's logo from a CDN, whatever its options say: served with a blank image instead, so
# the page fetches nothing from elsewhere (and a browser without internet logs no failed request).
_REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
_BLANK = "data:image/gif;base64,R0lGODlhAQABAAAAACH5BAEKAAEALAAAAAABAAEAAAICTAEAOw=="


@functools.cache
def _redoc_script() -> bytes:
    return (_FILES / "redoc.standalone.js").read_bytes().replace(_REDOC_LOGO.encode(), _BLANK.encode())


def _wants_a_page(request: Request) -> bool:
    """A browser asks for HTML first; an API client asks for JSON or anything."""
    accept = request.headers.get("accept", "")
    return "text/html" in accept.split(",")[0] or ("text/html" in accept and "application/json" not in accept)


def install_front_door(app: FastAPI) -> None:
    """Add ``/``, ``/docs`` (with its OAuth2 redirect) and ``/redoc`` to an app made with ``docs_url=None`` and
    ``redoc_url=None``."""
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get(f"{DOCS_ASSETS}/redoc.local.js", include_in_schema=False)
    def redoc_script() -> Response:
        return Response(_redoc_script(), media_type="text/javascript")

    app.mount(DOCS_ASSETS, StaticFiles(directory=_FILES), name="docs-assets")  # after the route above: it wins

    @app.get("/", include_in_schema=False)
    def front_door(request: Request) -> RedirectResponse:
        if not _wants_a_page(request):
            return RedirectResponse("/docs", status_code=303)
        signed_in = request.cookies.get(SESSION_COOKIE) is not None  # the queue checks it, and sends on to sign in
        return RedirectResponse("/v1/ui/queue" if signed_in else "/v1/ui/login", status_code=303)

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title}: API",
            oauth2_redirect_url="/docs/oauth2-redirect",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png",
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title}: API",
            redoc_js_url=f"{DOCS_ASSETS}/redoc.local.js",
            redoc_favicon_url=f"{DOCS_ASSETS}/favicon.png",
            with_google_fonts=False,
        )
