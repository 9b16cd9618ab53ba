"""Value conversions shared by the writers: UTC timestamps as ISO 8601, JSON-safe values."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

import numpy as np
import pandas as pd


def utc_series(values: pd.Series) -> pd.Series:
    """Datetime values as tz-aware UTC; naive timestamps are taken to be UTC already."""
    if values.dt.tz is None:
        return values.dt.tz_localize("UTC")
    return values.dt.tz_convert("UTC")


def strftime_utc(values: pd.Series, fmt: str) -> pd.Series:
    """Datetime values (UTC; naive ones taken as UTC) formatted with ``fmt``; NaT → None.

    Each distinct instant is formatted once: window times repeat over thousands of rows,
    and pandas formats one value at a time.
    """
    codes, distinct = pd.factorize(utc_series(values))
    texts = np.asarray(pd.DatetimeIndex(distinct).strftime(fmt), dtype=object)
    return _expand(texts, codes, values.index)


def _expand(distinct: np.ndarray, codes: np.ndarray, index: pd.Index) -> pd.Series:
    out = np.full(len(codes), None, dtype=object)
    present = codes >= 0
    out[present] = distinct[codes[present]]
    return pd.Series(out, index=index, dtype=object)


def iso_utc(values: pd.Series) -> pd.Series:
    """ISO 8601 strings ending in ``Z`` for a datetime column (vectorised); NaT stays missing.

    Whole seconds are written without a fraction; other values keep microseconds.
    """
    codes, distinct = pd.factorize(utc_series(values))
    distinct = pd.DatetimeIndex(distinct)
    fractional = (distinct.microsecond != 0) | (distinct.nanosecond != 0)
    texts = np.asarray(distinct.strftime("%Y-%m-%dT%H:%M:%SZ"), dtype=object)
    if fractional.any():
        texts[fractional] = np.asarray(
            distinct[fractional].strftime("%Y-%m-%dT%H:%M:%S.%fZ"), dtype=object
        )
    return _expand(texts, codes, values.index)


def iso_utc_scalar(value: dt.datetime | pd.Timestamp) -> str:
    """One timestamp as ISO 8601 UTC with ``Z``; naive values are taken to be UTC."""
    ts = pd.Timestamp(value)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ" if ts.microsecond or ts.nanosecond else "%Y-%m-%dT%H:%M:%SZ"
    return ts.strftime(fmt)


def is_datetime_column(values: pd.Series) -> bool:
    """True for naive or tz-aware datetime64 columns."""
    return pd.api.types.is_datetime64_any_dtype(values.dtype)


def frame_with_iso_times(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose datetime columns are ISO 8601 ``Z`` strings."""
    out = frame.copy()
    for col in out.columns:
        if is_datetime_column(out[col]):
            out[col] = iso_utc(out[col])
    return out


def jsonable(obj: Any) -> Any:
    """``obj`` converted to plain JSON types.

    numpy scalars and arrays become numbers and lists, NaN/NA/NaT become None,
    timestamps ISO 8601 UTC ``Z`` strings, paths strings, frames lists of records,
    shapely geometries GeoJSON geometry dicts.
    """
    if obj is None or isinstance(obj, (bool, str, int)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        if isinstance(obj, np.datetime64):
            return None if np.isnat(obj) else iso_utc_scalar(pd.Timestamp(obj))
        return jsonable(obj.item())
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if obj is pd.NA or obj is pd.NaT:
        return None
    if isinstance(obj, (dt.datetime, pd.Timestamp)):
        return iso_utc_scalar(obj)
    if isinstance(obj, dt.date):
        return obj.isoformat()
    if isinstance(obj, (dt.timedelta, pd.Timedelta)):
        return pd.Timedelta(obj).isoformat()
    if isinstance(obj, PurePath):
        return str(obj)
    if isinstance(obj, pd.DataFrame):
        return jsonable(frame_with_iso_times(obj).to_dict(orient="records"))
    if isinstance(obj, (pd.Series, pd.Index)):
        values = obj
        if is_datetime_column(pd.Series(values)):
            values = iso_utc(pd.Series(values))
        return jsonable(list(values))
    if hasattr(obj, "__geo_interface__"):
        return jsonable(obj.__geo_interface__)
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")
