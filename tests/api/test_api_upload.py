"""POST /events/{event}/measurements: CSV, GeoJSON, NDJSON and gzip uploads, streamed."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from dcm.api import create_app
from dcm.store import open_store

from .conftest import populated_copy

EVENT = "stvincent"
URL = f"/events/{EVENT}/measurements"
HEADER = "timestamp,lat,lon,status,mcc,mnc,measurement_id"


@pytest.fixture(scope="module")
def store_copy(populated, tmp_path_factory: pytest.TempPathFactory, sample_data: Path):
    folder = tmp_path_factory.mktemp("upload")
    with populated_copy(populated, folder, sample_data / "stvincent") as copy:
        yield copy


@pytest.fixture(scope="module")
def partner(serve, store_copy) -> Iterator[httpx.Client]:
    settings = store_copy.settings()
    base = serve(lambda: create_app(settings))
    headers = {"X-API-Key": store_copy.tokens["partner"]}
    with httpx.Client(base_url=base, timeout=60, headers=headers) as client:
        yield client


def _csv_rows(n: int, *, seed: int, prefix: str) -> list[str]:
    rng = np.random.default_rng(seed)
    lat = rng.uniform(13.13, 13.37, n)
    lon = rng.uniform(-61.27, -61.12, n)
    minute = rng.integers(0, 50, n)
    return [
        f"2021-04-10T11:{m:02d}:00Z,{a:.6f},{o:.6f},ok,360,110,{prefix}{i}"
        for i, (a, o, m) in enumerate(zip(lat, lon, minute, strict=True))
    ]


def _count(client: httpx.Client) -> int:
    body = client.get(f"/collections/{EVENT}-measurements/items", params={"limit": 1}).json()
    return int(body["numberMatched"])


def test_csv_upload_reports_like_the_cli(partner: httpx.Client, store_copy) -> None:
    rows = [HEADER, *_csv_rows(40, seed=1, prefix="csv"), "2021-04-10T11:00:00Z,95,-61.2,ok,,,"]
    before = _count(partner)
    response = partner.post(
        URL,
        content="\n".join(rows) + "\n",
        headers={"Content-Type": "text/csv"},
        params={"visibility": "public", "licence": "CC-BY-4.0", "name": "hour.csv"},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    report = body["report"]
    assert report["rows_in"] == 41 and report["accepted"] == 40 and report["rejected"] == 1
    assert report["balanced"] is True
    (bad,) = report["rejected_rows"]
    assert bad["line"] == 42 and bad["field"] == "lat"
    assert body["dataset"]["licence"] == "CC-BY-4.0" and body["dataset"]["source"] == "hour.csv"
    assert body["added"] == 40 and body["dirty_windows"] > 0
    assert _count(partner) == before + 40  # public rows: the partner (no grants) sees them
    with open_store(store_copy.settings()) as store:
        audit = store.audit_log(limit=20)
    assert any(
        e.action == "dataset.add" and e.actor == "partner" and e.key_id is not None for e in audit
    )
    again = partner.post(
        URL,
        content="\n".join(rows) + "\n",
        headers={"Content-Type": "text/csv"},
        params={"visibility": "public", "licence": "CC-BY-4.0", "name": "hour.csv"},
    )
    assert again.status_code == 200 and again.json()["new"] is False
    assert _count(partner) == before + 40


def test_geojson_upload(partner: httpx.Client) -> None:
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [-61.2 + i * 1e-3, 13.2]},
            "properties": {
                "timestamp": "2021-04-10T12:05:00Z",
                "status": "no_service",
                "mcc": 360,
                "mnc": 100,
                "measurement_id": f"gj{i}",
            },
        }
        for i in range(12)
    ]
    doc = json.dumps({"type": "FeatureCollection", "features": features})
    response = partner.post(URL, content=doc, headers={"Content-Type": "application/geo+json"})
    assert response.status_code == 201, response.text
    assert response.json()["report"]["accepted"] == 12


def test_gzipped_ndjson_upload(partner: httpx.Client) -> None:
    lines = [
        json.dumps(
            {
                "timestamp": "2021-04-10T12:10:00Z",
                "lat": 13.21,
                "lon": -61.2 + i * 1e-3,
                "status": "ok",
                "mcc": 360,
                "mnc": 110,
                "measurement_id": f"nd{i}",
            }
        )
        for i in range(9)
    ]
    body = gzip.compress(("\n".join(lines) + "\n").encode())
    response = partner.post(
        URL,
        content=body,
        headers={"Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["report"]["accepted"] == 9
    assert response.json()["dataset"]["source"].endswith(".ndjson.gz")


def test_large_upload_is_streamed_in_chunks(partner: httpx.Client, tmp_path: Path) -> None:
    rows = _csv_rows(20_000, seed=2, prefix="big")
    text = ("\n".join([HEADER, *rows]) + "\n").encode()

    def chunks() -> Iterator[bytes]:  # chunked transfer encoding: no Content-Length
        for start in range(0, len(text), 64 * 1024):
            yield text[start : start + 64 * 1024]

    response = partner.post(URL, content=chunks(), headers={"Content-Type": "text/csv"})
    assert response.status_code == 201, response.text
    assert response.json()["report"]["accepted"] == 20_000


def test_bad_uploads(partner: httpx.Client) -> None:
    wrong_type = partner.post(URL, content=b"x", headers={"Content-Type": "image/png"})
    assert wrong_type.status_code == 415
    assert wrong_type.headers["content-type"] == "application/problem+json"
    empty = partner.post(URL, content=b"", headers={"Content-Type": "text/csv"})
    assert empty.status_code == 422
    broken = partner.post(
        URL, content=b"\x1f\x8b\x08garbage", headers={"Content-Type": "application/gzip"}
    )
    assert broken.status_code == 422
    assert "Traceback" not in broken.text
    missing = partner.post(
        "/events/nothing/measurements", content=b"a", headers={"Content-Type": "text/csv"}
    )
    assert missing.status_code == 404


def _bomb(inflated: int) -> bytes:
    """A gzip stream of zeros that inflates to ``inflated`` bytes (about 1000:1)."""
    import zlib

    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b"\0" * (1 << 20)
    parts = [packer.compress(block) for _ in range(inflated >> 20)]
    return b"".join([*parts, packer.flush()])


def _leftovers(store_copy) -> tuple[list[Path], set[Path]]:
    data_dir = Path(store_copy.settings().data_dir)
    uploads = sorted((data_dir / "uploads").glob("*"))
    raw = set((data_dir / "raw").glob("*")) if (data_dir / "raw").exists() else set()
    return uploads, raw


def test_gzip_bomb_upload_is_refused_early(partner: httpx.Client, store_copy) -> None:
    _, raw_before = _leftovers(store_copy)
    bomb = _bomb(1 << 30)  # about 1 MB that would inflate to 1 GiB
    response = partner.post(
        URL, content=bomb, headers={"Content-Type": "text/csv", "Content-Encoding": "gzip"}
    )
    assert response.status_code == 413, response.text
    assert "DCM_MAX_INFLATION_RATIO" in response.json()["detail"]
    assert len(response.content) < 2000
    uploads, raw_after = _leftovers(store_copy)
    assert uploads == [] and raw_after == raw_before  # nothing kept


def test_rejected_upload_keeps_no_raw_copy(partner: httpx.Client, store_copy) -> None:
    _, raw_before = _leftovers(store_copy)
    response = partner.post(URL, content=b"when,where\n1,2\n", headers={"Content-Type": "text/csv"})
    assert response.status_code == 422, response.text
    uploads, raw_after = _leftovers(store_copy)
    assert uploads == [] and raw_after == raw_before


def test_huge_rejected_row_is_echoed_cut(partner: httpx.Client) -> None:
    from dcm.ingest.report import RAW_ECHO_CHARS

    huge = "2021-04-10T11:00:00Z,13.2,-61.2," + "x" * 1_000_000 + ",360,110,huge1"
    text = "\n".join([HEADER, *_csv_rows(3, seed=7, prefix="cut"), huge]) + "\n"
    response = partner.post(URL, content=text, headers={"Content-Type": "text/csv"})
    assert response.status_code == 201, response.text
    (bad,) = response.json()["report"]["rejected_rows"]
    assert bad["field"] == "status"
    assert bad["raw"] == huge[:RAW_ECHO_CHARS] + "…"
    assert len(response.content) < 5000


def test_odd_json_rows_are_rejected_not_500(partner: httpx.Client) -> None:
    good = {"timestamp": "2021-04-10T12:20:00Z", "lat": 13.2, "lon": -61.2, "status": "ok"}
    props = {"timestamp": "2021-04-10T12:20:00Z", "status": "ok"}
    feature = {"type": "Feature", "geometry": [None, None], "properties": props}
    nested = '{"a":' * 5000 + "1" + "}" * 5000
    cases = (
        ([json.dumps(feature)], "geometry", "geometry is not a Point"),  # fast path
        ([json.dumps(good | {"measurement_id": "odd1"}), nested], "row", "nested more than 64"),
    )
    for lines, field, reason in cases:
        response = partner.post(
            URL, content="\n".join(lines) + "\n", headers={"Content-Type": "application/x-ndjson"}
        )
        assert response.status_code == 201, response.text
        report = response.json()["report"]
        assert report["accepted"] == len(lines) - 1
        ((got_field, got_reason),) = [(r["field"], r["reason"]) for r in report["rejected_rows"]]
        assert got_field == field and got_reason.startswith(reason)


def test_a_line_past_the_limit_is_refused_naming_it(partner: httpx.Client, store_copy) -> None:
    from dcm.settings import Settings

    _, raw_before = _leftovers(store_copy)
    limit = Settings().max_line_bytes
    rows = _csv_rows(3, seed=9, prefix="long")
    text = "\n".join([HEADER, *rows, "2021-04-10T11:00:00Z," + "9" * (2 * limit)]) + "\n"
    for body, encoding in ((text.encode(), None), (gzip.compress(text.encode()), "gzip")):
        headers = {"Content-Type": "text/csv"} | (
            {"Content-Encoding": encoding} if encoding else {}
        )
        response = partner.post(URL, content=body, headers=headers)
        assert response.status_code == 413, response.text
        detail = response.json()["detail"]
        assert f"line 5 is longer than {limit:,} bytes" in detail and "DCM_MAX_LINE_BYTES" in detail
        assert len(response.content) < 2000
    uploads, raw_after = _leftovers(store_copy)
    assert uploads == [] and raw_after == raw_before  # nothing kept
