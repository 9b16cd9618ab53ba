"""OpenCelliD / MLS cell exports and site grouping."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dcm.errors import IngestError
from dcm.ingest import group_sites, read_cells
from dcm.schema import CELL_COLUMNS, OPENCELLID_COLUMNS, validate_frame

HEADER = ",".join(OPENCELLID_COLUMNS)


def cell(radio: str, net: int, area: int, cid: int, lon: float, lat: float, **kw: object) -> str:
    values = {
        "radio": radio, "mcc": 740, "net": net, "area": area, "cell": cid, "unit": 0,
        "lon": lon, "lat": lat, "range": 1000, "samples": 5, "changeable": 1,
        "created": 1_600_000_000, "updated": 1_650_000_000, "averageSignal": 0,
    }  # fmt: skip
    values.update(kw)
    return ",".join(str(values[c]) for c in OPENCELLID_COLUMNS)


def frame_of(rows: list[tuple[str, int, int, int, float, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["radio", "net", "area", "cell", "lon", "lat"]).assign(
        mcc=740
    )


def test_ecuador_export_is_read_completely(shared_data: Path) -> None:
    result = read_cells(shared_data / "opencellid" / "ecuador_740.csv.gz")
    report = result.report
    assert report.rows_in == 75_068
    assert report.accepted == 75_068 and not report.rejected and report.duplicates == 0
    frame = result.frame
    validate_frame(frame, CELL_COLUMNS, name="cells")
    assert list(frame.columns) == list(CELL_COLUMNS)
    assert frame["radio"].value_counts().to_dict() == {
        "UMTS": 48_159, "GSM": 19_058, "LTE": 7_849, "CDMA": 2,
    }  # fmt: skip
    assert frame["created"].min() > pd.Timestamp("2005-01-01", tz="UTC")
    assert frame["network"].str.startswith("740-").all()
    # Sites group cells: far fewer sites than cells, none spanning two networks.
    assert frame["site_id"].nunique() < 0.7 * len(frame)
    assert (frame.groupby("site_id")["network"].nunique() == 1).all()


def test_header_or_not_gzip_or_not_give_the_same_frame(tmp_path: Path) -> None:
    rows = [
        cell("GSM", 1, 10, 100, -78.5, -0.2),
        cell("LTE", 2, 20, 5000 * 256 + 1, -78.51, -0.21),
        cell("UMTS", 0, 30, 65_000_001, -79.9, -2.1),
    ]
    plain = tmp_path / "cells.csv"
    plain.write_text("\n".join([HEADER, *rows]) + "\n")
    zipped = tmp_path / "cells_noheader.csv.gz"
    zipped.write_bytes(gzip.compress(("\n".join(rows) + "\n").encode()))
    a, b = read_cells(plain), read_cells(zipped)
    pd.testing.assert_frame_equal(a.frame, b.frame)
    assert a.frame["updated"].iloc[0] == pd.Timestamp(1_650_000_000, unit="s", tz="UTC")


def test_bad_cells_are_reported_and_duplicates_keep_the_newest(tmp_path: Path) -> None:
    rows = [
        HEADER,
        cell("GSM", 1, 10, 100, -78.5, -0.2, updated=1_600_000_001),
        cell("GSM", 1, 10, 100, -78.5, -0.2, updated=1_700_000_000, samples=99),
        cell("WIMAX", 1, 10, 101, -78.5, -0.2),  # line 4
        cell("GSM", 1, 10, 102, -200, -0.2),  # line 5
        "GSM,740,1,10",  # line 6
        cell("GSM", 1, 10, 103, -78.5, -0.2),
    ]
    path = tmp_path / "cells.csv"
    path.write_text("\n".join(rows) + "\n")
    result = read_cells(path)
    assert [(r.line, r.field) for r in result.report.rejected] == [
        (4, "radio"), (5, "lon"), (6, "row"),
    ]  # fmt: skip
    assert result.report.duplicates == 1
    assert result.frame.set_index("cell").loc[100, "samples"] == 99


def test_not_a_cell_export_raises(tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text("a;b\n1;2\n")
    with pytest.raises(IngestError, match="not a cell export"):
        read_cells(path)


def test_sites_from_distance_and_network() -> None:
    d = 0.0009  # ~100 m of latitude
    cells = frame_of([
        ("GSM", 1, 1, 11, -78.5, -0.2),
        ("UMTS", 1, 1, 12, -78.5, -0.2 + d),  # 100 m from the first, same network
        ("GSM", 2, 1, 13, -78.5, -0.2),  # same place, other network
        ("GSM", 1, 1, 14, -78.5, -0.2 + 5 * d),  # 500 m away
    ])  # fmt: skip
    site = group_sites(cells, site_distance_m=150)
    assert site[0] == site[1] == "740-1:1:11"
    assert site[2] != site[0] and site[3] != site[0]
    assert group_sites(cells, site_distance_m=50)[1] != site[0]


def test_lte_cells_of_one_enodeb_form_a_site() -> None:
    d = 0.0009
    enb = 4321
    cells = frame_of([
        ("LTE", 1, 7, enb * 256 + 1, -78.5, -0.2),
        ("LTE", 1, 7, enb * 256 + 2, -78.5, -0.2 + 4 * d),  # 400 m: too far for distance
        ("LTE", 1, 7, enb * 256 + 3, -79.5, -1.2),  # same eNodeB id, 150 km away
        ("LTE", 2, 7, enb * 256 + 4, -78.5, -0.2 + 2 * d),  # same id, other network
    ])  # fmt: skip
    site = group_sites(cells)
    assert site[0] == site[1]
    assert site[2] != site[0] and site[3] != site[0]


def test_site_ids_do_not_depend_on_row_order() -> None:
    rng = np.random.default_rng(3)
    n = 300
    cells = frame_of([
        ("LTE" if i % 3 else "GSM", int(i % 2), 5, int(rng.integers(1, 10**6)),
         -78.5 + rng.normal(0, 0.005), -0.2 + rng.normal(0, 0.005))
        for i in range(n)
    ])  # fmt: skip
    site = group_sites(cells)
    shuffled = cells.sample(frac=1, random_state=1)
    assert group_sites(shuffled).sort_index().equals(site)
    assert group_sites(cells.iloc[:0]).empty


def test_header_in_another_order_with_mnc(tmp_path: Path) -> None:
    path = tmp_path / "cells.csv"
    path.write_text(
        "mcc,mnc,radio,area,cell,lon,lat\n"
        "740,1,GSM,10,100,-78.5,-0.2\n"
        "740,2,LTE,20,1280001,-78.6,-0.3\n"
    )
    frame = read_cells(path).frame
    assert frame["network"].tolist() == ["740-1", "740-2"]
    assert frame["radio"].tolist() == ["GSM", "LTE"] and frame["range"].isna().all()


def test_distance_links_match_a_brute_force_haversine() -> None:
    """The k-d tree chord search links exactly the pairs within the great-circle distance."""
    from scipy.sparse.csgraph import connected_components

    rng = np.random.default_rng(11)
    n = 400
    lat = -0.2 + rng.normal(0, 0.004, n)
    lon = -78.5 + rng.normal(0, 0.004, n)
    net = rng.integers(0, 2, n)
    cells = pd.DataFrame(
        {"radio": "GSM", "mcc": 740, "net": net, "area": 1, "cell": np.arange(n),
         "lon": lon, "lat": lat}
    )  # fmt: skip
    phi, lam = np.radians(lat), np.radians(lon)
    a = (
        np.sin((phi[:, None] - phi[None, :]) / 2) ** 2
        + np.cos(phi[:, None])
        * np.cos(phi[None, :])
        * np.sin((lam[:, None] - lam[None, :]) / 2) ** 2
    )
    dist = 2 * 6_371_008.8 * np.arcsin(np.sqrt(a))
    linked = (dist <= 150) & (net[:, None] == net[None, :])
    _, labels = connected_components(linked, directed=False)
    site = group_sites(cells, site_distance_m=150)
    # Same partition: cells share a site exactly when they share a brute-force component.
    assert pd.crosstab(site, labels).gt(0).sum(axis=1).eq(1).all()
    assert site.nunique() == len(set(labels))
