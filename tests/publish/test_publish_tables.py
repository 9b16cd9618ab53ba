"""CSV, Parquet, GeoPackage and JSON writers: UTC timestamps, missing values, layers."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
from shapely.geometry import Point, Polygon

from dcm.errors import ParameterError
from dcm.publish import write_csv, write_geopackage, write_json, write_parquet
from dcm.publish.tables import PARQUET_ROW_GROUP_ROWS, ParquetAppender
from dcm.schema import CELL_STATUS_COLUMNS, validate_frame


def _cell_status() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "radio": pd.array(["LTE", "GSM"], dtype="string"),
            "mcc": np.array([358, 358], dtype=np.int64),
            "net": np.array([110, 50], dtype=np.int64),
            "area": np.array([1, 2], dtype=np.int64),
            "cell": np.array([101, 202], dtype=np.int64),
            "site_id": pd.array(["358-110-1", "358-50-2"], dtype="string"),
            "status": pd.array(["offline", "unknown"], dtype="string"),
            "start": pd.to_datetime(["2021-04-09T12:00Z", "2021-04-09T12:00Z"], utc=True),
            "end": pd.to_datetime(["2021-04-09T15:30Z", None], utc=True),
            "p_offline": [0.97, np.nan],
            "silence_h_needed": [np.nan, 12.5],
        }
    )


def _outages() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "outage_id": ["o1"],
            "window_end": pd.to_datetime(["2021-04-09T13:00Z"], utc=True),
            "population": [12.0],
        },
        geometry=[Polygon([(-61.2, 13.2), (-61.1, 13.2), (-61.1, 13.3000000004), (-61.2, 13.2)])],
        crs="EPSG:4326",
    )


def test_csv_writes_iso_utc_and_empty_missing(tmp_path: Path) -> None:
    path = write_csv(_cell_status(), tmp_path / "cells.csv")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == ",".join(CELL_STATUS_COLUMNS)
    assert lines[1].endswith("2021-04-09T12:00:00Z,2021-04-09T15:30:00Z,0.97,")
    assert lines[2].endswith("2021-04-09T12:00:00Z,,,12.5")
    back = pd.read_csv(path)
    parsed = pd.to_datetime(back["start"], utc=True)
    assert (parsed == _cell_status()["start"]).all()


def test_csv_of_geodataframe_has_rounded_wkt(tmp_path: Path) -> None:
    path = write_csv(_outages(), tmp_path / "outages.csv")
    text = path.read_text(encoding="utf-8")
    assert "POLYGON ((" in text
    assert "13.3000000004" not in text and "13.3" in text


def test_parquet_keeps_dtypes(tmp_path: Path) -> None:
    frame = _cell_status()
    back = pd.read_parquet(write_parquet(frame, tmp_path / "status.parquet"))
    validate_frame(back, CELL_STATUS_COLUMNS, name="cells")
    pd.testing.assert_frame_equal(back, frame, check_dtype=False)
    gback = gpd.read_parquet(write_parquet(_outages(), tmp_path / "outages.parquet"))
    assert gback.crs.to_epsg() == 4326 and gback.geometry.iloc[0].equals(_outages().geometry[0])


def test_parquet_grid_keeps_categories_and_skips_statistics_of_many_texts(
    tmp_path: Path,
) -> None:
    import pyarrow.parquet as pq

    n = 3000
    h3 = [f"88{i:013x}" for i in range(n)]  # more distinct ids than the statistics limit
    frame = pd.DataFrame(
        {
            "h3": pd.Categorical(h3),
            "network": pd.Categorical(["all", "358-110"] * (n // 2)),
            "window_start": pd.date_range("2021-04-09", periods=n, freq="min", tz="UTC"),
            "p_down": np.linspace(0, 1, n),
        }
    )
    path = write_parquet(frame, tmp_path / "status.parquet")
    back = pd.read_parquet(path)
    pd.testing.assert_frame_equal(back, frame)
    meta = pq.ParquetFile(path).metadata.row_group(0)
    stats = {meta.column(i).path_in_schema: meta.column(i).statistics for i in range(4)}
    assert stats["h3"] is None
    assert stats["network"] is not None and stats["network"].min == "358-110"
    assert stats["window_start"].has_min_max and stats["p_down"].max == 1.0


def test_geopackage_layers_and_timestamps(tmp_path: Path) -> None:
    naive = _outages().assign(onset=pd.Timestamp("2021-04-09T11:00"))  # naive = UTC
    path = tmp_path / "results.gpkg"
    path.write_text("stale")  # replaced, not appended to
    write_geopackage({"outages": naive, "cells": _cell_status()}, path)
    layers = dict(pyogrio.list_layers(path))
    assert set(layers) == {"outages", "cells"}
    outages = pyogrio.read_dataframe(path, layer="outages")
    assert outages.crs.to_epsg() == 4326
    assert outages["window_end"].iloc[0] == pd.Timestamp("2021-04-09T13:00Z")
    assert outages["onset"].iloc[0] == pd.Timestamp("2021-04-09T11:00Z")
    assert str(outages["window_end"].dt.tz) == "UTC"
    cells = pyogrio.read_dataframe(path, layer="cells")
    assert list(cells["status"]) == ["offline", "unknown"]
    assert cells["end"].isna().iloc[1]
    with pytest.raises(ParameterError):
        write_geopackage({}, tmp_path / "empty.gpkg")


def test_json_converts_numpy_and_pandas_values(tmp_path: Path) -> None:
    summary = {
        "counts": {"outages": np.int64(3), "share": np.float32(0.5)},
        "missing": [np.nan, pd.NA, pd.NaT, None],
        "event_start": pd.Timestamp("2021-04-09T12:00Z"),
        "windows": pd.DatetimeIndex(["2021-04-09T12:00Z", "2021-04-09T13:00Z"]),
        "array": np.arange(3),
        "path": tmp_path / "x",
        "where": Point(1, 2),
    }
    path = write_json(summary, tmp_path / "summary.json")
    text = path.read_text(encoding="utf-8")
    assert "\n  " in text  # pretty
    back = json.loads(text)
    assert back["counts"] == {"outages": 3, "share": 0.5}
    assert back["missing"] == [None, None, None, None]
    assert back["event_start"] == "2021-04-09T12:00:00Z"
    assert back["windows"] == ["2021-04-09T12:00:00Z", "2021-04-09T13:00:00Z"]
    assert back["array"] == [0, 1, 2]
    assert back["path"] == str(tmp_path / "x")
    assert back["where"] == {"type": "Point", "coordinates": [1.0, 2.0]}
    with pytest.raises(TypeError):
        write_json({"x": object()}, tmp_path / "bad.json")


def test_parquet_appender_writes_the_bytes_of_the_whole_frame(tmp_path: Path) -> None:
    """Frames appended in uneven pieces give the file write_parquet writes for them
    concatenated: same bytes, row groups of PARQUET_ROW_GROUP_ROWS rows."""
    import pyarrow.parquet as pq

    n = PARQUET_ROW_GROUP_ROWS + 70_001  # two row groups, the second short
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {
            "h3": pd.Categorical.from_codes(
                rng.integers(0, 3000, n), categories=[f"88{i:013x}" for i in range(3000)]
            ),
            "window_start": pd.Timestamp("2021-04-09", tz="UTC")
            + pd.to_timedelta(rng.integers(0, 72, n), unit="h"),
            "observed_count": rng.integers(0, 9, n),
            # Many distinct values: the dictionary encoding gives way to plain mid-group.
            "p_down": rng.random(n),
        }
    )
    whole = write_parquet(frame, tmp_path / "whole.parquet")
    # Pieces cut near where p_down's dictionary outgrows its page (~131 k doubles).
    cuts = [0, 5, 130_000, 131_000, 131_000, PARQUET_ROW_GROUP_ROWS + 3, n]
    with ParquetAppender(tmp_path / "parts.parquet") as out:
        for a, b in itertools.pairwise(cuts):
            out.write(frame.iloc[a:b])
    assert out.rows == n
    parts = tmp_path / "parts.parquet"
    assert parts.read_bytes() == whole.read_bytes()
    meta = pq.ParquetFile(parts).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [
        PARQUET_ROW_GROUP_ROWS,
        70_001,
    ]
    empty = write_parquet(frame.iloc[:0], tmp_path / "empty.parquet")
    with ParquetAppender(tmp_path / "none.parquet") as out:
        out.write(frame.iloc[:0])
    assert (tmp_path / "none.parquet").read_bytes() == empty.read_bytes()
    with ParquetAppender(tmp_path / "never.parquet"):
        pass
    assert not (tmp_path / "never.parquet").exists()
