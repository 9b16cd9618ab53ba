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
from dcm.store import Principal, open_store

from ..store.conftest import BACKENDS, backend_url
from .conftest import running_server

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


UPLOAD_HEADER = "timestamp,lat,lon,status,mcc,mnc,measurement_id,device"
UPLOAD_ROWS = [
    "2021-04-10T11:00:00Z,13.2,-61.2,ok,360,110,good-1,phone",
    "2021-04-10T11:01:00Z,13.2,-61.2,ok,360,110,nul\x00id,phone",  # line 3
    "2021-04-10T11:02:00Z,13.2,-61.2,ok,360,110,nul-device,ph\x00one",  # line 4
    "0001-01-01T00:00:00Z,13.2,-61.2,ok,360,110,year-1,phone",  # line 5
    "9999-12-31T23:59:59Z,13.2,-61.2,ok,360,110,year-9999,phone",  # line 6
    "2021-04-10T11:03:00Z,13.2,-61.2,ok,360,110,good-2,phone",
]


@pytest.mark.parametrize("backend", BACKENDS)
def test_upload_with_nul_characters_and_far_years_is_a_report(tmp_path: Path, backend: str) -> None:
    """Rows a database cannot hold are rejected by line and reason (was a 500 on
    PostgreSQL for NUL, on both backends for years 1 and 9999); good rows go in."""
    with backend_url(backend, tmp_path) as url:
        settings = Settings(data_dir=tmp_path / "data", database_url=url, secret="s")
        admin = Principal.system()
        with open_store(settings) as store:
            store.create_event("upload", start="2021-04-09T12:00:00Z", principal=admin)
            _, token = store.create_key("partner", role="partner", principal=admin)
        body = "\n".join([UPLOAD_HEADER, *UPLOAD_ROWS]) + "\n"
        with (
            running_server(lambda: create_app(settings)) as base,
            httpx.Client(base_url=base, timeout=60, headers={"X-API-Key": token}) as client,
        ):
            response = client.post(
                "/events/upload/measurements",
                params={"visibility": "public"},
                content=body.encode(),
                headers={"Content-Type": "text/csv"},
            )
            assert response.status_code == 201, response.text
            report = response.json()["report"]
            assert (report["rows_in"], report["accepted"], report["rejected"]) == (6, 2, 4)
            assert report["balanced"]
            rejected = [(r["line"], r["field"]) for r in report["rejected_rows"]]
            assert rejected == [(3, "measurement_id"), (4, "device"), (5, "timestamp"),
                                (6, "timestamp")]  # fmt: skip
            reasons = [r["reason"] for r in report["rejected_rows"]]
            assert all("NUL character" in r for r in reasons[:2])
            assert all("timestamp out of range" in r for r in reasons[2:])
            assert response.json()["added"] == 2
            items = client.get("/collections/upload-measurements/items").json()
            ids = sorted(f["properties"]["measurement_id"] for f in items["features"])
            assert ids == ["good-1", "good-2"]
