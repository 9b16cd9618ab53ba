"""OpenCelliD / Mozilla Location Service cell exports, and grouping cells into sites."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dcm.errors import IngestError
from dcm.ingest import _fields as f
from dcm.ingest._csv import read_csv_strings
from dcm.ingest._source import Source, decode_utf8, read_bytes, source_name
from dcm.ingest.report import IngestReport, IngestResult
from dcm.schema import CELL_COLUMNS, OPENCELLID_COLUMNS, RADIOS, network_key

EARTH_RADIUS_M = 6_371_008.8

#: Members of one base-station id (LTE eNB, NR gNB, UMTS NodeB, GSM site number) farther
#: than this from the id's median position are split off (m): ids are reused far apart
#: after re-planning. Crowdsourced cell positions lie far from the mast, pulled toward
#: where each sector is heard: of Ecuador's LTE cells in a multi-cell eNB, a third lie
#: over 500 m from its median position, one in seven over 1 km, one in 25 over 2.5 km.
#: Splitting those off leaves a mast's sectors as sites of their own, each too quiet
#: to judge. No site is wider than twice this.
IDENTITY_RADIUS_M = 2_500.0

#: NR cell id (NCI, 36 bits) = gNB id * 2**(36 - gNB bits) + cell: gNB ids are 22..32 bits
#: long. A shift of 12 takes the gNB of the common 24-bit ids exactly and, for 22-bit ids,
#: gNB * 4 + (local cell >> 12), the same number for every cell below 4096.
NR_GNB_SHIFT = 12

#: A network numbers GSM CI / UMTS cid as ``site * 10 + sector`` when the last digit 0 is
#: this rare among its cells (sectors counted from 1; 10 % when the digit means nothing).
DECIMAL_SECTOR_MAX_ZERO_SHARE = 0.05

#: Fewest cells of one network and radio needed to judge how it numbers its cells.
DECIMAL_SECTOR_MIN_CELLS = 50

#: Columns of a measurement file that no cell export has.
MEASUREMENT_ONLY_COLUMNS = frozenset({"timestamp", "status", "signal_dbm", "measurement_id"})

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
    data = decode_utf8(read_bytes(source, name=label, line_based=True), name=label)
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
        measured = sorted(c for c in lowered if c in MEASUREMENT_ONLY_COLUMNS)
        if measured:
            raise IngestError(
                f"not a cell export: the header has measurement columns {measured} (a "
                "measurement file needs timestamp,lat,lon,status; read it as measurements)",
                path=label,
            )
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
    largest_cells, largest_diameter = largest_site(frame)
    report = IngestReport(
        path=label,
        kind="cells",
        rows_in=table.rows_in,
        accepted=len(frame),
        duplicates=len(dup_index),
        rejected=rejected,
        sites=int(frame["site_id"].nunique()),
        largest_site_cells=largest_cells,
        largest_site_diameter_m=largest_diameter,
    )
    return IngestResult(frame=frame, report=report)


def group_sites(
    cells: pd.DataFrame,
    *,
    site_distance_m: float = 150.0,
    identity_radius_m: float = IDENTITY_RADIUS_M,
) -> pd.Series:
    """``site_id`` per cell: one physical site (mast) per group, never a chain of them.

    Two steps, both within one network (``mcc``, ``net``):

    1. *Identity.* Cells sharing a base-station id form a unit: LTE eNB (``cell >> 8``),
       NR gNB (``cell >> 12``), UMTS NodeB (RNC ``cell >> 16`` with cid ``cell & 0xFFFF``,
       or ``cid // 10`` when the network numbers sectors in the last decimal digit),
       GSM site (``cell // 10`` under the same rule, else the CI itself). Members farther
       than ``identity_radius_m`` from the unit's median position are split off as
       single cells (ids are reused far apart).
    2. *Co-location.* Units of any radio join a leader unit whose median position is
       within ``site_distance_m`` of theirs, provided every member then lies within
       ``identity_radius_m`` of the leader's position. Leaders are the units with the
       most cells among their neighbours, so groups never chain: no site is wider than
       ``2 * identity_radius_m``, and a site of cells without a shared id no wider than
       ``2 * site_distance_m``.

    The id is ``"MCC-MNC:AREA:CELL"`` of the site's lowest (area, cell), so it does not
    depend on row order. Input needs ``radio, mcc, net, area, cell, lon, lat``.
    """
    n = len(cells)
    if n == 0:
        return pd.Series([], index=cells.index, dtype="string")
    mcc = cells["mcc"].to_numpy(dtype="int64")
    net = cells["net"].to_numpy(dtype="int64")
    network_code = pd.factorize(mcc * 100_000 + net)[0].astype("int64")
    cell = cells["cell"].to_numpy(dtype="int64")
    area = cells["area"].to_numpy(dtype="int64")
    radio = cells["radio"].astype("string").fillna("").to_numpy(dtype=object)
    lat = np.radians(cells["lat"].to_numpy(dtype="float64"))
    lon = np.radians(cells["lon"].to_numpy(dtype="float64"))

    # 1. Identity units: kept members of one base-station id share a unit, every other
    # cell is a unit of its own.
    node, has_id = _base_station_id(radio, network_code, cell)
    ident = pd.DataFrame({"net": network_code, "radio": radio, "node": node})
    ident_code = ident.groupby(["net", "radio", "node"], sort=False).ngroup().to_numpy()
    by_ident = pd.DataFrame({"g": ident_code, "lat": lat, "lon": lon}).groupby("g")
    mid_lat = np.where(has_id, by_ident["lat"].transform("median").to_numpy(), lat)
    mid_lon = np.where(has_id, by_ident["lon"].transform("median").to_numpy(), lon)
    dist = _haversine_m(lat, lon, mid_lat, mid_lon)
    kept = has_id & (dist <= identity_radius_m)
    unit_key = np.where(kept, ident_code, ident_code.max() + 1 + np.arange(n))
    unit_of = pd.factorize(unit_key)[0]
    units = int(unit_of.max()) + 1
    first = np.zeros(units, dtype=np.int64)
    first[unit_of[::-1]] = np.arange(n)[::-1]  # first row of each unit
    # A unit sits at the mean position of its members: sectors pull a cell's position
    # toward where it is heard, and the mean of a mast's sectors cancels those pulls.
    size = np.bincount(unit_of, minlength=units)
    u_lat = np.bincount(unit_of, weights=lat, minlength=units) / size
    u_lon = np.bincount(unit_of, weights=lon, minlength=units) / size
    u_radius = np.zeros(units)
    np.maximum.at(u_radius, unit_of, _haversine_m(lat, lon, u_lat[unit_of], u_lon[unit_of]))

    # Ties between units of equal size go by a hash of their members (not row order).
    tiebreak = np.full(units, np.iinfo(np.uint64).max, dtype=np.uint64)
    np.minimum.at(tiebreak, unit_of, pd.util.hash_array(cell * 1_000_003 + area))

    # 2. Co-location of units, bounded.
    leader = _colocate(
        u_lat,
        u_lon,
        network_code[first],
        radius=u_radius,
        size=size,
        tiebreak=tiebreak,
        link_m=site_distance_m,
        max_radius_m=identity_radius_m,
    )
    labels = leader[unit_of]

    return _site_ids(cells, labels, radio=radio, area=area, cell=cell)


def _site_ids(
    cells: pd.DataFrame,
    labels: np.ndarray,
    *,
    radio: np.ndarray,
    area: np.ndarray,
    cell: np.ndarray,
) -> pd.Series:
    """``"MCC-MNC:AREA:CELL"`` of each site's lowest (area, cell, radio name) member. Cells of
    two radios can share area and cell number; when two sites would get the same id that
    way, the later radio's site gets ``"/RADIO"`` appended, so ids stay unique."""
    radio_code = np.unique(radio.astype(str), return_inverse=True)[1]  # by name
    order = np.lexsort((radio_code, cell, area, labels))
    first = np.r_[True, labels[order][1:] != labels[order][:-1]]
    rp = order[first]  # the lowest member of each site, sites in label order
    network = network_key(cells["mcc"].iloc[rp], cells["net"].iloc[rp]).to_numpy(dtype=object)
    text = (
        pd.Series(network, dtype="string")
        + ":"
        + pd.Series(area[rp]).astype("string")
        + ":"
        + pd.Series(cell[rp]).astype("string")
    ).to_numpy(dtype=object)
    if pd.Series(text).duplicated().any():
        by_text = np.lexsort((radio_code[rp], text.astype(str)))
        later = np.zeros(len(rp), dtype=bool)
        later[by_text] = pd.Series(text[by_text]).duplicated().to_numpy()
        text[later] = text[later] + "/" + radio[rp][later].astype(str)
    # Labels are leader unit numbers: map each to its site's position in label order.
    site_of_label = np.empty(int(labels.max()) + 1, dtype=np.int64)
    site_of_label[labels[rp]] = np.arange(len(rp))
    return pd.Series(text[site_of_label[labels]], index=cells.index, dtype="string")


def largest_site(cells: pd.DataFrame) -> tuple[int, float]:
    """Cell count and diameter (m, greatest great-circle distance between two of its
    cells) of the site with the most cells (the lowest ``site_id`` among equals);
    ``(0, 0.0)`` without cells. Needs ``site_id, lon, lat``."""
    if cells.empty:
        return 0, 0.0
    counts = cells["site_id"].value_counts()
    top = counts[counts == counts.max()].index.min()
    members = cells.loc[cells["site_id"] == top]
    lon, lat = members["lon"].to_numpy(dtype="float64"), members["lat"].to_numpy(dtype="float64")
    if len(members) > 256:
        # The two farthest cells are corners of the convex hull (a site is small enough
        # for degrees to be a plane); this keeps the pairwise matrix small.
        import shapely

        hull = shapely.convex_hull(shapely.multipoints(np.column_stack([lon, lat])))
        corners = shapely.get_coordinates(hull)
        lon, lat = corners[:, 0], corners[:, 1]
    lat, lon = np.radians(lat), np.radians(lon)
    across = _haversine_m(lat[:, None], lon[:, None], lat[None, :], lon[None, :])
    return int(counts.max()), float(across.max())


def _base_station_id(
    radio: np.ndarray, network_code: np.ndarray, cell: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Base-station number per cell (unique within network and radio) and whether the
    radio has one. GSM CI and UMTS cid count as ``site * 10 + sector`` only in networks
    where the last digit 0 is rare (sectors numbered from 1); elsewhere the number is the
    cell's own, which still joins one cell listed under two location areas."""
    lte, nr = radio == "LTE", radio == "NR"
    umts, gsm = radio == "UMTS", radio == "GSM"
    low = np.where(umts, cell & 0xFFFF, cell)  # UMTS cid within its RNC; GSM CI
    counted = pd.DataFrame(
        {"net": network_code, "radio": radio, "zero": (low % 10 == 0).astype("float64")}
    ).groupby(["net", "radio"], sort=False)["zero"]
    decimal = (
        (umts | gsm)
        & (counted.transform("size").to_numpy() >= DECIMAL_SECTOR_MIN_CELLS)
        & (counted.transform("mean").to_numpy() < DECIMAL_SECTOR_MAX_ZERO_SHARE)
    )
    station = np.where(decimal, low // 10, low)
    node = np.select(
        [lte, nr, umts],
        [cell >> 8, cell >> NR_GNB_SHIFT, (cell >> 16) * 65_536 + station],
        default=station,
    )
    return node.astype("int64"), lte | nr | umts | gsm


def _colocate(
    lat: np.ndarray,
    lon: np.ndarray,
    network_code: np.ndarray,
    *,
    radius: np.ndarray,
    size: np.ndarray,
    tiebreak: np.ndarray,
    link_m: float,
    max_radius_m: float,
) -> np.ndarray:
    """Leader unit per unit: greedy clustering with a bounded extent, never chaining.

    Units are points (radians) with the distance ``radius`` of their farthest member.
    In rounds, every unit that outranks (more cells, then ``tiebreak``) all still free
    units within ``link_m`` leads; it takes the free units within ``link_m`` whose
    members all stay within ``max_radius_m`` of it (a unit in reach of two leaders goes
    to the nearer). Leaders are never within ``link_m`` of each other, so each round
    leaves at least the strongest free unit placed and most rounds place nearly all.
    """
    from scipy.spatial import cKDTree

    units = len(lat)
    # Pairs within link_m, exactly: the chord grows monotonically with the great-circle
    # distance, so a k-d tree radius query on Earth-centred coordinates with the matching
    # chord finds the haversine pairs. A fourth coordinate keeps networks apart.
    xyz = np.column_stack(
        [
            EARTH_RADIUS_M * np.cos(lat) * np.cos(lon),
            EARTH_RADIUS_M * np.cos(lat) * np.sin(lon),
            EARTH_RADIUS_M * np.sin(lat),
            network_code.astype("float64") * 1e8,  # 1e8 m > Earth
        ]
    )
    chord = 2 * EARTH_RADIUS_M * np.sin(link_m / (2 * EARTH_RADIUS_M))
    pairs = cKDTree(xyz).query_pairs(chord, output_type="ndarray").astype(np.int64)
    src = np.concatenate([pairs[:, 0], pairs[:, 1]])
    dst = np.concatenate([pairs[:, 1], pairs[:, 0]])
    dist = _haversine_m(lat[src], lon[src], lat[dst], lon[dst])
    fits = (dist + radius[dst] <= max_radius_m) & (radius[src] <= max_radius_m)
    # Rank 0 is the strongest: most cells, then a hash of the unit's first cell (no
    # dependence on row order, and no spatial order that would make rounds crawl).
    rank = np.empty(units, dtype=np.int64)
    rank[np.lexsort((tiebreak, -size))] = np.arange(units)
    leader = np.arange(units)
    free = np.ones(units, dtype=bool)
    while free.any():
        live = free[src] & free[dst]
        s, d = src[live], dst[live]
        best = rank.copy()
        np.minimum.at(best, s, rank[d])
        leads = free & (best == rank)
        take = leads[s] & ~leads[d] & fits[live]
        s, d, dd = s[take], d[take], dist[live][take]
        order = np.lexsort((dd, d))
        d_first = np.unique(d[order], return_index=True)[1]
        leader[d[order][d_first]] = s[order][d_first]
        free[leads] = False
        free[d] = False
    return leader


def _haversine_m(
    lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray
) -> np.ndarray:
    """Great-circle distance in metres between points given in radians."""
    a = (
        np.sin((lat2 - lat1) / 2) ** 2
        + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0, 1)))
