"""Small inputs and a CLI runner shared by the live-service command tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dcm.cli.main import main

START = pd.Timestamp("2021-04-09T00:00:00Z")


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run ``dcm ARGV`` in-process; returns (exit code, stdout, stderr)."""
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def write_measurements(path: Path, start: pd.Timestamp, hours: int, *, seed: int) -> pd.DataFrame:
    """Random ok measurements over ``hours`` from ``start`` on two networks, written to
    ``path`` as canonical CSV in random time order; returns the frame written."""
    rng = np.random.default_rng(seed)
    n = hours * 150
    frame = pd.DataFrame(
        {
            "timestamp": (start + pd.to_timedelta(rng.uniform(0, hours * 3600, n), unit="s"))
            .floor("s")
            .strftime("%Y-%m-%dT%H:%M:%SZ"),
            "lat": rng.uniform(13.20, 13.26, n).round(6),
            "lon": rng.uniform(-61.26, -61.20, n).round(6),
            "status": "ok",
            "mcc": 360,
            "mnc": rng.choice([10, 50], n),
            "device": [f"d{i}" for i in rng.integers(0, 50, n)],
            "measurement_id": [f"{seed}-{i}" for i in range(n)],
        }
    )
    frame.to_csv(path, index=False)
    return frame


def write_cells(path: Path) -> Path:
    """Two LTE cells, one per network, as an OpenCelliD export with header."""
    path.write_text(
        "radio,mcc,net,area,cell,unit,lon,lat,range,samples,changeable,created,updated,"
        "averageSignal\n"
        "LTE,360,10,110,1,0,-61.23,13.23,2000,10,1,1600000000,1610000000,-90\n"
        "LTE,360,50,150,2,0,-61.22,13.22,2000,10,1,1600000000,1610000000,-90\n"
    )
    return path
