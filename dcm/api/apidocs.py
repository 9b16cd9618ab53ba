"""``/docs``: the Swagger UI page of the OpenAPI document, with every file served here.

FastAPI's own ``/docs`` and ``/redoc`` load their scripts from a CDN, which a
responder's laptop in the field cannot reach. This page serves Swagger UI 5 (it reads
OpenAPI 3.1) from the files of the installed ``fastapi-offline`` package, located but
never imported. ReDoc is left out; ``/openapi.json`` stays.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from dcm.errors import NotFound

#: Swagger UI's files the page needs (name -> media type).
SWAGGER_FILES = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon.png": "image/png",
}
SWAGGER_PACKAGE = "fastapi_offline"

router = APIRouter(include_in_schema=False)


@cache
def swagger_dir() -> Path:
    """Folder of Swagger UI's files inside the ``fastapi-offline`` package."""
    spec = importlib.util.find_spec(SWAGGER_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise NotFound("API documentation needs the 'fastapi-offline' package")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


@router.get("/docs")
def docs(request: Request) -> HTMLResponse:
    """The interactive API documentation."""
    root = request.scope.get("root_path", "").rstrip("/")
    page = get_swagger_ui_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} — API",
        swagger_js_url=f"{root}/static/swagger/swagger-ui-bundle.js",
        swagger_css_url=f"{root}/static/swagger/swagger-ui.css",
        swagger_favicon_url=f"{root}/static/swagger/favicon.png",
    )
    html = bytes(page.body).decode("utf-8").replace("<html>", '<html lang="en">', 1)
    return HTMLResponse(html, headers={"Cache-Control": "no-cache"})


@router.get("/static/swagger/{name}")
def swagger_asset(name: str) -> FileResponse:
    """Swagger UI's script, stylesheet and icon."""
    if name not in SWAGGER_FILES:
        raise NotFound(f"no static file {name!r}")
    return FileResponse(
        swagger_dir() / name,
        media_type=SWAGGER_FILES[name],
        headers={"Cache-Control": "public, max-age=86400"},
    )
