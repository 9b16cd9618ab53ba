"""Small geometry helpers of the simulator: a local metric projection and ids."""

from __future__ import annotations

from typing import Any

import numpy as np

#: Metres per degree of latitude (WGS84 mean; good to 0.5 % at our scales).
M_PER_DEG_LAT = 110_574.0
M_PER_DEG_LON_EQ = 111_320.0


class LocalProjection:
    """Equirectangular projection to metres around a reference point.

    Regions are at most ~100 km across, so the distortion (< 0.1 %) is far below
    GPS error and cell-range uncertainty.
    """

    def __init__(self, lon0: float, lat0: float) -> None:
        self.lon0 = lon0
        self.lat0 = lat0
        self.kx = M_PER_DEG_LON_EQ * np.cos(np.radians(lat0))
        self.ky = M_PER_DEG_LAT

    def to_xy(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """(n, 2) metres east and north of the reference point."""
        lon = np.asarray(lon, dtype="float64")
        lat = np.asarray(lat, dtype="float64")
        return np.column_stack(((lon - self.lon0) * self.kx, (lat - self.lat0) * self.ky))

    def to_lonlat(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Degrees back from metres east and north."""
        return self.lon0 + np.asarray(x) / self.kx, self.lat0 + np.asarray(y) / self.ky


_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def hex_ids(values: np.ndarray, *, width: int = 16) -> np.ndarray:
    """Hex strings (``width`` digits) of unsigned integers, vectorised; object array."""
    v = np.asarray(values, dtype=np.uint64)
    shifts = np.arange(width - 1, -1, -1, dtype=np.uint64) * np.uint64(4)
    nibbles = (v[:, None] >> shifts[None, :]) & np.uint64(15)
    chars = _HEX[nibbles.astype(np.intp)]
    return np.ascontiguousarray(chars).view(f"S{width}").ravel().astype(str).astype(object)


def pixel_centres(
    transform: Any, rows: np.ndarray, cols: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(lon, lat) of pixel centres of a north-up raster (rotation terms ignored)."""
    lon = transform.c + transform.a * (np.asarray(cols) + 0.5)
    lat = transform.f + transform.e * (np.asarray(rows) + 0.5)
    return lon, lat
