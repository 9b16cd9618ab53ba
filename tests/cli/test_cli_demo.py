"""``dcm demo``: the summary tells when outages started, peaked and ended."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from click.testing import CliRunner

from dcm.cli.main import cli


@dataclass
class DemoRun:
    code: int
    text: str
    out: Path
    sample: Path


@pytest.fixture(scope="module")
def demo_run(sample_data: Path, tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """``dcm -q demo`` once for the module (it takes a few seconds)."""
    if not (sample_data / "stvincent" / "event.csv.gz").is_file():
        pytest.skip("sample_data/stvincent is absent")
    out = tmp_path_factory.mktemp("demo") / "out"
    result = CliRunner().invoke(cli, ["-q", "demo", "--out", str(out)])
    return DemoRun(result.exit_code, result.output, out, sample_data / "stvincent")


def _utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def test_demo_prints_the_peak_with_people_per_network(demo_run: DemoRun) -> None:
    assert demo_run.code == 0, demo_run.text
    peak = re.search(
        r"^peak: (\d{4}-\d\d-\d\d) (\d\d:\d\d)–(\d\d:\d\d) UTC, ([\d,]+) people with no "
        r"service on any network, ([\d,]+) more with some networks down$",
        demo_run.text,
        re.M,
    )
    assert peak, demo_run.text
    nobody, degraded = (int(peak.group(i).replace(",", "")) for i in (4, 5))
    everyone = nobody + degraded
    assert everyone > 0
    # Each figure is the people of the all-network outages of that severity at the peak.
    outages = gpd.read_file(demo_run.out / "outages.geojson")
    end = _utc(peak.group(1)).normalize() + pd.Timedelta(f"{peak.group(3)}:00")
    at_peak = outages[
        (pd.to_datetime(outages["window_end"], utc=True) == end)
        & (outages["network"] == "all")
        & (outages["tier"] == "confirmed")
    ]
    people = at_peak.groupby("severity")["population"].sum()
    assert abs(people.get("outage", 0.0) - nobody) <= 1
    assert abs(people.get("degraded", 0.0) - degraded) <= 1
    per_network = re.search(r"^  at the peak per network: (.+)$", demo_run.text, re.M)
    assert per_network, demo_run.text
    counts = {
        net: int(n.replace(",", ""))
        for net, n in re.findall(r"(\d{3}-\d{2,3}) ([\d,]+)", per_network.group(1))
    }
    assert len(counts) >= 2 and max(counts.values()) > 0
    # One network's outages are a part of where some network is down.
    assert max(counts.values()) <= everyone
    # The peak agrees with the per-network peak the summary already prints for "all".
    all_peak = re.search(r"^\s+all: .*\(peak ([\d,]+)\)", demo_run.text, re.M)
    assert all_peak and abs(int(all_peak.group(1).replace(",", "")) - everyone) <= 1


def test_demo_names_areas_and_the_restoration_after_onset(demo_run: DemoRun) -> None:
    areas = re.search(r"^  most affected areas at the peak: (.+) people$", demo_run.text, re.M)
    assert areas, demo_run.text
    names = re.findall(r"([A-Z][A-Za-z ]+) ≈([\d,]+)", areas.group(1))
    known = set(gpd.read_file(demo_run.sample / "areas.geojson")["name"])
    assert names and {name for name, _ in names} <= known
    people = [int(n.replace(",", "")) for _, n in names]
    assert people == sorted(people, reverse=True) and people[0] > 0
    # The sample's last site comes back 10 h before its data ends, at night: the demo
    # may still see that outage open at the end ("… still open at the end of the data").
    times = re.search(
        r"^outages began (\S+ \S+) UTC; (?:last outage ended|\d+ outage\(s\) still open at "
        r"the end of the data \()(\S+ \S+) UTC",
        demo_run.text,
        re.M,
    )
    assert times, demo_run.text
    onset, ended = _utc(times.group(1)), _utc(times.group(2))
    peak = re.search(r"^peak: (\S+) (\d\d:\d\d)–", demo_run.text, re.M)
    assert peak
    peak_start = _utc(f"{peak.group(1)} {peak.group(2)}")
    assert onset <= peak_start < ended
    lines = demo_run.text.strip().splitlines()
    assert len(lines) <= 20  # a summary, not a report


def test_demo_map_opens_at_the_peak_and_stays_small(demo_run: DemoRun) -> None:
    page = (demo_run.out / "map.html").read_text(encoding="utf-8")
    peak = re.search(r"^peak: (\S+ \d\d:\d\d)–(\d\d:\d\d) UTC", demo_run.text, re.M)
    assert peak
    start = _utc(peak.group(1))
    end = start.normalize() + pd.Timedelta(f"{peak.group(2)}:00")
    end += pd.Timedelta(days=1) if end <= start else pd.Timedelta(0)
    selected = re.search(r'"selected":(\d+)', page)
    ends = re.findall(r'\{"end":"([^"]+)"', page)
    assert selected and ends
    assert ends[int(selected.group(1))] == f"{end:%Y-%m-%dT%H:%M}Z"
    assert len(page.encode()) < 2_000_000
    # The cells come from an OpenCelliD-format list: its licence is named under the legend.
    assert "OpenCelliD contributors, CC BY-SA 4.0" in page


def test_no_all_clear_while_sites_stay_offline() -> None:
    """The last outage polygon ended, but a site is still offline at the data's end: the
    summary says so instead of "last outage ended"."""
    from types import SimpleNamespace

    import shapely

    from dcm.cli.demo import timeline_lines

    t0 = _utc("2021-04-14 14:00")
    outages = gpd.GeoDataFrame(
        {
            "outage_id": ["a", "b"],
            "window_start": [t0, t0],
            "window_end": [t0 + pd.Timedelta("1h")] * 2,
            "network": ["360-100", "all"],
            "severity": ["outage", "outage"],
            "tier": ["confirmed", "confirmed"],
            "population": [120.0, 120.0],
            "onset": [t0, t0],
        },
        geometry=[shapely.box(0, 0, 0.01, 0.01)] * 2,
        crs="EPSG:4326",
    )
    end = _utc("2021-04-16 13:00")

    def lines(status: str) -> list[str]:
        cells = pd.DataFrame(
            {
                "site_id": ["s1", "s1", "s2"],
                "status": [status, status, "online"],
                "start": [t0] * 3,
                "end": [end] * 3,
            }
        )
        result = SimpleNamespace(
            outages=outages, cells=cells, areas=None, summary={"windows": {"last_end": end}}
        )
        return timeline_lines(result)

    offline = lines("offline")
    assert offline[0] == (
        "peak: 2021-04-14 14:00–15:00 UTC, 120 people with no service on any network, "
        "0 more with some networks down"
    )
    assert offline[-1] == (
        "outages began 2021-04-14 14:00 UTC; no outage area after 2021-04-14 15:00 UTC, but "
        "1 site(s) still offline at the end of the data (2021-04-16 13:00 UTC)"
    )
    assert lines("online")[-1] == (
        "outages began 2021-04-14 14:00 UTC; last outage ended 2021-04-14 15:00 UTC "
        "(none seen in later windows)"
    )
