"""Canonical measurements from CSV, GeoJSON points, Parquet or NDJSON (plain or gzip).

Field rules (``docs/ingest.md``): ``timestamp`` ISO 8601 with ``Z`` or an offset (stored
UTC; naive times rejected), ``lat``/``lon`` WGS84 degrees in range, ``status`` one of
``ok``/``no_service``/``failed`` (any case), optional ``mcc``/``mnc`` (``net`` is an alias),
``radio``, ``area``, ``cell`` integers, signal and speed floats, ``measurement_id`` and a
``device`` that is hashed before it leaves this module.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd

from dcm.errors import IngestError
from dcm.ingest import _fields as f
from dcm.ingest._csv import read_csv_strings
from dcm.ingest._json import RawRows, ndjson_frame
from dcm.ingest._source import Source, decode_utf8, iter_bytes, peek, read_bytes, source_name
from dcm.ingest.report import IngestReport, IngestResult, RejectedRow
from dcm.schema import (
    MEASUREMENT_COLUMNS,
    MEASUREMENT_REQUIRED,
    RADIOS,
    STATUSES,
    network_key,
)

FORMATS = ("csv", "geojson", "parquet", "ndjson")

#: Accepted alternative column names (after lower-casing) → canonical name.
COLUMN_ALIASES = {"net": "mnc", "latitude": "lat", "longitude": "lon", "lng": "lon"}

_STATUS_MAP = {s: s for s in STATUSES}
_RADIO_MAP = {r: r for r in RADIOS} | {"WCDMA": "UMTS"}


def read_measurements(
    source: Source,
    *,
    format: str | None = None,
    device_secret: bytes | None = None,
    name: str | None = None,
    not_after: pd.Timestamp | None = None,
) -> IngestResult:
    """Read canonical measurements; bad rows are reported, good rows kept.

    ``format`` is ``csv``, ``geojson``, ``parquet`` or ``ndjson`` (guessed from the name,
    then the content, when None). ``device_secret`` keys the HMAC of device ids (a fixed
    documented default when None: local analysis only). Returns a frame with
    :data:`dcm.schema.MEASUREMENT_COLUMNS` and an :class:`IngestReport` of kind
    ``measurements``. Rows timed after ``not_after`` (the time the data was received
    plus an allowance for device clocks) are rejected: a measurement cannot come from
    the future.
    """
    label = source_name(source, name)
    head = peek(source, name=label) if format is None else None
    fmt = (format or (guess_format(label, head) if head is not None else "")).lower()
    if fmt == "geojson":
        # One document, often one line: parsed as a stream, a batch of features at a time.
        from dcm.ingest.chunks import combine_chunks, geojson_chunks

        chunks = geojson_chunks(
            iter_bytes(source, name=label),
            name=label,
            device_secret=device_secret,
            not_after=not_after,
        )
        return combine_chunks(list(chunks), name=label)
    # CSV and NDJSON hold one record per line: a longer line than DCM_MAX_LINE_BYTES is
    # refused as soon as it passes the limit, never read whole.
    data = read_bytes(source, name=label, line_based=lambda head: line_based(label, head, format))
    fmt = (fmt or guess_format(label, data)).lower()
    if fmt not in FORMATS:
        raise IngestError(f"unknown format {fmt!r} (use {', '.join(FORMATS)})", path=label)
    if fmt == "geojson":  # known only now (a stream that cannot seek back)
        from dcm.ingest.chunks import combine_chunks, geojson_chunks

        chunks = geojson_chunks(
            [data], name=label, device_secret=device_secret, not_after=not_after
        )
        return combine_chunks(list(chunks), name=label)
    if fmt == "csv":
        data = decode_utf8(data, name=label)
        _, table = read_csv_strings(data, name=label, delimiter=header_delimiter(data))
        raw = table.frame
        raw_rows: RawRows = table.raw_rows
        lines, rejected, rows_in = table.lines, table.rejected, table.rows_in
    else:
        loader = {"parquet": _parquet_frame, "ndjson": ndjson_frame}
        raw, lines, raw_rows, rejected = loader[fmt](data, label)
        rows_in = len(raw) + len(rejected)
    return normalise_measurements(
        raw,
        lines=lines,
        raw_rows=raw_rows,
        name=label,
        kind="measurements",
        device_secret=device_secret,
        rejected=rejected,
        rows_in=rows_in,
        not_after=not_after,
    )


def header_delimiter(data: bytes) -> str:
    """``,`` unless the header line has none but has tabs or semicolons (spreadsheet saves)."""
    head = data[:4096].split(b"\n", 1)[0]
    if b"," in head:
        return ","
    return "\t" if b"\t" in head else (";" if b";" in head else ",")


def line_based(name: str, head: bytes, format: str | None = None) -> bool:
    """Whether a measurement file of ``format`` (else guessed from ``name`` and its
    first bytes ``head``) holds one record per line: CSV and NDJSON do."""
    return (format or guess_format(name, head)).lower() in ("csv", "ndjson")


def guess_format(name: str, data: bytes) -> str:
    """``csv``/``geojson``/``parquet``/``ndjson`` from the file name, else from the content."""
    lower = name.lower().removesuffix(".gz")
    for suffix, fmt in (
        (".parquet", "parquet"), (".pq", "parquet"), (".geojson", "geojson"),
        (".ndjson", "ndjson"), (".jsonl", "ndjson"), (".geojsonl", "ndjson"),
        (".geojsons", "ndjson"), (".csv", "csv"), (".txt", "csv"),
    ):  # fmt: skip
        if lower.endswith(suffix):
            return fmt
    if data[:4] == b"PAR1":
        return "parquet"
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n\x1e")
    if head.startswith(b"{"):
        first = head.split(b"\n", 1)[0]
        try:
            obj = json.loads(first)
        except ValueError:
            return "geojson"  # a multi-line JSON document
        if isinstance(obj, dict) and obj.get("type") == "FeatureCollection":
            return "geojson"
        return "ndjson"
    return "csv"


def normalise_measurements(
    raw: pd.DataFrame,
    *,
    lines: np.ndarray,
    raw_rows: RawRows,
    name: str,
    kind: str,
    device_secret: bytes | None = None,
    rejected: list[RejectedRow] | None = None,
    rows_in: int | None = None,
    reject_unknown_radio: bool = True,
    errors: f.RowErrors | None = None,
    not_after: pd.Timestamp | None = None,
    device_hasher: f.DeviceHasher | None = None,
) -> IngestResult:
    """Validate a frame of canonical-named columns (strings or typed) → canonical frame.

    ``lines`` gives each row's line for the report, ``raw_rows(positions)`` its raw text.
    Rows already rejected upstream (``rejected``) count toward ``rows_in``; ``errors``
    may carry reasons found by a format-specific reader (they take precedence).
    With ``reject_unknown_radio=False`` radio names are mapped through
    :data:`RADIO_ALIASES` and unknown ones become ``<NA>`` (app logs).
    ``device_hasher``: one shared by the chunks of a read, keyed by the read's secret
    (given instead of ``device_secret``).
    """
    rejected = list(rejected or [])
    raw = _canonical_names(raw, name=name)
    n = len(raw)
    rows_in = n + len(rejected) if rows_in is None else rows_in

    def col(c: str) -> pd.Series:
        if c in raw.columns:
            return raw[c]
        return pd.Series(pd.NA, index=raw.index, dtype="string")

    errors = f.RowErrors(n) if errors is None else errors
    out = pd.DataFrame(index=raw.index)
    f.refuse_nul(raw, errors, MEASUREMENT_COLUMNS)
    f.required(col("timestamp"), errors, "timestamp")
    out["timestamp"] = f.timestamps_iso(col("timestamp"), errors, "timestamp")
    if not_after is not None:
        late = (out["timestamp"] > not_after).to_numpy(dtype=bool, na_value=False)
        reason = f"later than the time received plus allowance ({not_after:%Y-%m-%dT%H:%M:%SZ})"
        errors.add(late, "timestamp", reason)
    f.required(col("lat"), errors, "lat")
    out["lat"] = f.floats(col("lat"), errors, "lat", lo=-90, hi=90)
    f.required(col("lon"), errors, "lon")
    out["lon"] = f.floats(col("lon"), errors, "lon", lo=-180, hi=180)
    f.required(col("status"), errors, "status")
    out["status"] = f.choices(col("status"), errors, "status", _STATUS_MAP, upper=False)
    out["mcc"] = f.integers(col("mcc"), errors, "mcc", lo=0, hi=999)
    out["mnc"] = f.integers(col("mnc"), errors, "mnc", lo=0, hi=999)
    out["network"] = network_key(out["mcc"], out["mnc"])
    radio_map = f.RADIO_ALIASES if not reject_unknown_radio else _RADIO_MAP
    out["radio"] = f.choices(
        col("radio"), errors, "radio", radio_map, reject_unknown=reject_unknown_radio
    )
    out["area"] = f.integers(col("area"), errors, "area", lo=0, hi=2**32)
    out["cell"] = f.integers(col("cell"), errors, "cell", lo=0, hi=2**40)
    out["signal_dbm"] = f.floats(col("signal_dbm"), errors, "signal_dbm", lo=-200, hi=0)
    for c in ("download_kbps", "upload_kbps", "latency_ms", "accuracy_m"):
        out[c] = f.floats(col(c), errors, c, lo=0)
    out["measurement_id"] = f.text(col("measurement_id")).astype("string")
    hasher = device_hasher or f.DeviceHasher(device_secret)
    out["device"] = hasher(col("device"))

    bad = errors.bad
    if bad.any():
        positions = np.flatnonzero(bad)
        rejected += errors.rejected(lines, raw_rows(positions), raw)
    good = out.loc[~bad] if bad.any() else out
    dup = duplicated_measurements(good)
    frame = (good.loc[~dup] if dup.any() else good).reset_index(drop=True)
    frame = frame.astype(MEASUREMENT_COLUMNS)[list(MEASUREMENT_COLUMNS)]
    rejected.sort(key=lambda r: r.line)
    report = IngestReport(
        path=name,
        kind=kind,
        rows_in=rows_in,
        accepted=len(frame),
        duplicates=int(dup.sum()),
        rejected=rejected,
    )
    return IngestResult(frame=frame, report=report)


def duplicated_measurements(frame: pd.DataFrame) -> np.ndarray:
    """Later copies of a row: same ``measurement_id``, or same content when it has none."""
    import pyarrow as pa
    import pyarrow.compute as pc

    ids = pa.array(frame["measurement_id"].astype("string"), type=pa.large_string())
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    has_id = pc.is_valid(ids).to_numpy(zero_copy_only=False)
    dup = np.zeros(len(frame), dtype=bool)
    if has_id.any():
        # Exact: dictionary-encode the ids, the first row of each code is the original.
        codes = pc.dictionary_encode(ids).indices.to_numpy(zero_copy_only=False)
        first = np.zeros(len(frame), dtype=bool)
        first[np.unique(np.where(has_id, codes, -1), return_index=True)[1]] = True
        dup |= has_id & ~first
    if not has_id.all():
        content = [c for c in MEASUREMENT_COLUMNS if c != "measurement_id" and c in frame]
        rows = frame.loc[~has_id] if has_id.any() else frame
        # Copies agree in every column, so only rows sharing time and place can be
        # copies: compare whole rows within those few (same first/later order).
        where = [c for c in ("timestamp", "lat", "lon") if c in content]
        shared = _may_repeat(rows[where]) if where else None
        later = np.zeros(len(rows), dtype=bool)
        if shared is None:
            later = rows[content].duplicated().to_numpy()
        elif shared.any():
            later[shared] = rows.loc[shared, content].duplicated().to_numpy()
        dup[~has_id] = later
    return dup


def _may_repeat(keys: pd.DataFrame) -> np.ndarray:
    """Rows whose key values may equal another row's: those sharing a row hash (every
    true repeat, plus the odd hash collision, which the full comparison then drops)."""
    keys = keys.copy()
    for c in keys.columns:
        if pd.api.types.is_float_dtype(keys[c].dtype):
            # One bit pattern for 0.0/-0.0 and for NaN, which pandas counts as equal.
            keys[c] = (keys[c] + 0.0).where(keys[c].notna())
    hashes = pd.util.hash_pandas_object(keys, index=False)
    return hashes.duplicated(keep=False).to_numpy()


def _canonical_names(raw: pd.DataFrame, *, name: str) -> pd.DataFrame:
    renamed = {c: COLUMN_ALIASES.get(str(c).strip().lower(), str(c).strip().lower()) for c in raw}
    raw = raw.rename(columns=renamed)
    if raw.columns.duplicated().any():
        dupes = sorted(set(raw.columns[raw.columns.duplicated()]))
        raise IngestError(f"columns given twice (after aliases like net→mnc): {dupes}", path=name)
    missing = [c for c in MEASUREMENT_REQUIRED if c not in raw.columns]
    if missing:
        raise IngestError(
            f"missing required columns {missing}; expected a header like "
            f"{','.join(c for c in MEASUREMENT_COLUMNS if c != 'network')}",
            path=name,
        )
    return raw


def _parquet_frame(
    data: bytes, name: str
) -> tuple[pd.DataFrame, np.ndarray, RawRows, list[RejectedRow]]:
    """Parquet columns as stored; line = 1-based row number."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        frame = pq.read_table(io.BytesIO(data)).to_pandas()
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise IngestError(f"not a readable Parquet file ({exc})", path=name) from exc
    frame = frame.reset_index(drop=True)
    return frame, np.arange(1, len(frame) + 1), _parquet_rows(frame), []


def _parquet_rows(frame: pd.DataFrame) -> RawRows:
    """Raw text of Parquet rows (by position in ``frame``): the row as JSON."""

    def raws(positions: np.ndarray) -> list[str]:
        return [json.dumps(frame.iloc[i].to_dict(), default=str) for i in positions]

    return raws
