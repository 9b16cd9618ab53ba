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


#: Rows per row group of the Parquet files written here (pyarrow's default, 1 Mi rows).
PARQUET_ROW_GROUP_ROWS = 1024 * 1024


class ParquetAppender:
    """Frames written one after another into one Parquet file, as :func:`write_parquet`
    writes them concatenated: the same schema, values, statistics and row groups of
    :data:`PARQUET_ROW_GROUP_ROWS` rows (so the file has the same bytes). Only a row
    group's worth of rows is held at a time, never the whole table.

    Every frame must have the first one's columns and dtypes (categoricals with the
    same categories). Use as a context manager, or call :meth:`close`; a file that got
    no frame is not written.
    """

    def __init__(self, path: str | Path, *, row_group_rows: int = PARQUET_ROW_GROUP_ROWS) -> None:
        self.path = Path(path)
        self.row_group_rows = row_group_rows
        self.rows = 0
        self._held: list[Any] = []  # Arrow tables not yet written
        self._held_rows = 0
        self._writer: Any = None
        self._empty: Any = None  # the first frame's table, for a file with no rows

    def __enter__(self) -> ParquetAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write(self, frame: pd.DataFrame) -> None:
        """Append ``frame``'s rows."""
        import pyarrow as pa

        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self._empty is None:
            self._empty = table.slice(0, 0)
        self.rows += table.num_rows
        if table.num_rows:
            self._held.append(table)
            self._held_rows += table.num_rows
        while self._held_rows >= self.row_group_rows:
            self._flush(self.row_group_rows)

    def close(self) -> None:
        """Write the last (short) row group and the footer."""
        import pyarrow.parquet as pq

        if self._held_rows:
            self._flush(self._held_rows)
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        elif self._empty is not None:
            # No rows: the file write_parquet writes for an empty frame.
            pq.write_table(self._empty, self.path, write_statistics=self._statistics(self._empty))
            self._empty = None

    def _flush(self, n: int) -> None:
        """Write the first ``n`` held rows as one row group."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        held = pa.concat_tables(self._held)
        # One chunk per column, as a whole table has: where a column's dictionary
        # encoding gives way to plain depends on the batches the writer is handed.
        group, rest = held.slice(0, n).combine_chunks(), held.slice(n)
        if self._writer is None:
            self._writer = pq.ParquetWriter(
                self.path, group.schema, write_statistics=self._statistics(group)
            )
        self._writer.write_table(group, row_group_size=n)
        self._held = [rest] if rest.num_rows else []
        self._held_rows = rest.num_rows

    @staticmethod
    def _statistics(table: Any) -> list[str]:
        return [c for c in table.column_names if _statistics_worthwhile(table.column(c))]


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
