"""Large scenarios drawn block by block (``simulate_blocks``): rows split over UTC days
in proportion to the activity cycle, each block in its period and day, and the same
world and blocks for the same seed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dcm.errors import ParameterError
from dcm.schema import MEASUREMENT_COLUMNS, validate_frame
from dcm.simulate import Conditions
from dcm.simulate.measurements import time_weight
from dcm.simulate.scenarios import _block_bounds, _split, build_world, simulate_blocks

#: Northern Quito (about 210 sites).
QUITO_BOX = (-78.50, -0.20, -78.46, -0.15)


def _world(export: Path, seed: int = 5):  # type: ignore[no-untyped-def]
    return build_world(
        "quake",
        seed=seed,
        conditions=Conditions(cells_from=str(export), bbox=QUITO_BOX),
        days=(2.0, 1.5),
        rows=(20_000, 9_000),
    )


@pytest.fixture(scope="module")
def export(shared_data: Path) -> Path:
    path = shared_data / "opencellid" / "ecuador_740.csv.gz"
    if not path.is_file():
        pytest.skip(f"OpenCelliD export {path} is absent")
    return path


def test_blocks_fill_each_period_day_by_day(export: Path) -> None:
    world = _world(export)
    assert world.event_start - world.baseline_start == pd.Timedelta(days=2)
    assert world.event_end - world.event_start == pd.Timedelta(days=1.5)
    blocks = list(simulate_blocks(world, block_days=0.5))
    kinds = [k for k, _ in blocks]
    assert kinds == sorted(kinds)  # all baseline blocks, then the event's
    periods = {
        "baseline": (world.baseline_start, world.event_start),
        "event": (world.event_start, world.event_end),
    }
    for kind, frame in blocks:
        validate_frame(frame, MEASUREMENT_COLUMNS, name=kind)
        ts = frame["timestamp"]
        lo, hi = periods[kind]
        assert ts.min() >= lo and ts.max() < hi
        assert ts.is_monotonic_increasing
        # One UTC day and at most half a day per block.
        assert ts.dt.floor("D").nunique() == 1
        assert ts.max() - ts.min() < pd.Timedelta(hours=12)
    total = {k: sum(len(f) for kk, f in blocks if kk == k) for k in periods}
    # generate() gives "about" the rows asked: never more, and nearly all of them.
    assert 0.97 * 20_000 <= total["baseline"] <= 20_000
    assert 0.97 * 9_000 <= total["event"] <= 9_000
    # Devices are the world's, the same in both periods.
    ids = set(world.people.device_id)
    assert all(set(f["device"].unique()) <= ids for _, f in blocks)


def test_blocks_are_deterministic_per_seed(export: Path) -> None:
    a = [f for _, f in simulate_blocks(_world(export, seed=7), block_days=1.0)]
    b = [f for _, f in simulate_blocks(_world(export, seed=7), block_days=1.0)]
    c = [f for _, f in simulate_blocks(_world(export, seed=8), block_days=1.0)]
    assert len(a) == len(b)
    assert all(x.equals(y) for x, y in zip(a, b, strict=True))
    assert not all(len(x) == len(y) and x.equals(y) for x, y in zip(a, c, strict=False))


def test_rows_follow_the_hour_weights(export: Path) -> None:
    world = _world(export)
    bounds = _block_bounds(world.baseline_start, world.event_start, 1.0)
    # Cut at UTC midnights: a part day, a whole day and a part day.
    assert [b - a for a, b in bounds][1] == pd.Timedelta(days=1)
    assert bounds[0][0] == world.baseline_start and bounds[-1][1] == world.event_start
    tz = world.spec.region.utc_offset_h
    w = np.array(
        [
            time_weight(a, b, utc_offset_h=tz, campaign=1.0, onset=world.event_start)
            for a, b in bounds
        ]
    )
    whole = time_weight(
        world.baseline_start,
        world.event_start,
        utc_offset_h=tz,
        campaign=1.0,
        onset=world.event_start,
    )
    assert w.sum() == pytest.approx(whole)
    split = _split(20_000, w)
    assert split.sum() == 20_000
    assert np.all(np.abs(split - 20_000 * w / w.sum()) < 1)
    per_block = [len(f) for k, f in simulate_blocks(world, block_days=1.0) if k == "baseline"]
    assert np.all(np.abs(np.array(per_block) - split) <= 0.03 * split + 1)


def test_block_days_must_be_positive(export: Path) -> None:
    with pytest.raises(ParameterError, match="block_days"):
        next(simulate_blocks(_world(export), block_days=0))
