"""Tiny hand-made frames for the analysis tests (frames follow dcm.schema)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

#: A quiet place in the Caribbean; 0.02° apart points fall in different H3 res-8 cells.
LAT0, LON0 = 13.25, -61.20


def measurements(
    *,
    start: str,
    hours: float,
    per_hour: float,
    network: str,
    cell: int | None,
    status: str = "ok",
    lat: float = LAT0,
    lon: float = LON0,
    seed: int = 0,
) -> pd.DataFrame:
    """Evenly spread measurements at one place (jittered by a few metres)."""
    n = round(hours * per_hour)
    rng = np.random.default_rng(seed)
    ts = pd.Timestamp(start) + pd.to_timedelta(np.sort(rng.uniform(0, hours * 3600, n)), unit="s")
    mcc, mnc = (int(x) for x in network.split("-"))
    frame = pd.DataFrame(
        {
            "timestamp": pd.DatetimeIndex(ts).tz_convert("UTC"),
            "lat": lat + rng.normal(0, 1e-4, n),
            "lon": lon + rng.normal(0, 1e-4, n),
            "status": pd.array([status] * n, dtype="string"),
            "mcc": pd.array([mcc] * n, dtype="Int64"),
            "mnc": pd.array([mnc] * n, dtype="Int64"),
            "network": pd.array([network] * n, dtype="string"),
            "area": pd.array([1 if cell is not None else None] * n, dtype="Int64"),
            "cell": pd.array([cell] * n, dtype="Int64"),
            "device": pd.array([f"d{i % 50}" for i in range(n)], dtype="string"),
        }
    )
    return frame


def concat(*frames: pd.DataFrame) -> pd.DataFrame:
    return pd.concat(frames, ignore_index=True).sort_values("timestamp", ignore_index=True)


def cells_frame(rows: list[tuple[str, int, float, float]]) -> pd.DataFrame:
    """Cells from (network, cell id, lat, lon); each cell its own site."""
    frame = pd.DataFrame(
        {
            "radio": pd.array(["LTE"] * len(rows), dtype="string"),
            "mcc": [int(r[0].split("-")[0]) for r in rows],
            "net": [int(r[0].split("-")[1]) for r in rows],
            "area": [1] * len(rows),
            "cell": [r[1] for r in rows],
            "lat": [r[2] for r in rows],
            "lon": [r[3] for r in rows],
            "range": [1000.0] * len(rows),
        }
    )
    frame["network"] = pd.array([r[0] for r in rows], dtype="string")
    frame["site_id"] = pd.array([f"{r[0]}-S{r[1]}" for r in rows], dtype="string")
    return frame.astype({"mcc": "int64", "net": "int64", "area": "int64", "cell": "int64"})


@pytest.fixture
def two_networks() -> pd.DataFrame:
    """Cells of networks 358-10 (cell 1) and 358-20 (cell 2) at the same place."""
    return cells_frame([("358-10", 1, LAT0, LON0), ("358-20", 2, LAT0, LON0)])
