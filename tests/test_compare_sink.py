"""The grid sink of dcm.compare: parts written by a thread beside the judging."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from dcm.compare import SINK_PENDING_PARTS, _GridSink
from dcm.publish.tables import ParquetAppender

STATES = pd.CategoricalDtype(["up", "down", "no_data"])


def _parts(seed: int) -> list[pd.DataFrame]:
    rng = np.random.default_rng(seed)
    hexes = pd.CategoricalDtype([f"88{i:013x}" for i in range(500)])
    starts = pd.date_range("2024-03-11", periods=12, freq="1h", tz="UTC")
    parts = []
    for k in range(40):
        n = int(rng.choice([0, 1, 37, 400, 900]))
        parts.append(
            pd.DataFrame(
                {
                    "h3": pd.Categorical.from_codes(rng.integers(0, 500, n), dtype=hexes),
                    "window_start": np.repeat(starts[k % 12 : k % 12 + 1], n),
                    "expected_count": rng.gamma(1.0, 2.0, n),
                    "ok_count": rng.integers(0, 9, n),
                    "state": pd.Categorical.from_codes(rng.integers(0, 3, n), dtype=STATES),
                }
            )
        )
    return parts


@pytest.mark.parametrize("seed", [0, 1])
def test_sink_writes_the_file_written_part_by_part_in_order(seed: int, tmp_path: Path) -> None:
    parts = _parts(seed)
    last = parts[-1]["window_start"].iloc[0] if len(parts[-1]) else pd.Timestamp(0, tz="UTC")
    sink = _GridSink(tmp_path / "sink.parquet", last=last)
    sink.file.row_group_rows = 1000  # several row groups, parts across their bounds
    for part in parts:
        sink.write(part)
        assert len(sink._pending) <= SINK_PENDING_PARTS
    sink.close()
    with ParquetAppender(tmp_path / "direct.parquet", row_group_rows=1000) as direct:
        for part in parts:
            direct.write(part)
    assert (tmp_path / "sink.parquet").read_bytes() == (tmp_path / "direct.parquet").read_bytes()
    assert sink.seconds > 0
    # Kept: the rows of the last window, else those not up and each part's first row.
    want = [
        p
        if len(p) and p["window_start"].iloc[0] == last
        else p[(p["state"] != "up").to_numpy() | (np.arange(len(p)) == 0)]
        for p in parts
    ]
    got = sink.kept(empty=parts[0].iloc[:0])
    pd.testing.assert_frame_equal(got, pd.concat(want, ignore_index=True))
    read = pd.read_parquet(tmp_path / "sink.parquet")
    assert len(read) == sum(len(p) for p in parts)


def test_sink_raises_what_writing_a_part_raised(tmp_path: Path) -> None:
    parts = _parts(2)
    sink = _GridSink(tmp_path / "sink.parquet", last=pd.Timestamp(0, tz="UTC"))
    sink.file.row_group_rows = 100
    sink.write(parts[3])
    # Another column type: the writer's concatenation of held tables fails.
    bad = parts[4].assign(ok_count=parts[4]["ok_count"].astype(str))
    with pytest.raises(pa.ArrowInvalid, match=r"(?i)schema"):
        sink.write(bad)
        for part in parts[5:]:
            sink.write(part)
        sink.close()
