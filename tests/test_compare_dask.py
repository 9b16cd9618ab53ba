"""The comparison counted on a dask.distributed cluster equals the single-process run,
byte for byte, and streaming with small chunks equals reading whole."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

import pytest

import dcm
import dcm.scan
from dcm.compare import write_comparison
from dcm.convert import convert
from dcm.errors import ParameterError

distributed = pytest.importorskip("distributed")

COMPARED = ("outages.geojson", "cells.csv", "status.parquet")


@pytest.fixture(scope="module")
def client() -> Iterator[object]:
    """Two worker processes of one thread each (real pickling between processes)."""
    with (
        distributed.LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c


def _files(path: Path) -> dict[str, bytes]:
    return {name: (path / name).read_bytes() for name in COMPARED}


def _copies(sample: Path, tmp_path: Path, name: str, rows: int) -> Path:
    """A second CSV holding copies of the first ``rows`` data rows of the sample file
    (duplicates that the readers must drop wherever they fall)."""
    header, *lines = gzip.decompress((sample / f"{name}.csv.gz").read_bytes()).splitlines(
        keepends=True
    )
    out = tmp_path / f"{name}-copies.csv"
    out.write_bytes(header + b"".join(lines[:rows]))
    return out


@pytest.mark.slow
def test_dask_counts_give_the_same_files(
    sample_data: Path, tmp_path: Path, client: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sample CSV files and the same rows as converted datasets (several Parquet files,
    rows copied across files): the LocalCluster run writes outages.geojson, cells.csv and
    status.parquet byte-identical to the single-process run, with the same report."""
    folder = sample_data / "stvincent"
    cells = folder / "cells.csv.gz"
    want = dcm.compare(
        cells=cells, baseline=folder / "baseline.csv.gz", event=folder / "event.csv.gz"
    )
    write_comparison(want, tmp_path / "local")
    got = dcm.compare(
        cells=cells,
        baseline=folder / "baseline.csv.gz",
        event=folder / "event.csv.gz",
        client=client,
    )
    write_comparison(got, tmp_path / "dask")
    assert _files(tmp_path / "dask") == _files(tmp_path / "local")
    assert got.summary["inputs"] == want.summary["inputs"]
    assert got.summary["rejected_rows"] == want.summary["rejected_rows"]

    data = {}
    for name in ("baseline", "event"):
        sources = [folder / f"{name}.csv.gz", _copies(folder, tmp_path, name, 700)]
        data[name] = convert(sources, tmp_path / f"{name}.dcm", chunk_bytes=400_000).path
        # More pieces than the 4 kept in flight on 2 workers: results come out of order
        # (a piece per file: the sample's files are far smaller than a piece).
        assert len(list(data[name].rglob("*.parquet"))) > 4
    monkeypatch.setattr(dcm.scan, "PIECE_BYTES", 1)
    assert len(dcm.scan.pieces_of(data["baseline"], "baseline", resolution=8)[0]) > 4
    local = dcm.compare(cells=cells, baseline=data["baseline"], event=data["event"])
    write_comparison(local, tmp_path / "ds-local")
    on_dask = dcm.compare(
        cells=cells, baseline=data["baseline"], event=data["event"], client=client
    )
    write_comparison(on_dask, tmp_path / "ds-dask")
    # The copies change nothing: the same files as the sample's CSV, local and on Dask.
    assert _files(tmp_path / "ds-local") == _files(tmp_path / "local")
    assert _files(tmp_path / "ds-dask") == _files(tmp_path / "local")
    for kind in ("baseline", "event"):
        rows = want.summary["inputs"][kind]["rows"]
        assert local.summary["inputs"][kind]["rows"] == rows
        assert on_dask.summary["inputs"][kind] == local.summary["inputs"][kind]
        assert on_dask.summary["inputs"][kind]["duplicates"] >= 700 - 20  # 20: bad rows


def test_small_chunks_give_the_same_files(sample_data: Path, tmp_path: Path) -> None:
    """A memory limit small enough to read the sample in several chunks: the same files
    and the same report of rejected rows as the default chunks."""
    folder = sample_data / "stvincent"
    args = {
        "cells": folder / "cells.csv.gz",
        "baseline": folder / "baseline.csv.gz",
        "event": folder / "event.csv.gz",
    }
    want = dcm.compare(**args)
    write_comparison(want, tmp_path / "whole")
    got = dcm.compare(**args, memory_limit="170MB")  # about 1 MiB of CSV per chunk
    write_comparison(got, tmp_path / "chunked")
    assert _files(tmp_path / "chunked") == _files(tmp_path / "whole")
    assert got.summary["rejected_rows"] == want.summary["rejected_rows"]
    assert got.summary["inputs"] == want.summary["inputs"]


def test_memory_limit_below_the_counts_is_refused(sample_data: Path) -> None:
    folder = sample_data / "stvincent"
    with pytest.raises(ParameterError, match=r"memory-limit .* counts of baseline alone"):
        dcm.compare(
            cells=folder / "cells.csv.gz",
            baseline=folder / "baseline.csv.gz",
            event=folder / "event.csv.gz",
            memory_limit="100KB",
        )
