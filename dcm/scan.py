"""Measurement inputs read chunk by chunk and folded into partial counts.

``dcm compare`` never holds the measurement rows of its inputs: each input is cut into
*pieces* (a frame, a file, or one Parquet file of a ``dcm convert`` dataset), each piece
is read in chunks (:func:`dcm.ingest.chunks.iter_measurements`: CSV and NDJSON by blocks
of lines, GeoJSON by batches of features, Parquet by record batches),
each chunk is validated, prepared and counted
(:class:`~dcm.analysis.counts.BaselineCounts`, :class:`~dcm.analysis.counts.EventCounts`)
and dropped. Memory is bounded by the counts (and the 8-byte row keys that find copies
of a row across chunks), not by the rows.

The same :func:`count_piece` runs on Dask workers (:func:`scan_with_dask`): each worker
counts whole pieces, the client merges the counts; copies of a row in different pieces
are found from the row keys the workers send back, and the pieces holding such copies
are counted again without them, so the result is the one a single process gets.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import pandas as pd

from dcm.analysis.grouping import sorted_unique
from dcm.errors import IngestError, ParameterError
from dcm.ingest.chunks import CSV_BYTES_PER_ROW
from dcm.ingest.report import IngestReport, RejectedRow
from dcm.schema import MEASUREMENT_COLUMNS

#: Bytes of CSV or JSON per chunk when no memory limit is given (the reader's default).
DEFAULT_CHUNK_BYTES = 16 * 1024**2
#: Rows per Parquet batch when no memory limit is given.
DEFAULT_BATCH_ROWS = 256 * 1024
#: Peak memory of reading, preparing and counting one chunk, per byte of CSV in it
#: (measured: a 16 MiB chunk of canonical CSV peaks near 650 MB in ``dcm convert``).
CHUNK_OVERHEAD = 40
#: A different salt for content keys, so a row key never equals an id key by design.
_CONTENT_SALT = np.uint64(0x9E3779B97F4A7C15)

_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)


def parse_memory(text: str) -> int:
    """Bytes of a size such as ``2GB``, ``512MiB``, ``1.5g`` or ``1000000``."""
    m = _SIZE.match(text)
    if not m:
        raise ParameterError(f"--memory-limit: cannot read {text!r} as a size (e.g. 2GB, 512MB)")
    unit = (m.group(2) or "b").lower().rstrip("b").rstrip("i")
    scale = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}[unit]
    value = int(float(m.group(1)) * scale)
    if value <= 0:
        raise ParameterError("--memory-limit must be positive")
    return value


@dataclass(frozen=True)
class ChunkSize:
    """How much of an input is read at a time."""

    csv_bytes: int = DEFAULT_CHUNK_BYTES
    batch_rows: int = DEFAULT_BATCH_ROWS

    @classmethod
    def for_limit(cls, limit: int | None) -> ChunkSize:
        """Chunks whose reading takes about a quarter of ``limit`` bytes."""
        if limit is None:
            return cls()
        csv_bytes = int(np.clip(limit // (4 * CHUNK_OVERHEAD), 1024**2, 4 * DEFAULT_CHUNK_BYTES))
        return cls(csv_bytes=csv_bytes, batch_rows=max(csv_bytes // CSV_BYTES_PER_ROW, 1024))


@dataclass(frozen=True)
class Piece:
    """One unit of reading: a whole frame, a measurement file, or consecutive Parquet
    files of a dataset (a tuple of paths; ``keep_h3``: their stored cells are at the
    analysis resolution)."""

    kind: str  #: "frame" | "file" | "parquet"
    source: Any
    name: str
    keep_h3: bool = False


def row_keys(frame: pd.DataFrame) -> np.ndarray:
    """64-bit key of each row's identity, as :func:`~dcm.ingest.measurements.
    duplicated_measurements` tells copies apart: its ``measurement_id`` when it has one,
    else its whole content (0.0/-0.0 and NaNs made one)."""
    out = np.zeros(len(frame), dtype="uint64")
    if not len(frame):
        return out
    ids = frame["measurement_id"].astype("string")
    has = ids.notna().to_numpy()
    if has.any():
        out[has] = pd.util.hash_array(ids[has].to_numpy(dtype=object))
    if not has.all():
        content = [c for c in MEASUREMENT_COLUMNS if c != "measurement_id" and c in frame]
        rows = frame.loc[~has, content] if has.any() else frame[content]
        key = np.zeros(len(rows), dtype="uint64")
        for c in content:  # each column's hashes are mixed already: folded, mixed once
            key = (key * _STEP) ^ column_hashes(rows[c])
        out[~has] = _mix(key) ^ _CONTENT_SALT
    return out


#: Odd multiplier folding one column's hashes into a row's key.
_STEP = np.uint64(0x100000001B3)
#: Hash of a missing value (of any column type).
_MISSING = np.uint64(0x5851F42D4C957F2D)


def _mix(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser on uint64 arrays (every input bit reaches every output
    bit; wrapping multiplication)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def column_hashes(col: pd.Series) -> np.ndarray:
    """64-bit hash of each value of a column, equal for equal values (0.0 and -0.0,
    and all missing values, one): numbers and times from their bits, text from its
    bytes (:func:`_text_hashes`, whatever the column's string storage)."""
    import pyarrow as pa

    dtype = col.dtype
    if pd.api.types.is_float_dtype(dtype) and not isinstance(dtype, pd.ArrowDtype):
        values = col.to_numpy("float64", na_value=np.nan) + 0.0
        bits = _mix(values.view("uint64"))
        return np.where(np.isnan(values), _MISSING, bits)
    if isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(dtype):
        stamps = col.to_numpy("datetime64[ns]").view("int64")
        return np.where(col.isna().to_numpy(), _MISSING, _mix(stamps.view("uint64")))
    if pd.api.types.is_integer_dtype(dtype) and not isinstance(dtype, pd.ArrowDtype):
        missing = col.isna().to_numpy()
        ints = col.to_numpy("int64", na_value=0)
        return np.where(missing, _MISSING, _mix(ints.view("uint64")))
    if pd.api.types.is_string_dtype(dtype):
        try:
            text = pa.array(col, from_pandas=True)
        except (pa.ArrowException, TypeError):
            text = None
        if isinstance(text, pa.ChunkedArray):
            text = text.combine_chunks()
        if text is not None and pa.types.is_string(text.type):
            text = text.cast(pa.large_string())
        if text is not None and pa.types.is_large_string(text.type):
            return _text_hashes(text)
    # Anything else: pandas' hash of each value (missing values alike).
    return np.where(col.isna().to_numpy(), _MISSING, pd.util.hash_array(col.to_numpy(object)))


def _text_hashes(text: Any) -> np.ndarray:
    """64-bit hash of each string of an Arrow large_string array (missing: _MISSING),
    computed on its UTF-8 bytes as 8-byte words (zero-padded) folded into its length:
    strings of one length at a time, from the array's buffers, no Python string made."""
    n = len(text)
    out = np.full(n, _MISSING, dtype="uint64")
    if not n:
        return out
    valid = ~text.is_null().to_numpy(zero_copy_only=False)
    _, offset_buf, data_buf = text.buffers()
    offsets = np.frombuffer(offset_buf, dtype="int64")[text.offset : text.offset + n + 1]
    data = np.frombuffer(data_buf, dtype="uint8") if data_buf is not None else np.zeros(0, "u1")
    lengths = np.diff(offsets)
    for length in sorted_unique(lengths[valid]).tolist():
        rows = np.flatnonzero(valid & (lengths == length))
        width = -(-length // 8) * 8
        starts = offsets[rows]
        if length and length == width and bool((np.diff(starts) == length).all()):
            # Strings of one length next to each other (missing values take no bytes),
            # as hashed device ids are: their bytes are the words, uncopied.
            block = data[starts[0] : starts[0] + rows.size * length].reshape(rows.size, length)
        else:
            block = np.zeros((rows.size, max(width, 8)), dtype="uint8")
            if length:
                block[:, :length] = data[starts[:, None] + np.arange(length)]
        h = np.full(rows.size, np.uint64(length))
        for word in block.view("uint64").T:
            h = _mix((h * _STEP) ^ word)
        out[rows] = h
    return out


def _union_sorted(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The sorted distinct keys of two sorted distinct runs: a stable sort of the two
    runs end to end is a linear merge (timsort finds the runs), and the keys of
    :meth:`SeenRows.fresh` are new, so usually nothing is dropped (``np.union1d``
    sorts from scratch and always builds the mask and a copy)."""
    merged = np.concatenate([a, b])
    merged.sort(kind="stable")
    if merged.size > 1:
        dup = merged[1:] == merged[:-1]
        if dup.any():
            return merged[np.r_[True, ~dup]]
    return merged


class SeenRows:
    """Keys of the rows counted so far (sorted runs, merged as they grow)."""

    def __init__(self) -> None:
        self._runs: list[np.ndarray] = []

    def __contains__(self, key: object) -> bool:  # pragma: no cover - convenience
        return bool(self.seen(np.asarray([key], dtype="uint64"))[0])

    def seen(self, keys: np.ndarray) -> np.ndarray:
        order = np.argsort(keys)
        out = np.empty(keys.size, dtype=bool)
        out[order] = self._seen_sorted(keys[order])
        return out

    def _seen_sorted(self, keys: np.ndarray) -> np.ndarray:
        """:meth:`seen` of sorted keys (looked up in order: each search starts near
        the last one's place, far fewer cache misses than keys in any order)."""
        out = np.zeros(keys.size, dtype=bool)
        for run in self._runs:
            pos = np.searchsorted(run, keys)
            pos[pos == run.size] = 0
            out |= run[pos] == keys if run.size else False
        return out

    def fresh(self, keys: np.ndarray) -> np.ndarray:
        """Mask of rows not seen before (nor earlier in ``keys``); they are now seen."""
        order = np.argsort(keys, kind="stable")  # the first of equal keys first
        ordered = keys[order]
        new = np.empty(keys.size, dtype=bool)
        new[:1] = True
        np.not_equal(ordered[1:], ordered[:-1], out=new[1:])
        new &= ~self._seen_sorted(ordered)
        self._push(ordered[new])
        out = np.empty(keys.size, dtype=bool)
        out[order] = new
        return out

    def add(self, keys: np.ndarray) -> None:
        self._push(sorted_unique(keys))

    def _push(self, run: np.ndarray) -> None:
        """Keep a sorted run of distinct keys, merging runs of like sizes."""
        if not run.size:
            return
        self._runs.append(run)
        while len(self._runs) > 1 and self._runs[-2].size <= 2 * self._runs[-1].size:
            last = self._runs.pop()
            self._runs[-1] = _union_sorted(self._runs[-1], last)

    def keys(self) -> np.ndarray:
        return sorted_unique(np.concatenate(self._runs)) if self._runs else np.zeros(0, "uint64")

    @property
    def nbytes(self) -> int:
        return sum(int(r.nbytes) for r in self._runs)


class Counts(Protocol):
    rows: int

    @property
    def nbytes(self) -> int: ...


C = TypeVar("C", bound=Counts)


#: Rows of counts gathered before they are merged at once (Fold): small chunks (a tight
#: memory limit, or Parquet files larger than a chunk read batch by batch) merged
#: pairwise meant many merges per row; merged many at a time, each merge sorts runs it
#: finds sorted.
FOLD_BATCH_ROWS = 1 << 20


class Fold:
    """Counts of chunks folded together: gathered until they hold ``batch_rows`` rows,
    merged at once, and those merged counts merged geometrically (each merged O(log n)
    times, not once per later chunk)."""

    def __init__(
        self, merge_all: Callable[[list[Any]], Any], *, batch_rows: int = FOLD_BATCH_ROWS
    ) -> None:
        self.merge_all = merge_all
        self.batch_rows = batch_rows
        self.runs: list[tuple[int, Any]] = []
        self.pending: list[Any] = []
        self.pending_rows = 0

    def add(self, counts: Any) -> None:
        self.pending.append(counts)
        self.pending_rows += int(getattr(counts, "rows", 0))
        if self.pending_rows >= self.batch_rows:
            self._push(self._flush())

    def _flush(self) -> Any:
        pending, self.pending, self.pending_rows = self.pending, [], 0
        return pending[0] if len(pending) == 1 else self.merge_all(pending)

    def _push(self, counts: Any) -> None:
        self.runs.append((1, counts))
        while len(self.runs) > 1 and self.runs[-2][0] <= self.runs[-1][0]:
            (n2, b), (n1, a) = self.runs.pop(), self.runs.pop()
            self.runs.append((n1 + n2, self.merge_all([a, b])))

    def result(self) -> Any | None:
        parts = [c for _, c in self.runs] + self.pending
        return self.merge_all(parts) if parts else None

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for _, c in self.runs) + sum(c.nbytes for c in self.pending)


@dataclass
class PieceCount:
    """What counting one piece gives: its counts (None without any row), the read's
    report (``rejected`` rows with their lines, rows in, copies dropped) and the keys
    of the rows counted (to find copies across pieces)."""

    counts: Any
    rows_in: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: list[RejectedRow] = field(default_factory=list)
    keys: np.ndarray = field(default_factory=lambda: np.zeros(0, "uint64"))


def piece_chunks(
    piece: Piece, size: ChunkSize
) -> Iterator[tuple[pd.DataFrame, IngestReport | None]]:
    """The chunks of a piece: canonical measurement frames and (for files) the report of
    each chunk's read."""
    if piece.kind == "frame":
        yield piece.source, None
        return
    if piece.kind == "file":
        from dcm.ingest.chunks import iter_measurements

        results = iter_measurements(
            piece.source, chunk_bytes=size.csv_bytes, batch_rows=size.batch_rows
        )
        for result in results:
            yield result.frame, result.report
        return
    yield from ((f, None) for f in _parquet_batches(piece, size.batch_rows))


def _parquet_batches(piece: Piece, batch_rows: int) -> Iterator[pd.DataFrame]:
    """The piece's files read in order, as frames of about ``batch_rows`` rows: batches
    of small files are gathered into one frame (each frame costs the same pandas work
    whatever its size; a dataset holds a file per day and H3 parent cell)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from dcm.ingest.dataset import _pandas_type

    columns = [*MEASUREMENT_COLUMNS, "h3"]
    files = piece.source if isinstance(piece.source, tuple) else (piece.source,)

    def frame_of(batches: list[pa.RecordBatch]) -> pd.DataFrame:
        table = pa.concat_tables(
            [pa.Table.from_batches([b]) for b in batches], promote_options="permissive"
        )
        frame = table.to_pandas(types_mapper=_pandas_type)
        h3 = frame["h3"].to_numpy("int64")
        frame = frame.astype(MEASUREMENT_COLUMNS)[list(MEASUREMENT_COLUMNS)]
        if piece.keep_h3:
            frame["h3"] = h3
        return frame

    pending: list[pa.RecordBatch] = []
    rows = 0
    try:
        for path in files:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=columns):
                if not batch.num_rows:
                    continue
                if pending and rows + batch.num_rows > batch_rows:  # no frame above the size
                    yield frame_of(pending)
                    pending, rows = [], 0
                pending.append(batch)
                rows += batch.num_rows
                if rows >= batch_rows:
                    yield frame_of(pending)
                    pending, rows = [], 0
        if pending:
            yield frame_of(pending)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise IngestError(f"not a readable dcm dataset ({exc})", path=piece.name) from exc


#: A dataset's Parquet files are read in pieces of consecutive files of about this many
#: bytes (a piece is what one Dask task reads).
PIECE_BYTES = 64 * 1024**2


def file_groups(files: list[Path], limit: int | None = None) -> list[tuple[str, ...]]:
    """Consecutive ``files`` in groups whose sizes add up to about ``limit`` bytes
    (:data:`PIECE_BYTES`; a group ends at the file that reaches it, so a larger file is
    a group of its own)."""
    limit = PIECE_BYTES if limit is None else limit
    groups: list[tuple[str, ...]] = []
    group: list[str] = []
    size = 0
    for f in files:
        group.append(str(f))
        size += f.stat().st_size
        if size >= limit:
            groups.append(tuple(group))
            group, size = [], 0
    if group:
        groups.append(tuple(group))
    return groups


def count_piece(
    piece: Piece,
    counter: Callable[[pd.DataFrame], Any],
    merge_all: Callable[[list[Any]], Any],
    *,
    size: ChunkSize | None = None,
    seen: SeenRows | None = None,
    drop: np.ndarray | None = None,
    dedupe: bool = True,
    on_chunk: Callable[[int, Fold], None] | None = None,
) -> PieceCount:
    """Read, prepare and count a piece chunk by chunk (``counter``: frame → counts).

    ``seen``: keys of rows counted before (in other pieces), extended with this piece's;
    ``drop``: keys of rows to leave out (copies counted in an earlier piece elsewhere).
    ``on_chunk(rows, fold)`` is called after each chunk (progress, memory checks).
    """
    fold = Fold(merge_all)
    own = seen if seen is not None else SeenRows()
    out = PieceCount(counts=None)
    drop_sorted = sorted_unique(drop) if drop is not None and drop.size else None
    for frame, report in piece_chunks(piece, size or ChunkSize()):
        if report is not None:
            out.rows_in += report.rows_in
            out.duplicates += report.duplicates
            out.rejected.extend(report.rejected)
        else:
            out.rows_in += len(frame)
        if dedupe and len(frame):
            keys = row_keys(frame)
            keep = own.fresh(keys)
            if drop_sorted is not None:
                pos = np.clip(np.searchsorted(drop_sorted, keys), 0, drop_sorted.size - 1)
                keep &= drop_sorted[pos] != keys
            if not keep.all():
                out.duplicates += int((~keep).sum())
                frame = frame.loc[keep].reset_index(drop=True)
        out.accepted += len(frame)
        if len(frame):
            fold.add(counter(frame))
        if on_chunk is not None:
            on_chunk(len(frame), fold)
    out.counts = fold.result()
    if seen is None and dedupe:
        out.keys = own.keys()
    return out


def pieces_of(source: Any, kind: str, *, resolution: int) -> tuple[list[Piece], dict[str, Any]]:
    """The pieces of an input (a frame, a file or a dataset directory) and what the
    summary says of it before reading (a dataset: its metadata and H3 note)."""
    if isinstance(source, pd.DataFrame):
        return [Piece("frame", source, "frame")], {"source": "frame"}
    path = Path(source)
    if not path.exists():
        raise IngestError("no such file", path=str(path))
    if not path.is_dir():
        return [Piece("file", str(path), str(path))], {"source": str(path)}
    from dcm.ingest.dataset import read_meta

    meta = read_meta(path)
    stored = int(meta.get("resolution", -1))
    keep = stored == resolution
    note = (
        f"stored cells reused (resolution {stored})"
        if keep
        else f"recomputed: the dataset has resolution {stored}, the analysis {resolution}"
    )
    files = sorted(
        p
        for p in path.rglob("*.parquet")
        if not any(part.startswith((".", "_")) for part in p.relative_to(path).parts)
    )
    pieces = [Piece("parquet", g, str(path), keep_h3=keep) for g in file_groups(files)]
    return pieces, {"source": str(path), "dataset": True, "h3": note, "_meta": meta}


def summarise(
    info: dict[str, Any], parts: list[PieceCount], *, name: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The summary's ``inputs`` and ``rejected_rows`` entries of an input read in pieces,
    as the whole-input readers report them (a dataset: checked against its metadata)."""
    accepted = sum(p.accepted for p in parts)
    duplicates = sum(p.duplicates for p in parts)
    rejected = sorted((r for p in parts for r in p.rejected), key=lambda r: r.line)
    info = dict(info)
    meta = info.pop("_meta", None)
    if info.get("source") == "frame":
        return {"source": "frame", "rows": accepted}, {}
    rows_in = sum(p.rows_in for p in parts)
    if meta is not None:
        from dcm.ingest.dataset import META_FILE, read_rejected

        stored = rows_in
        if stored != meta.get("rows", stored):
            raise IngestError(
                f"holds {stored:,} rows but {META_FILE} says {meta['rows']:,}: "
                "an incomplete copy? convert again",
                path=name,
            )
        rejected = read_rejected(Path(name))
        sources = meta.get("sources", [])
        rows_in = sum(int(s.get("rows_in", 0)) for s in sources)
        duplicates += sum(int(s.get("duplicates", 0)) for s in sources)
        if rows_in != accepted + len(rejected) + duplicates:
            raise IngestError(f"{META_FILE} and the rows stored disagree; convert again", path=name)
    report = IngestReport(
        path=name,
        kind="measurements",
        rows_in=rows_in,
        accepted=accepted,
        duplicates=duplicates,
        rejected=rejected,
    )
    entry = {"source": info["source"]}
    if meta is not None:
        entry |= {"dataset": True, "h3": info["h3"]}
    entry |= {"rows": accepted, "rows_in": report.rows_in, "duplicates": report.duplicates}
    return entry, {"count": report.rejected_count, "reasons": report.reasons()}


def scan_local(
    pieces: list[Piece],
    counter: Callable[[pd.DataFrame], Any],
    merge_all: Callable[[list[Any]], Any],
    *,
    size: ChunkSize,
    limit: int | None = None,
    label: str = "",
    tick: Callable[[str], None] | None = None,
) -> tuple[Any, list[PieceCount]]:
    """Count the pieces one after another in this process; copies across chunks and
    pieces are dropped (the first kept). Raises :class:`ParameterError` when the counts
    alone outgrow ``limit`` bytes."""
    dedupe = not (len(pieces) == 1 and pieces[0].kind == "frame")
    seen = SeenRows()
    done: list[PieceCount] = []
    rows = 0
    held = Fold(merge_all)

    def on_chunk(n: int, fold: Fold) -> None:
        nonlocal rows
        rows += n
        if tick is not None:
            tick(f"{label}: {rows:,} rows counted")
        if limit is not None:
            need = fold.nbytes + held.nbytes + seen.nbytes
            if need > limit:
                raise ParameterError(
                    f"--memory-limit {_gb(limit)}: the counts of {label or 'the input'} alone "
                    f"take {_gb(need)} after {rows:,} rows; raise the limit or count on a "
                    "cluster (--dask)"
                )

    for piece in pieces:
        part = count_piece(
            piece,
            counter,
            merge_all,
            size=size,
            seen=seen if dedupe else None,
            dedupe=dedupe,
            on_chunk=on_chunk,
        )
        if part.counts is not None:
            held.add(part.counts)
        part.counts = None
        done.append(part)
    return held.result(), done


def scan_with_dask(
    client: Any,
    pieces: list[Piece],
    counter: Callable[[pd.DataFrame], Any],
    merge_all: Callable[[list[Any]], Any],
    *,
    size: ChunkSize,
) -> tuple[Any, list[PieceCount]]:
    """Count the pieces on the workers of a ``dask.distributed`` client and merge the
    counts here. A frame is cut into one piece per worker thread. Pieces holding copies
    of rows of earlier pieces (in input order) are counted again without them."""
    # The counter carries the cell list (tens of MB for a national one): sent to each
    # worker once, not with every task (each queued task held its own copy).
    [counter] = client.scatter([counter], broadcast=True, hash=False)
    if len(pieces) == 1 and pieces[0].kind == "frame":
        frame = pieces[0].source
        n = max(sum(client.nthreads().values()), 1)
        bounds = np.linspace(0, len(frame), n + 1).astype(int)
        slices = [frame.iloc[a:b] for a, b in itertools.pairwise(bounds)]
        futures = client.map(
            _count_frame, [s for s in slices if len(s)], counter=counter, pure=False
        )
        counts = [c for c in client.gather(futures) if c is not None]
        return (merge_all(counts) if counts else None), [PieceCount(None, accepted=len(frame))]
    from distributed import as_completed

    # A bounded number of pieces in flight: a worker keeps each result until the client
    # has fetched it, and the client folds more slowly than the workers count, so with
    # every piece queued at once the results piled up on the workers (7.5 GB each for
    # 60 M rows). A new piece goes out as each result comes in.
    ahead = max(2 * sum(client.nthreads().values()), 2)
    queue = iter(range(len(pieces)))
    order: dict[str, int] = {}
    results = as_completed([], with_results=True)

    def submit() -> None:
        i = next(queue, None)
        if i is None:
            return
        future = client.submit(
            count_piece, pieces[i], counter=counter, merge_all=merge_all, size=size, pure=False
        )
        order[future.key] = i
        results.add(future)

    for _ in range(ahead):
        submit()
    # Results are folded in input order as they come (a piece is only known to hold no
    # copies of earlier pieces' rows once those are in): the client holds the merged
    # counts, the row keys and the few results that came early, not every piece's counts.
    fold = Fold(merge_all)
    seen = SeenRows()
    parts: list[PieceCount] = []
    early: dict[int, PieceCount] = {}
    redo: dict[int, np.ndarray] = {}
    for future, part in results:
        early[order.pop(future.key)] = part
        del future, part  # the result leaves the worker once it is here and folded
        submit()
        while len(parts) in early:
            i = len(parts)
            part = early.pop(i)
            earlier = seen.seen(part.keys)
            if earlier.any():
                redo[i] = part.keys[earlier]
            elif part.counts is not None:
                fold.add(part.counts)
            seen.add(part.keys)
            part.counts, part.keys = None, part.keys[:0]
            parts.append(part)
    if redo:
        again = client.map(
            _recount,
            [pieces[i] for i in redo],
            [redo[i] for i in redo],
            counter=counter,
            merge_all=merge_all,
            size=size,
            pure=False,
        )
        for i, part in zip(redo, client.gather(again), strict=True):
            if part.counts is not None:
                fold.add(part.counts)
            part.counts = None
            parts[i] = part
    return fold.result(), parts


def _recount(
    piece: Piece,
    drop: np.ndarray,
    counter: Callable[[pd.DataFrame], Any],
    merge_all: Callable[[list[Any]], Any],
    size: ChunkSize,
) -> PieceCount:
    return count_piece(piece, counter, merge_all, size=size, drop=drop)


def _count_frame(frame: pd.DataFrame, counter: Callable[[pd.DataFrame], Any]) -> Any:
    return counter(frame) if len(frame) else None


def _gb(n: float) -> str:
    return f"{n / 1024**3:.2f} GB" if n >= 1024**3 else f"{n / 1024**2:.0f} MB"


__all__ = [
    "ChunkSize",
    "Fold",
    "Piece",
    "PieceCount",
    "SeenRows",
    "count_piece",
    "parse_memory",
    "pieces_of",
    "row_keys",
    "scan_local",
    "scan_with_dask",
    "summarise",
]
