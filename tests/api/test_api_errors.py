"""One mapping of dcm errors to problem details; internal errors never leak details."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from dcm.api import create_app
from dcm.api.collections import StaticCatalog
from dcm.api.errors import INTERNAL_ERROR_DETAIL, status_for
from dcm.errors import (
    AuthenticationRequired,
    Conflict,
    DCMError,
    IngestError,
    NotFound,
    ParameterError,
    PermissionDenied,
    SchemaError,
    StoreError,
)
from dcm.settings import Settings

SECRET_SQL = "SELECT token_sha256 FROM api_keys WHERE secret_column = 1"


class BrokenCollection:
    """Fails like a database would, with SQL in the message."""

    id = "broken"
    title = "broken"
    description = "raises on every read"

    def extent(self, principal: Any) -> Any:
        raise StoreError(f"could not run {SECRET_SQL}")

    def features(self, **kwargs: Any) -> Any:
        raise sqlite3.OperationalError(f"no such column: secret_column in {SECRET_SQL}")

    def feature(self, feature_id: str, *, principal: Any) -> Any:
        raise KeyError(f"/srv/dcm/secret/{feature_id}")


def _app(data_dir: Path) -> FastAPI:
    app = create_app(Settings(data_dir=data_dir, secret="s"))
    app.state.catalog = StaticCatalog([BrokenCollection()])
    return app


@pytest.fixture(scope="module")
def http(serve, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    data_dir = tmp_path_factory.mktemp("errors")
    with httpx.Client(base_url=serve(lambda: _app(data_dir)), timeout=30) as client:
        yield client


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (NotFound("x"), 404),
        (PermissionDenied("x"), 403),
        (AuthenticationRequired("x"), 401),
        (ParameterError("x"), 400),
        (IngestError("x"), 422),
        (SchemaError("x"), 422),
        (Conflict("x"), 409),
        (StoreError("x"), 500),
        (DCMError("x"), 500),
        (RuntimeError("x"), 500),
    ],
)
def test_status_mapping(error: Exception, status: int) -> None:
    assert status_for(error) == status


@pytest.mark.parametrize(
    "url",
    ["/collections/broken/items", "/collections/broken", "/collections/broken/items/42"],
)
def test_internal_errors_are_generic_problems(http: httpx.Client, url: str) -> None:
    response = http.get(url)
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body == {
        "type": "about:blank",
        "title": "Internal Server Error",
        "status": 500,
        "detail": INTERNAL_ERROR_DETAIL,
        "instance": url,
    }
    for leak in ("SELECT", "secret", "Traceback", "sqlite", "/srv"):
        assert leak not in response.text


def test_unknown_route_and_method_are_problems(http: httpx.Client) -> None:
    missing = http.get("/no/such/route")
    assert missing.status_code == 404
    assert missing.json()["title"] == "Not Found"
    wrong = http.delete("/conformance")
    assert wrong.status_code == 405
    assert wrong.headers["content-type"] == "application/problem+json"


def test_openapi_document_is_served(http: httpx.Client) -> None:
    doc = http.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    for path in (
        "/collections/{collection_id}/items",
        "/events/{event}/gaps",
        "/events/{event}/measurements",
        "/alerts/{identifier}.xml",
        "/events/{event}/alerts.atom",
    ):
        assert path in doc["paths"], path
