"""Tabular and document writers: CSV, Parquet, GeoPackage and JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import shapely

from dcm.errors import ParameterError
from dcm.publish._values import frame_with_iso_times, is_datetime_column, jsonable, utc_series
from dcm.publish.geojson import MAX_PRECISION, prepare_geometries


def write_csv(frame: pd.DataFrame, path: str | Path, *, precision: int = MAX_PRECISION) -> Path:
    """Write ``frame`` as UTF-8 CSV without the index; returns the path.

    Timestamps become ISO 8601 UTC strings ending in ``Z``; missing values are
    empty fields; geometry columns become WKT in EPSG:4326 rounded to
    ``precision`` decimals.
    """
    path = Path(path)
    out = pd.DataFrame(frame_with_iso_times(frame))
    for col in out.columns:
        if isinstance(out[col].dtype, gpd.array.GeometryDtype):
            geoms = prepare_geometries(gpd.GeoSeries(frame[col]), precision=precision)
            out[col] = shapely.to_wkt(geoms, rounding_precision=-1)
    out.to_csv(path, index=False, lineterminator="\n")
    return path


def write_parquet(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write ``frame`` as Parquet (GeoParquet for a GeoDataFrame); dtypes and UTC kept.

    Categorical columns stay dictionary-encoded. Row-group statistics are written for
    every column except text with many distinct values (H3 cell ids): their min/max
    let no reader skip a row group and cost a third of the write of a large grid.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if isinstance(frame, gpd.GeoDataFrame):
        frame.to_parquet(path, index=False)
        return path
    table = pa.Table.from_pandas(frame, preserve_index=False)
    stats = [c for c in table.column_names if _statistics_worthwhile(table.column(c))]
    pq.write_table(table, path, write_statistics=stats)
    return path


#: Text columns with more distinct values than this get no row-group statistics.
STATISTICS_MAX_DISTINCT_TEXT = 1000


def _statistics_worthwhile(column: Any) -> bool:
    """False for a text column with many distinct values (see :func:`write_parquet`)."""
    import pyarrow as pa

    kind = column.type
    if pa.types.is_dictionary(kind):
        if not (pa.types.is_string(kind.value_type) or pa.types.is_large_string(kind.value_type)):
            return True
        sizes = [len(chunk.dictionary) for chunk in column.chunks]
        return max(sizes, default=0) <= STATISTICS_MAX_DISTINCT_TEXT
    return not (pa.types.is_string(kind) or pa.types.is_large_string(kind))


def _utc_times(frame: pd.DataFrame) -> pd.DataFrame:
    """Naive datetime columns localised to UTC, aware ones converted, so GDAL stores UTC."""
    out = frame.copy()
    for col in out.columns:
        if is_datetime_column(out[col]):
            out[col] = utc_series(out[col])
    return out


def write_geopackage(layers: Mapping[str, pd.DataFrame], path: str | Path) -> Path:
    """Write each frame as a layer of one GeoPackage file (replacing the file).

    GeoDataFrames become feature layers in their own CRS (EPSG:4326 when unset);
    plain frames become attribute tables. Timestamps are stored as UTC DateTime
    fields, so they read back as tz-aware values.
    """
    import pyogrio  # lazy: GDAL bindings are only needed here

    if not layers:
        raise ParameterError("a GeoPackage needs at least one layer")
    path = Path(path)
    path.unlink(missing_ok=True)
    for name, frame in layers.items():
        if not name:
            raise ParameterError("GeoPackage layer names must not be empty")
        out = _utc_times(frame)
        if isinstance(out, gpd.GeoDataFrame) and out.crs is None:
            out = out.set_crs(4326)
        pyogrio.write_dataframe(out, path, layer=name, driver="GPKG")
    return path


def write_json(obj: Any, path: str | Path) -> Path:
    """Write ``obj`` as pretty UTF-8 JSON; numpy/pandas values are converted.

    NaN and NA become null, timestamps ISO 8601 UTC ``Z`` strings (see
    :func:`dcm.publish._values.jsonable`).
    """
    path = Path(path)
    text = json.dumps(jsonable(obj), indent=2, ensure_ascii=False, allow_nan=False)
    path.write_text(text + "\n", encoding="utf-8")
    return path
