"""Measurements read in bounded chunks, so that a multi-GB file never sits whole in memory.

:func:`iter_measurements` cuts a CSV or NDJSON file (plain or gzip) into chunks of whole
records (a newline inside a quoted CSV value never ends a chunk), parses each with the
same code as :func:`~dcm.ingest.read_measurements` and shifts its line numbers by the
lines before it, so every rejected row keeps its physical line in the file. A GeoJSON
FeatureCollection is parsed as a stream, a batch of features at a time
(:func:`dcm.ingest._json.iter_geojson`; the "line" is the feature number), and a
Parquet file a record batch at a time (the "line" is the row number).

Copies of a measurement are dropped within a chunk; copies in different chunks are
found by :func:`combine_chunks`, which gives exactly what the whole-file reader gives,
or, without keeping the rows, by :func:`spool_measurements` (what ``dcm ingest`` and
uploads use: the rows wait on disk for the store, a batch at a time).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable, Generator, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

import numpy as np
import pandas as pd

from dcm.errors import IngestError
from dcm.ingest._csv import read_csv_strings, structural_quotes
from dcm.ingest._fields import DeviceHasher
from dcm.ingest._json import Loaded, iter_geojson, json_records, ndjson_frame
from dcm.ingest._source import (
    GZIP_MAGIC,
    ZIP_MAGIC,
    ZIP_REFUSED,
    Inflater,
    InputLimits,
    LineGuard,
    Source,
    decode_utf8,
    open_source,
    read_bytes,
    source_name,
)
from dcm.ingest.measurements import (
    COLUMN_ALIASES,
    FORMATS,
    _canonical_names,
    _parquet_rows,
    duplicated_measurements,
    guess_format,
    header_delimiter,
    normalise_measurements,
)
from dcm.ingest.report import IngestReport, IngestResult, RejectedRow
from dcm.schema import MEASUREMENT_COLUMNS, MEASUREMENT_REQUIRED, empty_frame

#: Bytes of CSV parsed at a time (whole records; a record longer than this grows it).
#: About 135 000 canonical rows: a convert then peaks near 650 MB whatever the file size.
CHUNK_BYTES = 16 * 1024**2
#: Bytes of CSV per measurement, to size Parquet batches like CSV chunks.
CSV_BYTES_PER_ROW = 120
#: Bytes read before the format is guessed (``guess_format`` looks at 4 KiB).
_GUESS_BYTES = 4096

_LONE_CR = re.compile(rb"\r(?!\n)")


def iter_measurements(
    source: Source,
    *,
    name: str | None = None,
    format: str | None = None,
    chunk_bytes: int = CHUNK_BYTES,
    batch_rows: int | None = None,
    device_secret: bytes | None = None,
    not_after: pd.Timestamp | None = None,
) -> Iterator[IngestResult]:
    """Canonical measurement frames of ``source``, chunk by chunk, each with its report.

    A CSV or NDJSON file is read ``chunk_bytes`` at a time, a GeoJSON FeatureCollection
    about ``chunk_bytes`` of features at a time, a Parquet file ``batch_rows`` rows at a
    time (``chunk_bytes`` / 120 by default); rejected rows carry their line (feature,
    row) in the whole file. Each chunk's report balances on its own; the duplicates it
    counts are copies within the chunk. Raises :class:`IngestError` for a file that
    cannot be read at all (perhaps after the chunks before the fault).
    """
    label = source_name(source, name)
    if chunk_bytes < 1:
        raise ValueError("chunk_bytes must be positive")
    blocks = _blocks(source, name=label, size=chunk_bytes)
    head = b""
    for block in blocks:
        head += block
        if len(head) >= _GUESS_BYTES:
            break
    fmt = (format or guess_format(label, head)).lower()
    if fmt not in FORMATS:
        raise IngestError(f"unknown format {fmt!r} (use {', '.join(FORMATS)})", path=label)
    options: dict[str, Any] = {
        "name": label,
        "device_secret": device_secret,
        "not_after": not_after,
    }
    if fmt == "parquet":
        blocks.close()
        rows = batch_rows or max(chunk_bytes // CSV_BYTES_PER_ROW, 1)
        yield from _parquet_chunks(source, batch_rows=rows, **options)
        return
    if fmt == "geojson":
        yield from geojson_chunks(_prepend(head, blocks), chunk_bytes=chunk_bytes, **options)
        return
    # A record longer than DCM_MAX_LINE_BYTES is refused, not carried on and on.
    guard = LineGuard(InputLimits.from_settings().max_line_bytes, name=label)
    lines = _guarded(_prepend(head, blocks), guard)
    if fmt == "ndjson":
        pieces = _record_chunks(lines, chunk_bytes=chunk_bytes, boundary=_last_newline)
        yield from _json_chunks(_ndjson_pieces(pieces, name=label), **options)
        return
    delimiter = header_delimiter(head)
    yield from _csv_chunks(
        _record_chunks(
            lines,
            chunk_bytes=chunk_bytes,
            boundary=lambda data, first: _last_boundary(data, first=first, delimiter=delimiter),
        ),
        **options,
    )


def geojson_chunks(
    blocks: Iterable[bytes],
    *,
    name: str,
    chunk_bytes: int = CHUNK_BYTES,
    device_secret: bytes | None = None,
    not_after: pd.Timestamp | None = None,
) -> Iterator[IngestResult]:
    """Canonical measurement frames of a GeoJSON document given in ``blocks`` of bytes,
    about ``chunk_bytes`` of features at a time (a feature longer than
    ``DCM_MAX_LINE_BYTES`` is refused)."""
    limit = InputLimits.from_settings().max_line_bytes
    # Parsed features take ~30 times their text in Python objects: smaller batches.
    loaded = iter_geojson(
        blocks, name, chunk_bytes=max(chunk_bytes // 8, 1), max_feature_bytes=limit
    )
    yield from _json_chunks(
        ((part, 0) for part in loaded), name=name, device_secret=device_secret, not_after=not_after
    )


def _ndjson_pieces(pieces: Iterator[bytes], *, name: str) -> Iterator[tuple[Loaded, int]]:
    """Each piece of whole NDJSON lines parsed, with the lines before it."""
    lines_before = 0
    for i, piece in enumerate(pieces):
        text = decode_utf8(piece, name=name, start=i == 0)
        yield ndjson_frame(text, name, start=False, whole=False), lines_before
        lines_before += text.count(b"\n")


def _json_chunks(
    parts: Iterable[tuple[Loaded, int]],
    *,
    name: str,
    device_secret: bytes | None,
    not_after: pd.Timestamp | None,
) -> Iterator[IngestResult]:
    """Validate parsed JSON pieces (each with the lines before it) as the whole-file
    reader validates the whole: a required column that a piece lacks is empty there,
    and the columns of all pieces together are checked as one header at the end."""
    columns: dict[str, None] = {}  # of the pieces with rows, in order
    kept = rejected_before = records = 0
    hasher = DeviceHasher(device_secret)
    for (raw, lines, raw_rows, rejected), before in parts:
        records += json_records((raw, lines, raw_rows, rejected))
        if before:
            lines = lines + before
            for row in rejected:
                row.line += before
        rejected_before += len(rejected)
        if len(raw):
            kept += len(raw)
            columns |= dict.fromkeys(map(str, raw.columns))
        names = {COLUMN_ALIASES.get(c.strip().lower(), c.strip().lower()) for c in map(str, raw)}
        missing = [c for c in MEASUREMENT_REQUIRED if c not in names]
        if missing:
            raw = raw.assign(
                **{c: pd.Series(pd.NA, index=raw.index, dtype="string") for c in missing}
            )
        yield normalise_measurements(
            raw,
            lines=lines,
            raw_rows=raw_rows,
            name=name,
            kind="measurements",
            rejected=rejected,
            rows_in=len(raw) + len(rejected),
            not_after=not_after,
            device_hasher=hasher,
        )
    if not records and rejected_before:
        raise IngestError("no line is valid JSON (not an NDJSON file)", path=name)
    if kept or not rejected_before:
        # The header the whole file would have had: required columns, no name twice.
        _canonical_names(pd.DataFrame(columns=list(columns)), name=name)


def _parquet_chunks(
    source: Source,
    *,
    name: str,
    batch_rows: int,
    device_secret: bytes | None,
    not_after: pd.Timestamp | None,
) -> Iterator[IngestResult]:
    """A Parquet file a record batch at a time (a path is read in place; gzip or a
    stream is read into memory first, within the input limits)."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    plain = isinstance(source, str | Path) and _magic(Path(source)) != GZIP_MAGIC
    done = 0
    hasher = DeviceHasher(device_secret)
    try:
        parquet = pq.ParquetFile(source if plain else io.BytesIO(read_bytes(source, name=name)))
        batches = parquet.iter_batches(batch_size=batch_rows)
        for batch in batches:
            frame = batch.to_pandas().reset_index(drop=True)
            n = len(frame)
            yield normalise_measurements(
                frame,
                lines=np.arange(done + 1, done + n + 1),
                raw_rows=_parquet_rows(frame),
                name=name,
                kind="measurements",
                not_after=not_after,
                device_hasher=hasher,
            )
            done += n
    except (pa.ArrowException, OSError, ValueError) as exc:
        if isinstance(exc, IngestError):
            raise
        raise IngestError(f"not a readable Parquet file ({exc})", path=name) from exc
    if not done:
        frame = parquet.schema_arrow.empty_table().to_pandas()
        yield normalise_measurements(
            frame,
            lines=np.zeros(0, np.int64),
            raw_rows=_parquet_rows(frame),
            name=name,
            kind="measurements",
            device_secret=device_secret,
            not_after=not_after,
        )


def _magic(path: Path) -> bytes:
    with open_source(path, name=str(path)) as fh:
        return fh.read(2)


def combine_chunks(results: list[IngestResult], *, name: str) -> IngestResult:
    """One result from the chunks of one read, as the whole-file reader gives it: the
    frames in order, copies across chunks dropped (the first kept), rejected rows by line.
    """
    frames = [r.frame for r in results]
    frame = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame({c: pd.Series([], dtype=t) for c, t in MEASUREMENT_COLUMNS.items()})
    )
    dup = duplicated_measurements(frame)
    if dup.any():
        frame = frame.loc[~dup].reset_index(drop=True)
    rejected = sorted((row for r in results for row in r.report.rejected), key=lambda r: r.line)
    report = IngestReport(
        path=name,
        kind="measurements",
        rows_in=sum(r.report.rows_in for r in results),
        accepted=len(frame),
        duplicates=sum(r.report.duplicates for r in results) + int(dup.sum()),
        rejected=rejected,
    )
    return IngestResult(frame=frame, report=report)


class CopyFinder:
    """Copies of a measurement across the chunks of one read, as :func:`combine_chunks`
    finds them in the whole frame (same ``measurement_id``, or same content when it has
    none; the first kept), remembering 16 bytes per row instead of the rows: a 128-bit
    hash of the id, or of the content."""

    _KEYS = ("dcm-copies-key-1", "dcm-copies-key-2")

    def __init__(self) -> None:
        self._seen: set[bytes] = set()

    def later_copies(self, frame: pd.DataFrame) -> np.ndarray:
        """Rows of ``frame`` (a chunk with no copies within it) seen in an earlier chunk;
        its rows count as seen from now on."""
        if frame.empty:
            return np.zeros(0, dtype=bool)
        ids = frame["measurement_id"].astype("string")
        has_id = ids.notna().to_numpy()
        content = [c for c in MEASUREMENT_COLUMNS if c != "measurement_id" and c in frame]
        halves = np.empty((len(frame), 2), dtype=np.uint64)
        for half, key in enumerate(self._KEYS):
            if has_id.any():
                values = ids.to_numpy(dtype=object, na_value="")[has_id]
                halves[has_id, half] = pd.util.hash_array(values, hash_key=key)
            if not has_id.all():
                rows = frame.loc[~has_id, content]
                halves[~has_id, half] = pd.util.hash_pandas_object(
                    rows, index=False, hash_key=key
                ).to_numpy()
        keys = halves.view("V16").ravel().tolist()
        later = np.fromiter(map(self._seen.__contains__, keys), dtype=bool, count=len(keys))
        self._seen.update(keys)
        return later


class MeasurementSpool:
    """Canonical measurement frames kept for writing ``batch_rows`` rows at a time: in
    memory while they fit in one batch, else in an Arrow IPC file in ``folder``, unlinked
    from the start (nothing is left behind, even by a killed process)."""

    def __init__(self, *, folder: Path, batch_rows: int) -> None:
        self.folder = Path(folder)
        self.batch_rows = max(int(batch_rows), 1)
        self.rows = 0
        self._held: list[pd.DataFrame] = []
        self._held_rows = 0
        self._file: Any = None
        self._writer: Any = None
        self._schema: Any = None

    def add(self, frame: pd.DataFrame) -> None:
        """Keep the rows of ``frame`` (MEASUREMENT_COLUMNS) after those added before."""
        if frame.empty:
            return
        self._held.append(frame)
        self._held_rows += len(frame)
        self.rows += len(frame)
        if self._held_rows >= self.batch_rows:
            self._spill()

    def _spill(self) -> None:
        import pyarrow as pa

        frame = pd.concat(self._held, ignore_index=True)
        self._held, self._held_rows = [], 0
        if self._writer is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            # Closed by close(); unlinked at once, so a killed process leaves no file.
            self._file = tempfile.TemporaryFile(dir=self.folder, prefix="dcm-spool-")  # noqa: SIM115
            self._schema = pa.Schema.from_pandas(frame, preserve_index=False)
            self._writer = pa.ipc.new_file(pa.PythonFile(self._file, mode="w"), self._schema)
        table = pa.Table.from_pandas(frame, schema=self._schema, preserve_index=False)
        self._writer.write_table(table, max_chunksize=self.batch_rows)

    def batches(self) -> Iterator[pd.DataFrame]:
        """The rows kept, in order, in frames of at most ``batch_rows`` rows (one empty
        frame when none were kept)."""
        import pyarrow as pa

        if self._writer is None:
            frame = (
                pd.concat(self._held, ignore_index=True)
                if self._held
                else empty_frame(MEASUREMENT_COLUMNS)
            )
            for start in range(0, max(len(frame), 1), self.batch_rows):
                yield frame.iloc[start : start + self.batch_rows].reset_index(drop=True)
            return
        if self._held:
            self._spill()
        self._writer.close()
        self._file.flush()
        self._file.seek(0)
        reader = pa.ipc.open_file(pa.PythonFile(self._file, mode="r"))
        for i in range(reader.num_record_batches):
            yield reader.get_batch(i).to_pandas()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> MeasurementSpool:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def spool_measurements(
    results: Iterable[IngestResult], spool: MeasurementSpool, *, name: str
) -> IngestReport:
    """Keep the frames of a chunked read (:func:`iter_measurements`) in ``spool``,
    copies across chunks dropped, and return the report of the whole read: the same
    rows kept and the same report as :func:`combine_chunks` gives, without holding
    the rows in memory."""
    copies = CopyFinder()
    rows_in = duplicates = 0
    rejected: list[RejectedRow] = []
    for result in results:
        frame = result.frame
        later = copies.later_copies(frame)
        if later.any():
            frame = frame.loc[~later].reset_index(drop=True)
        spool.add(frame)
        rows_in += result.report.rows_in
        duplicates += result.report.duplicates + int(later.sum())
        rejected += result.report.rejected
    rejected.sort(key=lambda r: r.line)
    return IngestReport(
        path=name,
        kind="measurements",
        rows_in=rows_in,
        accepted=spool.rows,
        duplicates=duplicates,
        rejected=rejected,
    )


def _csv_chunks(
    chunks: Iterator[bytes],
    *,
    name: str,
    device_secret: bytes | None,
    not_after: pd.Timestamp | None,
) -> Iterator[IngestResult]:
    names: list[str] | None = None
    delimiter = ","
    lines_before = 0
    hasher = DeviceHasher(device_secret)
    for chunk in chunks:
        first = names is None
        text = decode_utf8(chunk, name=name, start=first)
        if first:
            delimiter = header_delimiter(text)
            names, table = read_csv_strings(text, name=name, delimiter=delimiter)
        else:
            _, table = read_csv_strings(
                text, name=name, delimiter=delimiter, header=False, column_names=names
            )
        for row in table.rejected:
            row.line += lines_before
        yield normalise_measurements(
            table.frame,
            lines=table.lines + lines_before,
            raw_rows=table.raw_rows,
            name=name,
            kind="measurements",
            rejected=table.rejected,
            rows_in=table.rows_in,
            not_after=not_after,
            device_hasher=hasher,
        )
        lines_before += text.count(b"\n")
    if names is None:
        raise IngestError("empty file (no header line)", path=name)


def _record_chunks(
    blocks: Iterator[bytes], *, chunk_bytes: int, boundary: Callable[[bytes, bool], int]
) -> Iterator[bytes]:
    """Pieces of about ``chunk_bytes`` that end at a record boundary (``boundary(data,
    first)``: the position of the last newline ending a record, -1 for none), lone CRs
    made newlines (as :func:`decode_utf8` does for a whole file).

    The first piece holds at least one non-empty line (the header).
    """
    carry = b""
    first = True
    pending = next(blocks, None)
    while pending is not None:
        data = carry + pending
        pending = next(blocks, None)
        while pending is not None and len(data) < chunk_bytes:
            data += pending
            pending = next(blocks, None)
        last = pending is None
        if not last and data.endswith(b"\r"):  # its LF may open the next block
            data, held = data[:-1], b"\r"
        else:
            held = b""
        if b"\r" in data:
            data = _LONE_CR.sub(b"\n", data)
        if last:
            if data:
                yield data
            return
        cut = boundary(data, first)
        if cut < 0:  # no whole record yet: read on
            carry = data + held
            continue
        yield data[: cut + 1]
        first = False
        carry = data[cut + 1 :] + held
    if carry:
        yield carry


def _last_newline(data: bytes, first: bool) -> int:
    """Position of the last newline in ``data`` (-1: none); no JSON string holds one."""
    if first and not data.strip(b"\r\n"):
        return -1
    return data.rfind(b"\n")


def _last_boundary(data: bytes, *, first: bool, delimiter: str) -> int:
    """Position of the last newline in ``data`` that ends a record (-1: none)."""
    if first and not data.strip(b"\r\n"):
        return -1  # only empty lines so far: the header is still to come
    if b'"' not in data:
        return data.rfind(b"\n")
    # A newline ends a record when an even number of structural quotes precede it:
    # newlines are tried from the last back (usually the last one is such an end).
    quotes = structural_quotes(np.frombuffer(data, dtype=np.uint8), ord(delimiter))
    cut = len(data)
    while (cut := data.rfind(b"\n", 0, cut)) >= 0:
        if np.searchsorted(quotes, cut) % 2 == 0:
            return cut
    return -1


def _blocks(source: Source, *, name: str, size: int) -> Generator[bytes, None, None]:
    """The bytes of ``source`` in blocks of up to ``size`` (gunzipped when gzip).

    Streamed input never sits whole in memory, so only the gzip inflation ratio
    (``DCM_MAX_INFLATION_RATIO``) bounds it, not ``DCM_MAX_DECOMPRESSED_BYTES``.
    """
    with open_source(source, name=name) as stream:
        yield from _stream_blocks(stream, name=name, size=size)


def _stream_blocks(stream: BinaryIO, *, name: str, size: int) -> Iterator[bytes]:
    head = stream.read(4)
    if head[:4] in ZIP_MAGIC:
        raise IngestError(ZIP_REFUSED, path=name)
    if head[:2] != GZIP_MAGIC:
        chunk = head + stream.read(max(size - len(head), 1))
        while chunk:
            yield chunk
            chunk = stream.read(size)
        return
    limits = InputLimits.from_settings()
    inflater = Inflater(InputLimits(np.iinfo(np.int64).max, limits.max_ratio), name=name)
    chunk = head
    started = False
    while chunk:
        for piece in inflater.pieces(chunk):
            if not started and piece[:4] in ZIP_MAGIC:
                raise IngestError(ZIP_REFUSED, path=name)
            started = started or bool(piece)
            if piece:
                yield piece
        chunk = stream.read(1024**2)
    inflater.finish()


def _guarded(blocks: Iterator[bytes], guard: LineGuard) -> Iterator[bytes]:
    for block in blocks:
        guard.feed(block)
        yield block


def _prepend(head: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if head:
        yield head
    yield from rest


__all__ = [
    "CHUNK_BYTES",
    "CopyFinder",
    "MeasurementSpool",
    "combine_chunks",
    "iter_measurements",
    "spool_measurements",
]
