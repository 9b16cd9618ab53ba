"""OpenCelliD / Mozilla Location Service cell exports, and grouping cells into sites."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from dcm.errors import IngestError
from dcm.ingest import _fields as f
from dcm.ingest._csv import read_csv_strings
from dcm.ingest._source import Source, decode_utf8, read_bytes, source_name
from dcm.ingest.report import IngestReport, IngestResult
from dcm.schema import CELL_COLUMNS, OPENCELLID_COLUMNS, RADIOS, network_key

EARTH_RADIUS_M = 6_371_008.8

#: LTE cells sharing an eNodeB id join one site only within this distance (m): the same
#: eNodeB id can be reused far away after re-planning, and positions are crowdsourced.
ENODEB_MAX_DISTANCE_M = 2_000.0

_RADIO_MAP = {r: r for r in RADIOS} | {"WCDMA": "UMTS"}
_KEY = ["radio", "mcc", "net", "area", "cell"]


def read_cells(
    source: Source, *, site_distance_m: float = 150.0, name: str | None = None
) -> IngestResult:
    """Read an OpenCelliD/MLS export (header optional, plain or gzip) → ``CELL_COLUMNS``.

    ``created``/``updated`` (Unix seconds) become UTC timestamps; ``network`` is
    ``"MCC-MNC"``; ``site_id`` comes from :func:`group_sites`. Duplicate cells (same radio,
    mcc, net, area, cell) keep the most recently updated record.
    """
    label = source_name(source, name)
    data = decode_utf8(read_bytes(source, name=label), name=label)
    first = data.lstrip()[:1000].split(b"\n", 1)[0].decode("utf-8", "replace").lower()
    header_fields = {c.strip().strip('"') for c in first.split(",")}
    has_header = {"radio", "mcc", "cell"} <= header_fields
    names, table = read_csv_strings(
        data, name=label, header=has_header, column_names=list(OPENCELLID_COLUMNS)
    )
    # Some exports say mnc where OpenCelliD says net.
    names = ["net" if n.strip().lower() == "mnc" else n.strip() for n in names]
    if has_header:
        lowered = {n.lower(): n for n in names}
        missing = [c for c in ("radio", "mcc", "net", "area", "cell", "lon", "lat")
                   if c.lower() not in lowered]  # fmt: skip
        if missing:
            raise IngestError(f"not a cell export: missing columns {missing}", path=label)
        table.frame.columns = [
            next((c for c in OPENCELLID_COLUMNS if c.lower() == n.lower()), n) for n in names
        ]
    elif table.rows_in and len(table.rejected) == table.rows_in:
        raise IngestError(
            f"not a cell export: no row has the {len(OPENCELLID_COLUMNS)} OpenCelliD columns "
            f"({','.join(OPENCELLID_COLUMNS)})",
            path=label,
        )
    raw = table.frame
    n = len(raw)

    def col(c: str) -> pd.Series:
        if c in raw.columns:
            return raw[c]
        return pd.Series(pd.NA, index=raw.index, dtype="string")

    errors = f.RowErrors(n)
    out = pd.DataFrame(index=raw.index)
    f.refuse_nul(raw, errors, OPENCELLID_COLUMNS)
    for c in ("radio", "mcc", "net", "area", "cell", "lon", "lat"):
        f.required(col(c), errors, c)
    out["radio"] = f.choices(col("radio"), errors, "radio", _RADIO_MAP)
    out["mcc"] = f.integers(col("mcc"), errors, "mcc", lo=0, hi=999)
    # Real exports carry out-of-spec network codes (e.g. 1000 in Ecuador): keep them.
    out["net"] = f.integers(col("net"), errors, "net", lo=0, hi=99_999)
    out["area"] = f.integers(col("area"), errors, "area", lo=0, hi=2**32)
    out["cell"] = f.integers(col("cell"), errors, "cell", lo=0, hi=2**40)
    # unit (PSC/PCI) is -1 when unknown.
    out["unit"] = f.integers(col("unit"), errors, "unit", lo=-1, hi=2**32)
    out["lon"] = f.floats(col("lon"), errors, "lon", lo=-180, hi=180)
    out["lat"] = f.floats(col("lat"), errors, "lat", lo=-90, hi=90)
    out["range"] = f.floats(col("range"), errors, "range", lo=0)
    out["samples"] = f.integers(col("samples"), errors, "samples", lo=0, hi=2**53)
    out["changeable"] = f.integers(col("changeable"), errors, "changeable", lo=0, hi=1)
    out["created"] = f.unix_seconds(col("created"), errors, "created")
    out["updated"] = f.unix_seconds(col("updated"), errors, "updated")
    out["averageSignal"] = f.floats(col("averageSignal"), errors, "averageSignal")

    bad = errors.bad
    rejected = list(table.rejected)
    if bad.any():
        rejected += errors.rejected(table.lines, table.raw_rows(np.flatnonzero(bad)), raw)
    good = out.loc[~bad]
    for c in ("mcc", "net", "area", "cell"):
        good[c] = good[c].astype("int64")
    # Keep the freshest record of a cell listed twice (exports are appended over time).
    order = good.sort_values("updated", ascending=False, kind="stable", na_position="last")
    dup_index = order.index[order.duplicated(_KEY)]
    frame = good.drop(index=dup_index).reset_index(drop=True)
    frame["network"] = network_key(frame["mcc"], frame["net"])
    frame["site_id"] = group_sites(frame, site_distance_m=site_distance_m)
    frame = frame.astype(CELL_COLUMNS)[list(CELL_COLUMNS)]
    rejected.sort(key=lambda r: r.line)
    report = IngestReport(
        path=label,
        kind="cells",
        rows_in=table.rows_in,
        accepted=len(frame),
        duplicates=len(dup_index),
        rejected=rejected,
    )
    return IngestResult(frame=frame, report=report)


def group_sites(
    cells: pd.DataFrame,
    *,
    site_distance_m: float = 150.0,
    enodeb_max_distance_m: float = ENODEB_MAX_DISTANCE_M,
) -> pd.Series:
    """``site_id`` per cell: cells of one network linked when close or sharing an eNodeB.

    Two cells of the same network (``mcc``, ``net``) are linked when they are within
    ``site_distance_m`` metres (great-circle), or when both are LTE with the same eNodeB
    id (``cell >> 8``) and lie within ``enodeb_max_distance_m`` of that eNodeB's median
    position. Sites are the connected components of those links. The id is
    ``"MCC-MNC:AREA:CELL"`` of the component's lowest (area, cell), so it does not depend
    on row order. Input needs ``radio, mcc, net, area, cell, lon, lat``.
    """
    from scipy.spatial import cKDTree

    n = len(cells)
    if n == 0:
        return pd.Series([], index=cells.index, dtype="string")
    mcc = cells["mcc"].to_numpy(dtype="int64")
    net = cells["net"].to_numpy(dtype="int64")
    network_code = mcc * 100_000 + net
    lat = np.radians(cells["lat"].to_numpy(dtype="float64"))
    lon = np.radians(cells["lon"].to_numpy(dtype="float64"))

    # Neighbours within the site distance, exactly: on the sphere the chord length grows
    # monotonically with the great-circle distance, so a k-d tree radius query on 3-D
    # Earth-centred coordinates with the matching chord finds the same pairs as a
    # haversine search, much faster. A fourth coordinate puts each network far away from
    # the others, so pairs never mix networks.
    xyz = np.column_stack(
        [
            EARTH_RADIUS_M * np.cos(lat) * np.cos(lon),
            EARTH_RADIUS_M * np.cos(lat) * np.sin(lon),
            EARTH_RADIUS_M * np.sin(lat),
            pd.factorize(network_code)[0].astype("float64") * 1e8,  # 1e8 m > Earth
        ]
    )
    chord = 2 * EARTH_RADIUS_M * np.sin(site_distance_m / (2 * EARTH_RADIUS_M))
    pairs = cKDTree(xyz).query_pairs(chord, output_type="ndarray")
    rows, cols = pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64)

    # LTE: cells of one eNodeB (ECI >> 8) near the eNodeB's median position form a star.
    radio = cells["radio"].astype("string").to_numpy(dtype=object)
    lte = radio == "LTE"
    if lte.any():
        idx = np.flatnonzero(lte)
        enb = pd.DataFrame(
            {
                "net": network_code[idx],
                "enb": cells["cell"].to_numpy(dtype="int64")[idx] >> 8,
                "lat": lat[idx],
                "lon": lon[idx],
                "i": idx,
            }
        )
        grouped = enb.groupby(["net", "enb"], sort=False)
        mid_lat = grouped["lat"].transform("median").to_numpy()
        mid_lon = grouped["lon"].transform("median").to_numpy()
        dist = _haversine_m(enb["lat"].to_numpy(), enb["lon"].to_numpy(), mid_lat, mid_lon)
        near = dist <= enodeb_max_distance_m
        # Anchor: the lowest-numbered cell of the eNodeB that is near its median position.
        enb["anchor"] = np.where(near, idx, np.nan)
        anchor = enb.groupby(["net", "enb"], sort=False)["anchor"].transform("min").to_numpy()
        link = near & ~np.isnan(anchor)
        rows = np.concatenate([rows, enb["i"].to_numpy()[link]])
        cols = np.concatenate([cols, anchor[link].astype(np.int64)])

    graph = coo_matrix((np.ones(rows.size, dtype=np.int8), (rows, cols)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    key = pd.DataFrame(
        {
            "label": labels,
            "area": cells["area"].to_numpy(dtype="int64"),
            "cell": cells["cell"].to_numpy(dtype="int64"),
            "pos": np.arange(n),
        }
    )
    rep = key.sort_values(["label", "area", "cell"]).drop_duplicates("label")
    rep_pos = rep.set_index("label")["pos"].reindex(labels).to_numpy()
    network = network_key(cells["mcc"], cells["net"]).to_numpy(dtype=object)
    site = (
        pd.Series(network[rep_pos], dtype="string")
        + ":"
        + pd.Series(key["area"].to_numpy()[rep_pos]).astype("string")
        + ":"
        + pd.Series(key["cell"].to_numpy()[rep_pos]).astype("string")
    )
    site.index = cells.index
    return site.astype("string")


def _haversine_m(
    lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray
) -> np.ndarray:
    """Great-circle distance in metres between points given in radians."""
    a = (
        np.sin((lat2 - lat1) / 2) ** 2
        + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0, 1)))
