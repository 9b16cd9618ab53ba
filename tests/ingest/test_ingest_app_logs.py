"""G-NetTrack Pro logs and Tower Collector exports → canonical measurements."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from dcm.errors import IngestError
from dcm.ingest import read_gnettrack, read_towercollector, sniff_kind
from dcm.schema import MEASUREMENT_COLUMNS, validate_frame

GNT_HEADER = (
    "Timestamp\tLongitude\tLatitude\tSpeed\tOperatorname\tOperator\tCGI\tCellname\tNode\t"
    "CellID\tLAC\tNetworkTech\tNetworkMode\tLevel\tQual\tSNR\tCQI\tLTERSSI\tARFCN\t"
    "DL_bitrate\tUL_bitrate\tPINGAVG\tAccuracy\tState"
)


def gnt_row(ts: str, lat: str = "13.4745", **kw: str) -> str:
    values = {
        "Timestamp": ts, "Longitude": "144.7937", "Latitude": lat, "Speed": "12",
        "Operatorname": "GTA", "Operator": "310470", "CGI": "", "Cellname": "", "Node": "1290",
        "CellID": "1", "LAC": "1200", "NetworkTech": "4G", "NetworkMode": "LTE",
        "Level": "-95", "Qual": "-11", "SNR": "12", "CQI": "9", "LTERSSI": "-65",
        "ARFCN": "5230", "DL_bitrate": "1200", "UL_bitrate": "300", "PINGAVG": "48",
        "Accuracy": "6", "State": "D",
    }  # fmt: skip
    values.update(kw)
    return "\t".join(values[c] for c in GNT_HEADER.split("\t"))


def test_gnettrack_log_maps_to_canonical(tmp_path: Path) -> None:
    path = tmp_path / "gnettrack.txt"
    lines = [
        GNT_HEADER,
        gnt_row("2023.05.24_14.03.10"),
        gnt_row("2023.05.24_14.03.11", NetworkTech="3G", NetworkMode="HSPA+", CellID="20001",
                Node="77"),
        gnt_row("2023.05.24_14.03.12", Operator="", CellID="-", Node="", LAC="", Level="-",
                NetworkTech="", NetworkMode="", DL_bitrate="0", UL_bitrate="0"),
        gnt_row("2023.05.24_14.03.13", lat="95"),  # line 5
        gnt_row("24/05/2023 14:03"),  # line 6
    ]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    assert sniff_kind(path) == "gnettrack"
    result = read_gnettrack(path, timezone="Pacific/Guam", device="phone-1")
    frame = result.frame
    validate_frame(frame, MEASUREMENT_COLUMNS, name="gnettrack")
    assert result.report.kind == "gnettrack"
    # Guam is UTC+10 all year.
    assert frame["timestamp"].iloc[0] == pd.Timestamp("2023-05-24T04:03:10Z")
    assert frame["network"].iloc[0] == "310-470"
    assert frame["radio"].tolist()[:2] == ["LTE", "UMTS"]
    assert frame["cell"].tolist()[:2] == [1290 * 256 + 1, 77 * 65536 + 20001]
    assert frame["status"].tolist() == ["ok", "ok", "no_service"]
    assert frame["download_kbps"].iloc[0] == 1200 and frame["latency_ms"].iloc[0] == 48
    assert frame["device"].nunique() == 1 and "phone" not in frame["device"].iloc[0]
    assert [(r.line, r.field) for r in result.report.rejected] == [(5, "lat"), (6, "timestamp")]


def test_gnettrack_fixed_offset_and_comma_export(tmp_path: Path) -> None:
    path = tmp_path / "gnettrack.csv"
    text = "\n".join([GNT_HEADER, gnt_row("2023.05.24_14.03.10")]).replace("\t", ",")
    path.write_text(text)
    frame = read_gnettrack(path, timezone="-04:00").frame
    assert frame["timestamp"].iloc[0] == pd.Timestamp("2023-05-24T18:03:10Z")
    with pytest.raises(IngestError, match="time zone"):
        read_gnettrack(path)
    with pytest.raises(IngestError, match="time zone"):
        read_gnettrack(path, timezone="Mars/Olympus_Mons")


def test_gnettrack_clock_changes_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "gnettrack.txt"
    # New York skipped 02:00-03:00 on 2023-03-12.
    lines = [GNT_HEADER, gnt_row("2023.03.12_02.30.00"), gnt_row("2023.03.12_03.30.00")]
    path.write_text("\n".join(lines))
    result = read_gnettrack(path, timezone="America/New_York")
    assert result.frame["timestamp"].tolist() == [pd.Timestamp("2023-03-12T07:30Z")]
    assert [(r.line, r.field) for r in result.report.rejected] == [(2, "timestamp")]
    assert "skipped or repeated" in result.report.rejected[0].reason


def test_gnettrack_network_for_logs_without_operator_codes(tmp_path: Path) -> None:
    path = tmp_path / "gnettrack.txt"
    lines = [
        GNT_HEADER,
        gnt_row("2023.05.24_14.03.10", Operator=""),
        gnt_row("2023.05.24_14.03.11"),
    ]
    path.write_text("\n".join(lines))
    frame = read_gnettrack(path, timezone="UTC", network="310-140").frame
    assert frame["network"].tolist() == ["310-140", "310-470"]  # the log's own code wins
    with pytest.raises(IngestError, match="MCC-MNC"):
        read_gnettrack(path, timezone="UTC", network="Docomo")


def test_gnettrack_without_its_columns_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.txt"
    path.write_text("a\tb\n1\t2\n")
    with pytest.raises(IngestError, match="not a G-NetTrack log"):
        read_gnettrack(path, timezone="UTC")


TC_HEADER = (
    "mcc,mnc,lac,cell_id,psc,asu,dbm,ta,lat,lon,accuracy,speed,bearing,altitude,"
    "measured_at,net_type,neighboring,device"
)


def test_towercollector_export(tmp_path: Path) -> None:
    rows = [
        TC_HEADER,
        "310,470,1200,330241,,30,-95,,13.47450000,144.79370000,5,0,0,10,"
        '"2023-05-24T04:03:10.000Z",LTE,false,"Google Pixel 7"',
        ",-1,-1,2147483647,120,20,-110,,13.47450000,144.79370000,5,0,0,10,"
        '"2023-05-24T04:03:10.000Z",LTE,true,"Google Pixel 7"',
        "310,470,1200,1234,,,,,13.47460000,144.79370000,5,0,0,10,"
        '"2023-05-24T04:03:11.000Z",UNKNOWN,false,"Google Pixel 7"',
        "310,470,1200,4321,,,-101,,13.47460000,144.79370000,5,0,0,10,"
        '"2023-05-24 04:03:11",GSM,false,"Google Pixel 7"',
    ]
    path = tmp_path / "towercollector.csv"
    path.write_bytes(("\r\n".join(rows) + "\r\n").encode())
    assert sniff_kind(path) == "towercollector"
    result = read_towercollector(path)
    frame = result.frame
    validate_frame(frame, MEASUREMENT_COLUMNS, name="towercollector")
    assert frame["cell"].tolist() == [330241, 1234]
    assert frame["radio"].iloc[0] == "LTE" and pd.isna(frame["radio"].iloc[1])
    assert frame["signal_dbm"].iloc[0] == -95 and frame["accuracy_m"].iloc[0] == 5
    assert frame["timestamp"].iloc[0] == pd.Timestamp("2023-05-24T04:03:10Z")
    assert (frame["status"] == "ok").all()
    assert [(r.line, r.field) for r in result.report.rejected] == [
        (3, "neighboring"),
        (5, "timestamp"),
    ]
