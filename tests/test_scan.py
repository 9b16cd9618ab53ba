"""dcm compare streams NDJSON, GeoJSON and Parquet inputs in chunks: the same files and
the same report of rejected rows as reading them in one chunk, and the same outages as
the CSV they were made from."""

from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path

import pandas as pd
import pytest

import dcm
from dcm.compare import write_comparison
from dcm.scan import ChunkSize, Piece, count_piece

COMPARED = ("outages.geojson", "cells.csv", "status.parquet")


def _records(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV as text records (empty fields left out); rows with the wrong
    number of fields, which the CSV reader rejects, are left out."""
    header, *rows = list(csv.reader(io.StringIO(path.read_text())))
    return [
        {k: v for k, v in zip(header, row, strict=True) if v}
        for row in rows
        if len(row) == len(header)
    ]


def _number(text: str | None) -> object:
    try:
        return float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return text  # a bad coordinate stays as it was: the reader rejects it


def write_as(fmt: str, records: list[dict[str, str]], out: Path) -> Path:
    if fmt == "ndjson":
        lines = [json.dumps(r) for r in records]
        lines.insert(len(lines) // 2, "{not json")  # a broken line in the middle
        out.write_text("\n".join(lines) + "\n")
    elif fmt == "geojson":
        features = []
        for r in records:
            props = {k: v for k, v in r.items() if k not in ("lat", "lon")}
            coords = [_number(r.get("lon")), _number(r.get("lat"))]
            point = {"type": "Point", "coordinates": coords}
            features.append({"type": "Feature", "geometry": point, "properties": props})
        out.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    else:
        frame = pd.DataFrame(records).astype("string")
        frame.to_parquet(out, row_group_size=5000)
    return out


def _files(path: Path) -> dict[str, bytes]:
    return {name: (path / name).read_bytes() for name in COMPARED}


@pytest.fixture(scope="module")
def thin(sample_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A third of the St Vincent sample's baseline and event rows (malformed rows kept),
    and the comparison of that CSV."""
    out = tmp_path_factory.mktemp("thin")
    files = {"cells": sample_data / "stvincent" / "cells.csv.gz"}
    for kind in ("baseline", "event"):
        header, *rows = gzip.decompress(
            (sample_data / "stvincent" / f"{kind}.csv.gz").read_bytes()
        ).splitlines(keepends=True)
        files[kind] = out / f"{kind}.csv"
        files[kind].write_bytes(header + b"".join(rows[::3]))
    result = dcm.compare(cells=files["cells"], baseline=files["baseline"], event=files["event"])
    write_comparison(result, out / "csv")
    files["csv"] = out / "csv"
    (out / "summary.json").write_text(json.dumps(result.summary["inputs"], default=str))
    return files


@pytest.mark.parametrize("fmt", ["ndjson", "geojson", "parquet"])
def test_compare_streams_json_and_parquet_inputs(
    fmt: str, thin: dict[str, Path], tmp_path: Path
) -> None:
    inputs = {
        kind: write_as(fmt, _records(thin[kind]), tmp_path / f"{kind}.{fmt}")
        for kind in ("baseline", "event")
    }
    args = {"cells": thin["cells"], **inputs}
    whole = dcm.compare(**args)
    write_comparison(whole, tmp_path / "whole")
    chunked = dcm.compare(**args, memory_limit="170MB")  # about 1 MiB of text a chunk
    write_comparison(chunked, tmp_path / "chunked")
    assert _files(tmp_path / "chunked") == _files(tmp_path / "whole")
    assert chunked.summary["rejected_rows"] == whole.summary["rejected_rows"]
    assert chunked.summary["inputs"] == whole.summary["inputs"]
    # The rows the CSV reader accepts are the rows of these files: the same outages.
    assert _files(tmp_path / "whole") == _files(thin["csv"])
    csv_inputs = json.loads((thin["csv"].parent / "summary.json").read_text())
    for kind in ("baseline", "event"):
        assert whole.summary["inputs"][kind]["rows"] == csv_inputs[kind]["rows"]
        assert whole.summary["rejected_rows"][kind]["count"] > 0
    assert len(whole.outages) > 0


@pytest.mark.parametrize("fmt", ["ndjson", "geojson", "parquet"])
def test_copies_and_bad_rows_across_chunk_boundaries(fmt: str, tmp_path: Path) -> None:
    """Copies of rows far apart (by id and by content) and bad rows, read a few rows a
    chunk: counted once, every bad row reported once with its line."""
    records = []
    for i in range(300):
        r = {
            "timestamp": f"2021-04-09T{i % 24:02d}:{i % 60:02d}:00Z",
            "lat": f"{13.2 + i * 1e-4:.5f}",
            "lon": f"{-61.2 + i * 1e-4:.5f}",
            "status": "ok",
            "measurement_id": f"m{i}",
        }
        if i % 17 == 3:
            r["status"] = "maybe"
        records.append(r)
    records += [dict(records[5]), dict(records[120]), {**records[7], "measurement_id": ""}]
    records += [{**records[7], "measurement_id": ""}]  # a copy by content, no id
    path = write_as(fmt, records, tmp_path / f"m.{fmt}")
    counts = []

    def counter(frame: pd.DataFrame) -> object:
        counts.append(len(frame))
        return _Rows(len(frame))

    # GeoJSON batches hold about an eighth of the bytes of a CSV or NDJSON chunk.
    size = ChunkSize(csv_bytes=16_000 if fmt == "geojson" else 2000, batch_rows=9)
    part = count_piece(Piece("file", str(path), str(path)), counter, _Rows.merge, size=size)
    assert len(counts) > 10
    bad = [i for i in range(300) if i % 17 == 3]
    assert part.accepted == 300 - len(bad) + 1  # one content copy of row 7 kept, id-less
    assert part.duplicates == 3
    lines = [r.line for r in part.rejected if r.field == "status"]
    assert len(lines) == len(bad) and len(set(lines)) == len(lines)
    broken = fmt == "ndjson"  # write_as puts a line that is not JSON in the middle
    assert part.rows_in == part.accepted + part.duplicates + len(part.rejected) == 304 + broken
    assert sum(r.reason.startswith("not valid JSON") for r in part.rejected) == broken


class _Rows:
    """Counts that only count rows."""

    def __init__(self, rows: int) -> None:
        self.rows = rows

    @property
    def nbytes(self) -> int:
        return 8

    @staticmethod
    def merge(parts: list[_Rows]) -> _Rows:
        return _Rows(sum(p.rows for p in parts))


def test_seen_rows_keep_the_first_of_each_key_across_chunks() -> None:
    """Chunk after chunk, ``fresh`` marks exactly the first occurrence of each key (as
    pandas' ``duplicated`` on all keys at once) while its sorted runs merge."""
    import numpy as np

    from dcm.scan import SeenRows

    rng = np.random.default_rng(9)
    keys = rng.integers(0, 5_000, 40_000).astype("uint64")
    seen = SeenRows()
    marks = [seen.fresh(chunk) for chunk in np.array_split(keys, 37)]
    assert np.array_equal(np.concatenate(marks), ~pd.Series(keys).duplicated().to_numpy())
    assert np.array_equal(seen.keys(), np.unique(keys))
    # Keys already seen, added again (the Dask path adds whole pieces): still distinct.
    seen.add(keys[:100])
    seen.add(rng.integers(0, 10_000, 3_000).astype("uint64"))
    assert np.array_equal(np.unique(seen.keys()), seen.keys())
    assert all(np.all(np.diff(r.astype("float64")) > 0) for r in seen._runs)


def _measurements_with_copies(n: int, seed: int) -> pd.DataFrame:
    """Canonical measurements drawn from few values (so rows repeat), with missing
    values of every type, 0.0 and -0.0, and a few measurement ids."""
    import numpy as np

    from dcm.schema import MEASUREMENT_COLUMNS

    rng = np.random.default_rng(seed)

    def pick(values: list, p_missing: float = 0.2) -> list:
        return [
            None if rng.random() < p_missing else values[i] for i in rng.integers(0, len(values), n)
        ]

    frame = pd.DataFrame(
        {
            "timestamp": pd.DatetimeIndex(
                [pd.Timestamp("2024-03-11T06:00", tz="UTC"), pd.NaT], dtype="datetime64[ns, UTC]"
            )[rng.integers(0, 2, n)],
            "lat": rng.choice([13.1, 13.2, 0.0, -0.0], n),
            "lon": rng.choice([-61.2, np.nan], n),
            "status": pick(["ok", "failed"], 0),
            "mcc": pick([358, 0]),
            "mnc": pick([110, 0]),
            "network": pick(["358-110", "358-0"]),
            "radio": pick(["LTE", "GSM"]),
            "area": pick([7, 2**32]),
            "cell": pick([1, 2**40]),
            "signal_dbm": rng.choice([-90.0, -0.0, 0.0, np.nan], n),
            "download_kbps": rng.choice([1.5, np.nan], n),
            "upload_kbps": np.nan,
            "latency_ms": rng.choice([20.0, np.nan], n),
            "accuracy_m": np.nan,
            "measurement_id": pick(["m1", "m2", "m3"], 0.9),
            "device": pick(["a" * 32, "b" * 32, ""], 0.3),
        }
    )
    return frame.astype(MEASUREMENT_COLUMNS)


@pytest.mark.parametrize("n", [0, 1, 3000])
def test_row_keys_tell_copies_apart_as_the_reader_does(n: int) -> None:
    """Two rows get the same key exactly when the reader calls one a copy of the
    other (same id, or same content with 0.0/-0.0 and missing values alike)."""
    import numpy as np

    from dcm.ingest.measurements import duplicated_measurements
    from dcm.scan import row_keys

    frame = _measurements_with_copies(n, seed=n)
    keys = row_keys(frame)
    assert keys.dtype == np.uint64 and keys.shape == (n,)
    assert np.array_equal(pd.Series(keys).duplicated().to_numpy(), duplicated_measurements(frame))
    if n > 100:
        assert 1 < pd.Series(keys).nunique() < n


def test_text_hashes_follow_the_strings_not_their_storage() -> None:
    """Equal strings hash alike whatever their length, chunk, slice or storage (Arrow
    string, large_string or Python objects); different ones differ; missing values
    share one hash that no string of this test has."""
    import numpy as np
    import pyarrow as pa

    from dcm.scan import column_hashes

    values = ["", "a", "ab", "é", "8charsxx", "9chars xx", "a" * 32, "b" * 32, "ok", None]
    values = values * 3
    rng = np.random.default_rng(11)
    rng.shuffle(values)
    series = [
        pd.Series(values, dtype=object),
        pd.Series(pd.arrays.ArrowExtensionArray(pa.array(values, pa.string()))),
        pd.Series(pd.arrays.ArrowExtensionArray(pa.array(["x", *values], pa.large_string())[1:])),
        pd.Series(values, dtype="string"),
    ]
    hashes = [column_hashes(s) for s in series]
    for h in hashes[1:]:
        assert np.array_equal(h, hashes[0])
    by_value = pd.Series(hashes[0]).groupby(pd.Series(values, dtype=object).fillna("<NA>"))
    assert (by_value.nunique() == 1).all()
    assert by_value.first().nunique() == len(set(values))
    # Strings of one length side by side in the buffer (hashed from it uncopied) hash
    # as the same strings gathered from among others.
    side_by_side = ["a" * 32, None, "b" * 32, "a" * 32, "8charsxx"[:8]]
    first = dict(zip(values, hashes[0], strict=True))
    got = column_hashes(pd.Series(side_by_side, dtype="string"))
    assert got.tolist() == [first[v] for v in side_by_side]


@pytest.mark.parametrize("batch_rows", [1, 7, 50, 10**9])
def test_fold_merges_every_chunk_once_in_order(batch_rows: int) -> None:
    """Gathered in batches then merged geometrically, the folded counts are those of
    all chunks in their order; bigger batches mean fewer merges."""
    from dcm.scan import Fold

    merges: list[int] = []

    def merge_all(parts: list[tuple[int, ...]]) -> tuple[int, ...]:
        merges.append(len(parts))
        return tuple(i for p in parts for i in p)

    class Part(tuple):  # the rows Fold reads from counts
        rows = 3

    fold = Fold(merge_all, batch_rows=batch_rows)
    assert fold.result() is None
    for i in range(40):
        fold.add(Part((i,)))
    assert fold.result() == tuple(range(40))
    assert len(merges) <= 40
    if batch_rows == 10**9:
        assert merges == [40]  # one merge of all, at the end


def test_a_dataset_read_in_pieces_of_many_files_gives_the_same_files(
    thin: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dataset of many small Parquet files: read as a few pieces of many files (their
    batches gathered into larger frames) or as one piece per file, the same files and
    the same report."""
    import dcm.scan
    from dcm.convert import convert
    from dcm.scan import file_groups, pieces_of

    data = {
        k: convert([thin[k]], tmp_path / f"{k}.dcm", chunk_bytes=60_000).path
        for k in ("baseline", "event")
    }
    files = sorted(data["baseline"].rglob("*.parquet"))
    assert len(files) > 10
    gathered = pieces_of(data["baseline"], "baseline", resolution=8)[0]
    assert len(gathered) < len(files)
    assert [f for p in gathered for f in p.source] == [str(f) for f in files]
    runs = {}
    for name, limit in (("gathered", dcm.scan.PIECE_BYTES), ("per-file", 1)):
        monkeypatch.setattr(dcm.scan, "PIECE_BYTES", limit)
        result = dcm.compare(cells=thin["cells"], baseline=data["baseline"], event=data["event"])
        write_comparison(result, tmp_path / name)
        runs[name] = result.summary["inputs"]
    assert len(pieces_of(data["baseline"], "baseline", resolution=8)[0]) == len(files)
    assert _files(tmp_path / "gathered") == _files(tmp_path / "per-file")
    assert runs["gathered"] == runs["per-file"]
    # Groups end at the file that reaches the limit; a larger file stands alone.
    sizes = [f.stat().st_size for f in files[:4]]
    groups = file_groups(files[:4], limit=sizes[0] + sizes[1])
    assert groups[0] == (str(files[0]), str(files[1]))
    assert [f for g in groups for f in g] == [str(f) for f in files[:4]]
    assert file_groups(files[:3], limit=1) == [(str(f),) for f in files[:3]]
    assert file_groups([], limit=1) == []


@pytest.mark.parametrize("batch_rows", [700, 5_000, 10**7])
def test_gathered_batches_keep_every_row_in_order_and_the_chunk_size(
    thin: dict[str, Path], tmp_path: Path, batch_rows: int
) -> None:
    from dcm.convert import convert
    from dcm.scan import piece_chunks, pieces_of

    data = convert([thin["event"]], tmp_path / "event.dcm", chunk_bytes=60_000).path
    pieces = pieces_of(data, "event", resolution=8)[0]
    size = ChunkSize(batch_rows=batch_rows)
    frames = [f for p in pieces for f, _ in piece_chunks(p, size)]
    one_by_one = [
        f
        for p in pieces
        for name in p.source
        for f, _ in piece_chunks(Piece("parquet", name, p.name, keep_h3=True), size)
    ]
    assert all(len(f) <= batch_rows for f in frames)
    whole = pd.concat(frames, ignore_index=True)
    pd.testing.assert_frame_equal(whole, pd.concat(one_by_one, ignore_index=True))
    if batch_rows >= 10**7:
        assert len(frames) == len(pieces)
