"""The committed St Vincent sample is what the simulator makes, and is well formed."""

from __future__ import annotations

import filecmp
import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from dcm.simulate import load_truth, simulate, write_scenario
from dcm.simulate.writer import FILES

FOLDERS = {"stvincent": "stvincent", "stvincent-control": "stvincent-control"}


@pytest.mark.parametrize("name", sorted(FOLDERS))
def test_sample_folder_is_complete(sample_data: Path, name: str) -> None:
    folder = sample_data / FOLDERS[name]
    assert sorted(p.name for p in folder.iterdir()) == sorted(FILES)
    meta = json.loads((folder / "scenario.json").read_text())
    assert meta["name"] == name and meta["seed"] == 1 and meta["scale"] == 1.0
    assert meta["event_start"] == "2021-04-09T12:41:00+00:00"
    truth = load_truth(folder)
    assert (truth.sites["down_from"].notna().sum() > 0) == (name == "stvincent")
    event = pd.read_csv(folder / "event.csv.gz", on_bad_lines="skip", dtype=str)
    assert 0.9 * meta["counts"]["event"] < len(event) < 1.1 * meta["counts"]["event"]
    size = sum(p.stat().st_size for p in folder.iterdir())
    assert size < 4_000_000


def test_sample_is_small(sample_data: Path) -> None:
    total = sum(p.stat().st_size for p in sample_data.rglob("*") if p.is_file())
    assert total < 8_000_000


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FOLDERS))
def test_sample_regenerates_byte_for_byte(sample_data: Path, tmp_path: Path, name: str) -> None:
    paths = write_scenario(simulate(name, seed=1), tmp_path / name)
    for file_name, path in paths.items():
        committed = sample_data / FOLDERS[name] / file_name
        if path.suffix == ".parquet":
            # A Parquet file records the versions of the libraries that wrote it (the
            # writer's `created_by`, pandas' `pandas_version`): the same columns, types
            # and values, whichever release wrote them.
            same = pq.read_table(path).equals(pq.read_table(committed), check_metadata=False)
        else:
            same = filecmp.cmp(path, committed, shallow=False)
        assert same, f"{file_name} differs: regenerate sample_data (see sample_data/README.md)"
