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


def _across_m(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Brute-force great-circle distances (m) between every pair of points (degrees)."""
    phi, lam = np.radians(lat), np.radians(lon)
    a = (
        np.sin((phi[:, None] - phi[None, :]) / 2) ** 2
        + np.cos(phi[:, None])
        * np.cos(phi[None, :])
        * np.sin((lam[:, None] - lam[None, :]) / 2) ** 2
    )
    return 2 * 6_371_008.8 * np.arcsin(np.sqrt(np.clip(a, 0, 1)))


def _widest_m(cells: pd.DataFrame, site: pd.Series) -> float:
    """The greatest distance between two cells of one site, by brute force."""
    widest = 0.0
    for _, members in cells.groupby(site.to_numpy()):
        if len(members) > 1:
            across = _across_m(members["lat"].to_numpy(), members["lon"].to_numpy())
            widest = max(widest, float(across.max()))
    return widest


def test_a_chain_of_cells_100_m_apart_is_not_one_site() -> None:
    """21 cells 100 m apart over 2 km: linking neighbours would make one site of them."""
    d = 0.0009  # ~100 m of latitude
    cells = frame_of([("GSM", 1, 1, 100 + i, -78.5, -0.2 + i * d) for i in range(21)])
    site = group_sites(cells, site_distance_m=150)
    assert _widest_m(cells, site) <= 300
    assert site.nunique() >= 7  # 2 km in pieces no wider than 300 m
    # The same chain as LTE cells of different eNBs, and as UMTS cells of different RNCs.
    lte = cells.assign(radio="LTE", cell=(1000 + np.arange(21)) * 256 + 1)
    assert _widest_m(lte, group_sites(lte)) <= 300
    umts = cells.assign(radio="UMTS", cell=(1 + np.arange(21)) * 65_536 + 11)
    assert _widest_m(umts, group_sites(umts)) <= 300


def test_cells_scattered_at_random_make_sites_no_wider_than_the_bounds() -> None:
    rng = np.random.default_rng(11)
    n = 400
    cells = pd.DataFrame(
        {"radio": "GSM", "mcc": 740, "net": rng.integers(0, 2, n), "area": 1,
         "cell": np.arange(n), "lon": -78.5 + rng.normal(0, 0.004, n),
         "lat": -0.2 + rng.normal(0, 0.004, n)}
    )  # fmt: skip
    site = group_sites(cells, site_distance_m=150)
    # No shared id (cell numbers end in 0 as often as in any digit): co-location only.
    assert _widest_m(cells, site) <= 300
    assert (cells.groupby(site.to_numpy())["net"].nunique() == 1).all()
    # Greedy, not chaining: a cell alone in its site has no other lone cell within 150 m.
    alone = site.map(site.value_counts()).eq(1).to_numpy()
    across = _across_m(cells["lat"].to_numpy()[alone], cells["lon"].to_numpy()[alone])
    same_net = cells["net"].to_numpy()[alone]
    close = (across <= 150) & (same_net[:, None] == same_net[None, :])
    assert not (close & ~np.eye(alone.sum(), dtype=bool)).any()


def test_one_mast_with_three_radios_is_one_site() -> None:
    d = 0.0003  # ~33 m
    cells = frame_of([
        ("GSM", 1, 3, 20_001, -78.5, -0.2),
        ("GSM", 1, 3, 20_002, -78.5 + d, -0.2),
        ("UMTS", 1, 3, 7 * 65_536 + 4_501, -78.5, -0.2 + d),
        ("UMTS", 1, 3, 7 * 65_536 + 4_502, -78.5 - d, -0.2),
        ("LTE", 1, 9, 888 * 256 + 11, -78.5, -0.2 - d),
        ("LTE", 1, 9, 888 * 256 + 12, -78.5 + d, -0.2 + d),
        ("LTE", 2, 9, 999 * 256 + 1, -78.5, -0.2),  # other network on the same mast
    ])  # fmt: skip
    site = group_sites(cells)
    assert site[:6].nunique() == 1 and site[6] != site[0]
    assert site[0] == "740-1:3:20001"


def test_umts_nodeb_from_decimal_sectors_only_where_the_network_numbers_them_so() -> None:
    """Network 1 numbers cid = site * 10 + sector (1..3): the sectors of one NodeB join
    although their positions lie 600 m apart. Network 2 numbers cells with every last
    digit alike, so cid // 10 means nothing there and the same layout stays apart."""
    rng = np.random.default_rng(5)
    rows = []
    for net, sectors in ((1, (1, 2, 3)), (2, (0, 4, 7))):
        for s in range(30):  # 30 NodeBs, 5 km apart
            lon, lat = -78.0 + s * 0.045, -1.0
            for k, sector in enumerate(sectors):
                angle = 2 * np.pi * k / 3 + rng.uniform(0, 0.3)
                cid = 40 * 65_536 + (100 + s) * 10 + sector
                dx, dy = 0.0027 * np.sin(angle), 0.0027 * np.cos(angle)  # 300 m out
                rows.append(("UMTS", net, 5, cid, lon + dx, lat + dy))
    cells = frame_of(rows)
    site = group_sites(cells)
    net = cells["net"].to_numpy()
    assert site[net == 1].nunique() == 30
    assert site[net == 2].nunique() == 90


def test_site_ids_stay_unique_when_radios_share_a_cell_number() -> None:
    cells = frame_of([
        ("LTE", 1, 7, 51_204_107, -79.878, -2.0907),
        ("UMTS", 1, 7, 51_204_107, -79.883, -2.0518),  # 4 km away: another mast
    ])  # fmt: skip
    site = group_sites(cells)
    assert site.tolist() == ["740-1:7:51204107", "740-1:7:51204107/UMTS"]


def test_cell_report_counts_sites_and_the_largest(tmp_path: Path) -> None:
    d = 0.0009
    rows = [HEADER] + [cell("GSM", 1, 1, 100 + i, -78.5, -0.2 + i * d) for i in range(21)]
    path = tmp_path / "chain.csv"
    path.write_text("\n".join(rows) + "\n")
    result = read_cells(path)
    report = result.report
    assert report.sites == result.frame["site_id"].nunique()
    sizes = result.frame["site_id"].value_counts()
    assert report.largest_site_cells == sizes.max()
    assert 0 < report.largest_site_diameter_m <= 300
    assert report.to_dict()["sites"] == report.sites
    assert f"{report.sites} sites; largest: {report.largest_site_cells} cells" in report.summary()


def test_ecuador_sites_are_physical(shared_data: Path) -> None:
    """The real export: no chains across a city, no site wider than twice the identity
    radius, and every eNB whose cells lie near its median position is one site."""
    from dcm.ingest.cells import IDENTITY_RADIUS_M

    result = read_cells(shared_data / "opencellid" / "ecuador_740.csv.gz")
    frame, report = result.frame, result.report
    sizes = frame["site_id"].value_counts()
    assert report.sites == len(sizes) > 25_000
    assert report.largest_site_cells == sizes.max() < 100  # was 6,377 when chaining
    assert report.largest_site_diameter_m <= 2 * IDENTITY_RADIUS_M
    assert sizes[sizes > 20].sum() < 0.1 * len(frame)  # was 37 %
    # Widest site by brute force, for every site (sites are small).
    pos = frame[["site_id", "lat", "lon"]].reset_index()
    pairs = pos.merge(pos, on="site_id")
    pairs = pairs[pairs["index_x"] < pairs["index_y"]]
    phi1, phi2 = np.radians(pairs["lat_x"]), np.radians(pairs["lat_y"])
    dlam = np.radians(pairs["lon_y"] - pairs["lon_x"])
    a = np.sin((phi2 - phi1) / 2) ** 2 + np.cos(phi1) * np.cos(phi2) * np.sin(dlam / 2) ** 2
    assert (2 * 6_371_008.8 * np.arcsin(np.sqrt(a))).max() <= 2 * IDENTITY_RADIUS_M
    # LTE: eNBs whose cells all lie within the identity radius of their median are whole.
    lte = frame[frame["radio"] == "LTE"].assign(enb=lambda x: x["cell"].to_numpy() >> 8)
    grouped = lte.groupby(["network", "enb"])
    off = np.hypot(
        (lte["lat"] - grouped["lat"].transform("median")) * 111_195,
        (lte["lon"] - grouped["lon"].transform("median"))
        * 111_195
        * np.cos(np.radians(lte["lat"])),
    )
    compact = off.groupby([lte["network"], lte["enb"]]).transform("max") < 0.99 * IDENTITY_RADIUS_M
    whole = lte[compact.to_numpy()].groupby(["network", "enb"])["site_id"].nunique()
    assert len(whole) > 2_000 and (whole == 1).all()
    # The same sites whatever the row order.
    shuffled = frame.sample(frac=1, random_state=7)
    assert group_sites(shuffled).reindex(frame.index).equals(frame["site_id"])
