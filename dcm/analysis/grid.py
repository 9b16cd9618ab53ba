"""The H3 grid: points to cells, neighbours, areas and polygons, on arrays.

H3 indexes are kept as ``int64`` inside the analysis (cheap to group and join) and
turned into the usual hex strings only at the edge (:func:`to_strings`).
"""

from __future__ import annotations

import itertools

import h3
import h3.api.basic_int as h3b
import h3.api.numpy_int as h3i
import numpy as np
import pandas as pd
import shapely
from shapely.geometry import shape

from dcm.errors import ParameterError

#: Default grid resolution (~0.74 km² hexagons, 0.53 km edge); see docs/method.md.
DEFAULT_RESOLUTION = 8


def check_resolution(resolution: int) -> int:
    """Validate an H3 resolution usable for outage maps (5–10)."""
    if not isinstance(resolution, int | np.integer) or not 5 <= int(resolution) <= 10:
        raise ParameterError(f"H3 resolution must be an integer from 5 to 10, got {resolution!r}")
    return int(resolution)


def points_to_cells(lat: np.ndarray, lon: np.ndarray, resolution: int) -> np.ndarray:
    """H3 cell (int64) of each point; NaN coordinates give 0.

    h3 v4 has no array entry point, so the scalar call runs once per *distinct*
    coordinate pair (measurements repeat places a lot), then results are broadcast
    back. Pairs are told apart by a hash of (lat, lon) as one complex number, much
    faster than sorting them.
    """
    lat = np.asarray(lat, dtype="float64")
    lon = np.asarray(lon, dtype="float64")
    out = np.zeros(lat.shape[0], dtype="int64")
    ok = np.isfinite(lat) & np.isfinite(lon)
    if not ok.any():
        return out
    pairs = np.empty(int(ok.sum()), dtype="complex128")
    pairs.real = lat[ok]
    pairs.imag = lon[ok]
    inverse, uniq = pd.factorize(pairs)
    cell = h3i.latlng_to_cell
    codes = np.fromiter(
        (
            cell(a, b, resolution)
            for a, b in zip(uniq.real.tolist(), uniq.imag.tolist(), strict=True)
        ),
        dtype="int64",
        count=uniq.shape[0],
    )
    out[ok] = codes[inverse]
    return out


def parent_cells(cells: np.ndarray, resolution: int) -> np.ndarray:
    """Parent (int64) of each H3 cell at the coarser ``resolution``, by bit arithmetic.

    An H3 index keeps its resolution in bits 52-55 and one 3-bit digit per finer
    resolution below the base cell; a parent has its own resolution there and the
    digits past it set to 7 (unused). 0 (no cell) stays 0.
    """
    cells = np.asarray(cells, dtype="int64")
    if not 0 <= resolution <= 15:
        raise ParameterError(f"H3 resolution must be 0-15, got {resolution!r}")
    res_bits = np.int64(0xF) << np.int64(52)
    unused = np.int64((1 << (3 * (15 - resolution))) - 1)
    parent = (cells & ~res_bits) | (np.int64(resolution) << np.int64(52)) | unused
    return np.where(cells == 0, np.int64(0), parent)


def cell_resolutions(cells: np.ndarray) -> np.ndarray:
    """Resolution (0-15) of each int64 H3 cell (bits 52-55)."""
    return (np.asarray(cells, dtype="int64") >> np.int64(52)) & np.int64(0xF)


def to_strings(cells: np.ndarray) -> np.ndarray:
    """Hex strings of int64 H3 cells (object array)."""
    uniq, inverse = np.unique(np.asarray(cells, dtype="int64"), return_inverse=True)
    strings = np.array([h3.int_to_str(int(c)) for c in uniq], dtype=object)
    return strings[inverse.ravel()]


def from_strings(cells: np.ndarray) -> np.ndarray:
    """int64 H3 cells from hex strings."""
    return np.array([h3.str_to_int(str(c)) for c in cells], dtype="int64")


def cell_areas_km2(cells: np.ndarray) -> np.ndarray:
    """Exact area of each H3 cell in km²."""
    return np.array([h3i.cell_area(int(c), "km^2") for c in cells], dtype="float64")


def neighbour_pairs(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i, j), i != j, of the given distinct cells that touch (k = 1 ring)."""
    cells = np.asarray(cells, dtype="int64")
    if cells.size == 0:
        empty = np.empty(0, dtype="int64")
        return empty, empty
    src, dst_cells = _disks(cells.tolist(), [1] * cells.size)
    order = np.argsort(cells)
    pos = np.searchsorted(cells, dst_cells, sorter=order)
    pos = np.clip(pos, 0, cells.size - 1)
    dst = order[pos]
    keep = (cells[dst] == dst_cells) & (dst != src)
    return src[keep], dst[keep]


def disk_cells(cells: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All cells within ``k[i]`` rings of ``cells[i]``: (row index, cell) pairs."""
    cells = np.asarray(cells, dtype="int64")
    k = np.asarray(k, dtype="int64")
    if cells.shape != k.shape:
        raise ValueError("cells and k differ in length")
    return _disks(cells.tolist(), k.tolist())


def _disks(cells: list[int], k: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(row index, cell) pairs of the grid disks of ``cells`` (Python ints).

    The plain-int h3 API returns lists: three times faster per call than the numpy
    one, which builds a small array per disk.
    """
    disk = h3b.grid_disk
    rings = [disk(c, kk) for c, kk in zip(cells, k, strict=True)]
    lengths = np.fromiter(map(len, rings), dtype="int64", count=len(rings))
    flat = itertools.chain.from_iterable(rings)
    cells_out = np.fromiter(flat, dtype="int64", count=int(lengths.sum()))
    return np.repeat(np.arange(len(rings)), lengths), cells_out


def cells_to_polygon(cells: np.ndarray) -> shapely.Geometry:
    """Union of H3 cells as a shapely (Multi)Polygon in lon/lat."""
    geo = h3.cells_to_geo([h3.int_to_str(int(c)) for c in cells])
    return shape(geo)


def edge_length_m(resolution: int) -> float:
    """Average hexagon edge length in metres at ``resolution``."""
    return float(h3.average_hexagon_edge_length(resolution, "m"))
