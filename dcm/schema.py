"""Column contracts for the frames that cross package boundaries.

Every frame that leaves :mod:`dcm.ingest` or :mod:`dcm.simulate`, or enters
:mod:`dcm.analysis`, follows one of the contracts below. Coordinates are WGS84
degrees (EPSG:4326); timestamps are timezone-aware UTC (``datetime64[ns, UTC]``).
:func:`validate_frame` checks a frame and raises :class:`~dcm.errors.SchemaError`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from dcm.errors import SchemaError

CRS = "EPSG:4326"

STATUSES = ("ok", "no_service", "failed")
RADIOS = ("GSM", "UMTS", "LTE", "NR", "CDMA")
CELL_STATUSES = ("online", "offline", "unknown")
GRID_STATES = ("up", "down", "uncertain", "no_data")
SEVERITIES = ("outage", "degraded")
#: ``confirmed``: the data show the outage; ``suspected``: they point to one but cannot
#: yet confirm it (its ``confidence`` is the probability).
OUTAGE_TIERS = ("confirmed", "suspected")
#: ``observed``: confirmed by direct no_service/failed reports; ``likely``: confirmed
#: from silence against expectation; ``possible``: suspected.
OUTAGE_CERTAINTIES = ("observed", "likely", "possible")
#: Outages from before the tiers (no ``certainty``): ``confidence`` from which they count
#: as observed, and as likely (below: possible). The CAP certainty rule of old.
OBSERVED_CONFIDENCE = 0.9
LIKELY_CONFIDENCE = 0.6
ALL_NETWORKS = "all"

UTC_TS = "datetime64[ns, UTC]"

#: Canonical measurement frame (ingest output, simulator output, analysis input).
#: ``network`` is derived: ``"MCC-MNC"`` or ``<NA>`` when mcc/mnc are missing.
#: ``device`` is already hashed when it leaves ingest (never clear text).
MEASUREMENT_COLUMNS: dict[str, str] = {
    "timestamp": UTC_TS,
    "lat": "float64",
    "lon": "float64",
    "status": "string",
    "mcc": "Int64",
    "mnc": "Int64",
    "network": "string",
    "radio": "string",
    "area": "Int64",
    "cell": "Int64",
    "signal_dbm": "float64",
    "download_kbps": "float64",
    "upload_kbps": "float64",
    "latency_ms": "float64",
    "accuracy_m": "float64",
    "measurement_id": "string",
    "device": "string",
}
MEASUREMENT_REQUIRED = ("timestamp", "lat", "lon", "status")

#: Columns of an OpenCelliD / MLS export, in file order.
OPENCELLID_COLUMNS = (
    "radio",
    "mcc",
    "net",
    "area",
    "cell",
    "unit",
    "lon",
    "lat",
    "range",
    "samples",
    "changeable",
    "created",
    "updated",
    "averageSignal",
)

#: Cell frame (ingest output, simulator output, analysis input). ``created`` and
#: ``updated`` are UTC timestamps; ``range`` is metres; ``site_id`` groups the
#: cells of one physical site of one network; ``network`` is ``"MCC-MNC"``.
CELL_COLUMNS: dict[str, str] = {
    "radio": "string",
    "mcc": "int64",
    "net": "int64",
    "area": "int64",
    "cell": "int64",
    "unit": "Int64",
    "lon": "float64",
    "lat": "float64",
    "range": "float64",
    "samples": "Int64",
    "changeable": "Int64",
    "created": UTC_TS,
    "updated": UTC_TS,
    "averageSignal": "float64",
    "network": "string",
    "site_id": "string",
}

#: Population points: one row per raster pixel with people (pixel centres).
POPULATION_COLUMNS: dict[str, str] = {"lon": "float64", "lat": "float64", "population": "float64"}

#: Status of each cell over time (``cells.csv``). ``silence_h_needed``: hours of
#: silence, at the site's current expected reporting rate, the data need before the
#: site could be called offline (NaN where not computed); high values show where data
#: are too thin to decide.
CELL_STATUS_COLUMNS: dict[str, str] = {
    "radio": "string",
    "mcc": "int64",
    "net": "int64",
    "area": "int64",
    "cell": "int64",
    "site_id": "string",
    "status": "string",
    "start": UTC_TS,
    "end": UTC_TS,
    "p_offline": "float64",
    "silence_h_needed": "float64",
}

#: Extra cell status column (``cells.csv``, the ``cells`` collection, the store): the
#: start of the cell's current offline interval, UTC, where ``status`` is offline
#: (missing otherwise). A row of the live store covers one window; this says since when
#: the cell has been offline without a break.
CELL_OFFLINE_SINCE = "offline_since"

#: Per grid cell, network and window (``status.parquet``).
GRID_STATUS_COLUMNS: dict[str, str] = {
    "h3": "string",
    "network": "string",
    "window_start": UTC_TS,
    "window_end": UTC_TS,
    "expected_count": "float64",
    "observed_count": "int64",
    "ok_count": "int64",
    "fail_count": "int64",
    "state": "string",
    "p_down": "float64",
}

#: Outage polygons (``outages.geojson``); a GeoDataFrame in EPSG:4326. ``tier`` is one
#: of OUTAGE_TIERS, ``certainty`` one of OUTAGE_CERTAINTIES (missing when a confirmed
#: outage has no confidence); see :func:`with_outage_tiers` for frames without them.
OUTAGE_COLUMNS: dict[str, str] = {
    "outage_id": "string",
    "window_start": UTC_TS,
    "window_end": UTC_TS,
    "network": "string",
    "severity": "string",
    "tier": "string",
    "certainty": "string",
    "confidence": "float64",
    "area_km2": "float64",
    "population": "float64",
    "cells_offline": "int64",
    "onset": UTC_TS,
}


def network_key(mcc: pd.Series, mnc: pd.Series) -> pd.Series:
    """``"MCC-MNC"`` per row (vectorised); ``<NA>`` where either part is missing."""
    mcc_s = mcc.astype("Int64").astype("string")
    mnc_s = mnc.astype("Int64").astype("string")
    return (mcc_s + "-" + mnc_s).astype("string")


def outage_certainty(confidence: pd.Series) -> pd.Series:
    """Outage certainty of confirmed outages that have none stored: ``observed`` from
    OBSERVED_CONFIDENCE, ``likely`` from LIKELY_CONFIDENCE, else ``possible``; missing
    where the confidence is."""
    value = pd.to_numeric(confidence, errors="coerce").astype("float64").to_numpy()
    with np.errstate(invalid="ignore"):
        text = np.select(
            [value >= OBSERVED_CONFIDENCE, value >= LIKELY_CONFIDENCE, np.isfinite(value)],
            ["observed", "likely", "possible"],
            default="",
        )
    return pd.Series(text, index=confidence.index, dtype="string").replace("", pd.NA)


def suspected_outages(outages: pd.DataFrame) -> np.ndarray:
    """Bool per row: the outage is ``suspected`` (frames without ``tier`` are confirmed)."""
    if "tier" not in outages:
        return np.zeros(len(outages), dtype=bool)
    return outages["tier"].eq("suspected").fillna(False).to_numpy(dtype=bool)


def with_outage_tiers(outages: pd.DataFrame) -> pd.DataFrame:
    """``outages`` (a copy) with ``tier`` and ``certainty`` filled where missing.

    Frames and stored rows from before the suspected tier lack them: such outages are
    ``confirmed``, their certainty follows :func:`outage_certainty`; a suspected
    outage without a certainty is ``possible``. The frame is returned as it is (not
    copied) when nothing is missing.
    """
    tier = (
        outages["tier"].astype("string")
        if "tier" in outages
        else pd.Series(pd.NA, index=outages.index, dtype="string")
    )
    certainty = (
        outages["certainty"].astype("string")
        if "certainty" in outages
        else pd.Series(pd.NA, index=outages.index, dtype="string")
    )
    if "tier" in outages and "certainty" in outages and not (tier.isna() | certainty.isna()).any():
        return outages
    tier = tier.fillna("confirmed")
    confidence = (
        outages["confidence"]
        if "confidence" in outages
        else pd.Series(np.nan, index=outages.index, dtype="float64")
    )
    derived = outage_certainty(confidence).where(tier != "suspected", "possible")
    out = outages.copy()
    out["tier"] = tier
    out["certainty"] = certainty.fillna(derived)
    return out


def empty_frame(columns: Mapping[str, str]) -> pd.DataFrame:
    """An empty frame with the contract's columns and dtypes."""
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in columns.items()})


def validate_frame(
    frame: pd.DataFrame,
    columns: Mapping[str, str],
    *,
    name: str,
    required: tuple[str, ...] | None = None,
) -> pd.DataFrame:
    """Check that ``frame`` has the contract's columns with compatible dtypes.

    ``required`` columns (all of them when None) must be present; others may be
    missing. Numeric columns must be numeric, timestamp columns tz-aware UTC.
    Returns the frame unchanged so it can be used inline.
    """
    needed = tuple(columns) if required is None else required
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise SchemaError(f"{name}: missing columns {missing}")
    for col, dtype in columns.items():
        if col not in frame.columns:
            continue
        actual = frame[col].dtype
        if dtype == UTC_TS:
            if not isinstance(actual, pd.DatetimeTZDtype) or str(actual.tz) != "UTC":
                raise SchemaError(f"{name}: column {col!r} must be UTC timestamps, got {actual}")
        elif dtype in ("float64", "int64", "Int64") and (
            not (pd.api.types.is_numeric_dtype(actual) or actual == np.dtype("O"))
            or pd.api.types.is_bool_dtype(actual)
        ):
            raise SchemaError(f"{name}: column {col!r} must be numeric, got {actual}")
    return frame
