"""Delimited text → a frame of strings with the physical line of every row.

pyarrow parses (fast, multithreaded) with every column read as a string; validation is
left to the readers, done vectorised on those strings. To report bad rows by line we
find the record boundaries ourselves with numpy: a newline ends a record unless it lies
inside a quoted value (an odd number of quotes before it). pyarrow first reads the whole
file in one pass; only when it refuses a row are the fields of every record counted, so
that rows with too few or too many fields are reported, not fatal, and the others read.

Quotes are counted only where they can open or close a value (next to a delimiter, a line
end or another quote); a stray quote inside an unquoted value is literal text, as pyarrow
reads it. When our record count still disagrees with pyarrow's (irregular quoting), the
file is re-read with Python's :mod:`csv` module, which tracks lines itself: slower, but
exact.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from dcm.errors import IngestError
from dcm.ingest.report import RejectedRow

NL, CR, QUOTE = 10, 13, 34


@dataclass
class StringTable:
    """Parsed rows as strings (``""`` for empty), their physical lines and raw text.

    ``starts``/``stops`` (byte range of each row in ``data``) are None when every line
    is one row: they are found only if a row's raw text is asked for.
    """

    frame: pd.DataFrame
    lines: np.ndarray
    raw: list[str] | None
    starts: np.ndarray | None
    stops: np.ndarray | None
    data: bytes
    rejected: list[RejectedRow] = field(default_factory=list)
    rows_in: int = 0
    delimiter: str = ","
    header: bool = True

    def raw_rows(self, positions: np.ndarray) -> list[str]:
        """Raw text of the rows at ``positions`` (0-based positions in ``frame``)."""
        if self.raw is not None:
            return [self.raw[i] for i in positions]
        if self.starts is None or self.stops is None:
            # One row per line (see _parse_plain): the rows' lines give their bytes.
            ends = np.flatnonzero(np.frombuffer(self.data, dtype=np.uint8) == NL)
            ends = np.append(ends, len(self.data))  # the last line may lack a newline
            line_starts = np.concatenate(([0], ends[:-1] + 1))
            self.starts, self.stops = line_starts[self.lines - 1], ends[self.lines - 1]
        return [
            self.data[self.starts[i] : self.stops[i]].decode("utf-8", errors="replace")
            for i in positions
        ]


@dataclass
class _Records:
    starts: np.ndarray  # byte offset where each non-empty record starts
    stops: np.ndarray  # byte offset after its content (line end excluded)
    ends: np.ndarray  # byte offset of its terminating newline (or len(data))
    lines: np.ndarray  # 1-based physical line of its first byte
    quoted: bool
    quotes: np.ndarray  # positions of quotes that open or close values


def _field_counts(data: bytes, delimiter: str, rec: _Records) -> np.ndarray:
    """Number of fields of each record (delimiters outside quoted values, plus one)."""
    dpos = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == ord(delimiter))
    if rec.quoted and dpos.size:
        dpos = dpos[np.searchsorted(rec.quotes, dpos) % 2 == 0]
    # Delimiters before each record end, differenced (one lookup per record, not per
    # delimiter). Skipped empty lines hold no delimiters, so differencing kept records
    # is exact.
    return np.diff(np.searchsorted(dpos, rec.ends), prepend=0) + 1


def _records(data: bytes, delimiter: str) -> _Records:
    arr = np.frombuffer(data, dtype=np.uint8)
    n = arr.size
    delim = ord(delimiter)
    newlines = np.flatnonzero(arr == NL)
    quoted = b'"' in data
    qpos = np.zeros(0, dtype=np.int64)
    if quoted:
        qpos = structural_quotes(arr, delim)
        boundary = np.searchsorted(qpos, newlines) % 2 == 0
        ends = newlines[boundary]
    else:
        ends = newlines
    if n and (ends.size == 0 or ends[-1] != n - 1):
        ends = np.append(ends, n)
    starts = np.concatenate(([0], ends[:-1] + 1)).astype(np.int64)
    stops = ends.copy()
    has_cr = (stops > starts) & (arr[np.clip(stops - 1, 0, max(n - 1, 0))] == CR)
    stops = stops - has_cr
    keep = stops > starts  # pyarrow skips empty lines; so do we
    # Without quotes every record is one line; with them, count newlines before its start.
    lines = np.searchsorted(newlines, starts) + 1 if quoted else np.arange(1, starts.size + 1)
    return _Records(starts[keep], stops[keep], ends[keep], lines[keep], quoted, qpos)


def structural_quotes(arr: np.ndarray, delim: int) -> np.ndarray:
    """Positions of the quotes in ``arr`` (bytes as uint8) that can open or close a
    value: next to a delimiter, a line end, another quote or the data's ends."""
    n = arr.size
    qpos = np.flatnonzero(arr == QUOTE)
    edge = np.zeros(256, dtype=bool)
    edge[[NL, CR, QUOTE, delim]] = True
    prev = np.where(qpos > 0, arr[np.maximum(qpos - 1, 0)], NL)
    nxt = np.where(qpos < n - 1, arr[np.minimum(qpos + 1, n - 1)], NL)
    return qpos[edge[prev] | edge[nxt]]


def _line_count(data: bytes) -> int | None:
    """Number of lines (a fast C count of newlines), or None for a file with carriage
    returns or a leading empty line, which need the record scan of :func:`_records`."""
    if b"\r" in data or data[:1] == b"\n":
        return None
    return data.count(b"\n") + (len(data) > 0 and not data.endswith(b"\n"))


def _parse_plain(
    data: bytes, *, name: str, delimiter: str, header: bool, column_names: list[str] | None
) -> tuple[list[str], StringTable] | None:
    """:func:`read_csv_strings` in one pyarrow pass when every line is one record.

    pyarrow finds the records (quoted values may span lines, empty lines are skipped);
    when it finds as many as there are lines, no record spans two, no line is empty and
    each row's line is known. None when that does not hold or pyarrow refuses a row:
    then records are scanned to report each bad row.
    """
    records = _line_count(data)
    if records is None:
        return None
    if header:
        if records == 0:
            raise IngestError("empty file (no header line)", path=name)
        end = data.find(b"\n")
        end = len(data) if end < 0 else end
        names = _header_names(data[:end].decode("utf-8", errors="replace"), delimiter, name=name)
        body, rows, first = data[end + 1 :], records - 1, 2
    else:
        names, body, rows, first = _given_names(column_names), data, records, 1
    frame = _parse_arrow(body, names, delimiter, quoted=b'"' in body, expected=rows)
    if frame is None:
        return None
    lines = np.arange(first, first + rows, dtype=np.int64)
    table = StringTable(frame, lines, None, None, None, data, [], rows, delimiter, header)
    return names, table


def _given_names(column_names: list[str] | None) -> list[str]:
    if column_names is None:
        raise ValueError("column_names is required when header=False")
    return list(column_names)


def _header_names(text: str, delimiter: str, *, name: str) -> list[str]:
    try:
        names = next(csv.reader([text], delimiter=delimiter))
    except (csv.Error, StopIteration) as exc:
        raise IngestError(f"unreadable header line ({exc})", path=name) from exc
    # Unnamed columns (trailing delimiters) get placeholder names nobody reads.
    names = [n.strip() or f"_unnamed_{i + 1}" for i, n in enumerate(names)]
    seen = [n for n in names if names.count(n) > 1]
    if seen:
        raise IngestError(f"duplicate column names in header: {sorted(set(seen))}", path=name)
    return names


def read_csv_strings(
    data: bytes,
    *,
    name: str,
    delimiter: str = ",",
    header: bool = True,
    column_names: list[str] | None = None,
) -> tuple[list[str], StringTable]:
    """Parse delimited UTF-8 ``data`` into strings; rows with a wrong field count are rejected.

    With ``header`` the first non-empty record gives the column names (stripped);
    otherwise ``column_names`` must be given. Returns ``(names, table)``.
    """
    plain = _parse_plain(
        data, name=name, delimiter=delimiter, header=header, column_names=column_names
    )
    if plain is not None:
        return plain
    rec = _records(data, delimiter)
    if header:
        if rec.starts.size == 0:
            raise IngestError("empty file (no header line)", path=name)
        head = data[rec.starts[0] : rec.stops[0]].decode("utf-8", errors="replace")
        names = _header_names(head, delimiter, name=name)
        body = slice(1, None)
    else:
        names = _given_names(column_names)
        body = slice(0, None)
    starts, stops, ends = rec.starts[body], rec.stops[body], rec.ends[body]
    lines = rec.lines[body]
    rows_in = int(starts.size)
    if rows_in:
        # Optimistic pass: most files have no malformed row, and pyarrow checks the
        # field counts itself (it refuses the file at the first bad row).
        frame = _parse_arrow(
            data[starts[0] :], names, delimiter, quoted=rec.quoted, expected=rows_in
        )
        if frame is not None:
            table = StringTable(
                frame, lines, None, starts, stops, data, [], rows_in, delimiter, header
            )
            return names, table
    fields = _field_counts(data, delimiter, rec)[body]
    good = fields == len(names)
    rejected = [
        RejectedRow(
            int(lines[i]),
            "row",
            f"expected {len(names)} fields, found {int(fields[i])}",
            data[starts[i] : stops[i]].decode("utf-8", errors="replace"),
        )
        for i in np.flatnonzero(~good)
    ]
    if good.all() and starts.size:
        buffer = data[starts[0] :]
    else:
        # Keep the bytes of good records (content plus line end), vectorised.
        mark = np.zeros(len(data) + 1, dtype=np.int8)
        np.add.at(mark, starts[good], 1)
        np.add.at(mark, np.minimum(ends[good] + 1, len(data)), -1)
        keep = np.cumsum(mark[:-1], dtype=np.int8) > 0
        buffer = np.frombuffer(data, dtype=np.uint8)[keep].tobytes()
    frame = _parse_arrow(buffer, names, delimiter, quoted=rec.quoted, expected=int(good.sum()))
    if frame is None:
        return names, _parse_python(data, names, delimiter, header=header, name=name)
    table = StringTable(
        frame=frame,
        lines=lines[good],
        raw=None,
        starts=starts[good],
        stops=stops[good],
        data=data,
        rejected=rejected,
        rows_in=rows_in,
        delimiter=delimiter,
        header=header,
    )
    return names, table


def _parse_arrow(
    buffer: bytes, names: list[str], delimiter: str, *, quoted: bool, expected: int
) -> pd.DataFrame | None:
    """pyarrow parse of ``buffer`` (no header) as strings; None when it disagrees with us."""
    cols = [f"c{i}" for i in range(len(names))]
    if expected == 0:
        return pd.DataFrame({n: pd.Series([], dtype="str") for n in names})
    try:
        table = pacsv.read_csv(
            pa.py_buffer(buffer),
            read_options=pacsv.ReadOptions(column_names=cols, block_size=1 << 24),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=quoted),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(cols, pa.string()), strings_can_be_null=False
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowException):
        return None
    if table.num_rows != expected:
        return None
    # Zero-copy: the Arrow columns back the pandas columns (ArrowDtype strings).
    return pd.DataFrame(
        {i: pd.arrays.ArrowExtensionArray(col) for i, col in enumerate(table.columns)}
    ).set_axis(names, axis=1)


def _parse_python(
    data: bytes, names: list[str], delimiter: str, *, header: bool, name: str
) -> StringTable:
    """Exact but slow path for irregular quoting: Python's csv module tracks lines itself."""
    text = data.decode("utf-8", errors="replace")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=False)
    rows: list[list[str]] = []
    lines: list[int] = []
    raws: list[str] = []
    rejected: list[RejectedRow] = []
    # Only LF/CRLF end lines here (lone CRs were made LFs); str.splitlines would also
    # split at form feeds and Unicode separators, which csv keeps inside values.
    physical = text.replace("\r\n", "\n").split("\n")
    last_line = 0
    skipped_header = not header
    rows_in = 0
    try:
        for row in reader:
            start, last_line = last_line + 1, reader.line_num
            if not row or (len(row) == 1 and row[0] == ""):
                continue
            if not skipped_header:
                skipped_header = True
                continue
            rows_in += 1
            raw = "\n".join(physical[start - 1 : last_line])
            if len(row) != len(names):
                reason = f"expected {len(names)} fields, found {len(row)}"
                rejected.append(RejectedRow(start, "row", reason, raw))
                continue
            rows.append(row)
            lines.append(start)
            raws.append(raw)
    except csv.Error as exc:
        raise IngestError(f"unreadable CSV near line {last_line + 1} ({exc})", path=name) from exc
    frame = (
        pd.DataFrame(rows, columns=names, dtype="str")
        if rows
        else pd.DataFrame({n: pd.Series([], dtype="str") for n in names})
    )
    empty = np.zeros(0, dtype=np.int64)
    return StringTable(
        frame=frame,
        lines=np.asarray(lines, dtype=np.int64),
        raw=raws,
        starts=empty,
        stops=empty,
        data=b"",
        rejected=rejected,
        rows_in=rows_in,
    )
