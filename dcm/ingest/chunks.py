"""Measurements read in bounded chunks, so that a multi-GB CSV never sits whole in memory.

:func:`iter_measurements` cuts a CSV (plain or gzip) into chunks of whole records (a
newline inside a quoted value never ends a chunk), parses each with the same code as
:func:`~dcm.ingest.read_measurements` and shifts its line numbers by the lines before
it, so every rejected row keeps its physical line in the file. Other formats are read
whole, as :func:`~dcm.ingest.read_measurements` reads them.

Copies of a measurement are dropped within a chunk; copies in different chunks are
found by :func:`combine_chunks`, which gives exactly what the whole-file reader gives.
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd

from dcm.errors import IngestError
from dcm.ingest._csv import _records, read_csv_strings
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
    source_name,
)
from dcm.ingest.measurements import (
    duplicated_measurements,
    guess_format,
    header_delimiter,
    normalise_measurements,
    read_measurements,
)
from dcm.ingest.report import IngestReport, IngestResult
from dcm.schema import MEASUREMENT_COLUMNS

#: Bytes of CSV parsed at a time (whole records; a record longer than this grows it).
#: About 135 000 canonical rows: a convert then peaks near 650 MB whatever the file size.
CHUNK_BYTES = 16 * 1024**2

_LONE_CR = re.compile(rb"\r(?!\n)")


def iter_measurements(
    source: Source,
    *,
    name: str | None = None,
    chunk_bytes: int = CHUNK_BYTES,
    device_secret: bytes | None = None,
    not_after: pd.Timestamp | None = None,
) -> Iterator[IngestResult]:
    """Canonical measurement frames of ``source``, chunk by chunk, each with its report.

    A CSV is read ``chunk_bytes`` at a time (rejected rows carry their line in the
    whole file); GeoJSON, NDJSON and Parquet give one chunk (read whole). Each chunk's
    report balances on its own; the duplicates it counts are copies within the chunk.
    Raises :class:`IngestError` for a file that cannot be read at all.
    """
    label = source_name(source, name)
    if chunk_bytes < 1:
        raise ValueError("chunk_bytes must be positive")
    blocks = _blocks(source, name=label, size=chunk_bytes)
    head = next(blocks, b"")
    fmt = guess_format(label, head)
    if fmt != "csv":
        # Read whole, within the limits of read_measurements (checked as it reads a path).
        whole = source if isinstance(source, str | Path) else head + b"".join(blocks)
        blocks.close()
        yield read_measurements(
            whole, format=fmt, name=label, device_secret=device_secret, not_after=not_after
        )
        return
    # A record longer than DCM_MAX_LINE_BYTES is refused, not carried on and on.
    guard = LineGuard(InputLimits.from_settings().max_line_bytes, name=label)
    yield from _csv_chunks(
        _record_chunks(
            _guarded(_prepend(head, blocks), guard),
            chunk_bytes=chunk_bytes,
            delimiter=header_delimiter(head),
        ),
        name=label,
        device_secret=device_secret,
        not_after=not_after,
    )


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
            device_secret=device_secret,
            rejected=table.rejected,
            rows_in=table.rows_in,
            not_after=not_after,
        )
        lines_before += text.count(b"\n")
    if names is None:
        raise IngestError("empty file (no header line)", path=name)


def _record_chunks(blocks: Iterator[bytes], *, chunk_bytes: int, delimiter: str) -> Iterator[bytes]:
    """Pieces of about ``chunk_bytes`` that end at a record boundary (a newline outside
    quoted values), lone CRs made newlines (as :func:`decode_utf8` does for a whole file).

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
        cut = _last_boundary(data, first=first, delimiter=delimiter)
        if cut < 0:  # no whole record yet: read on
            carry = data + held
            continue
        yield data[: cut + 1]
        first = False
        carry = data[cut + 1 :] + held
    if carry:
        yield carry


def _last_boundary(data: bytes, *, first: bool, delimiter: str) -> int:
    """Position of the last newline in ``data`` that ends a record (-1: none)."""
    if first and not data.strip(b"\r\n"):
        return -1  # only empty lines so far: the header is still to come
    if b'"' not in data:
        return data.rfind(b"\n")
    ends = _records(data, delimiter).ends
    ends = ends[ends < len(data)]
    return int(ends[-1]) if ends.size else -1


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


__all__ = ["CHUNK_BYTES", "combine_chunks", "iter_measurements"]
