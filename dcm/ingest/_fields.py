"""Vectorised field parsers shared by the readers, and the per-row error ledger.

Each parser takes a column (strings from CSV, or typed values from Parquet/GeoJSON) and
returns parsed values plus a boolean mask of rows whose value is present but invalid.
:class:`RowErrors` remembers, per row, the first field that failed and why.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from dcm.ingest.report import RejectedRow

#: Used to hash device ids when no per-installation secret is given. Fine for local
#: analysis of one's own files; the store always passes the installation's secret so
#: hashes cannot be reversed by guessing ids with a public key.
DEFAULT_DEVICE_SECRET = b"dcm-local-analysis-not-secret"

#: Length of the hex digest kept for hashed device ids (128 bits).
DEVICE_HASH_HEX = 32

#: Radio technology names seen in exports and app logs → the canonical radio.
RADIO_ALIASES: dict[str, str] = {
    "GSM": "GSM", "GPRS": "GSM", "EDGE": "GSM", "2G": "GSM",
    "UMTS": "UMTS", "WCDMA": "UMTS", "HSPA": "UMTS", "HSPA+": "UMTS", "HSDPA": "UMTS",
    "HSUPA": "UMTS", "TD-SCDMA": "UMTS", "3G": "UMTS",
    "LTE": "LTE", "LTE-A": "LTE", "LTE+": "LTE", "4G": "LTE",
    "NR": "NR", "5G": "NR", "NR5G": "NR", "5G NR": "NR", "NR-NSA": "NR", "NR-SA": "NR",
    "CDMA": "CDMA", "CDMA2000": "CDMA", "EVDO": "CDMA", "1XRTT": "CDMA",
}  # fmt: skip

#: Accepted instants (UTC): measurements and cell records before 1990 or from 2100 on are
#: typing or clock errors. The bounds also keep every accepted instant inside pandas'
#: ``datetime64[ns]`` and both databases' timestamp types.
TIMESTAMP_MIN = pd.Timestamp("1990-01-01", tz="UTC")
TIMESTAMP_MAX = pd.Timestamp("2100-01-01", tz="UTC")
OUT_OF_RANGE = f"timestamp out of range ({TIMESTAMP_MIN:%Y-%m-%d}..{TIMESTAMP_MAX:%Y-%m-%d})"

#: PostgreSQL text cannot hold U+0000, so a row with one would fail the whole upload there.
NUL_CHARACTER = "contains a NUL character"

# A time of day followed by Z or an offset; a bare date ("2023-05-24" ends in "-24") has
# neither and is naive.
_OFFSET_RE = r"[T ]\d{2}.*(?:[Zz]|[+-]\d{2}(?::?\d{2})?)$"


class RowErrors:
    """First failing field and reason per row (vectorised bookkeeping)."""

    def __init__(self, n: int) -> None:
        self.code = np.full(n, -1, dtype=np.int32)
        self.checks: list[tuple[str, str]] = []

    def add(self, mask: np.ndarray | pd.Series, field: str, reason: str) -> None:
        """Mark rows in ``mask`` as failing ``field`` for ``reason`` unless already failed."""
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            return
        self.checks.append((field, reason))
        self.code[mask & (self.code < 0)] = len(self.checks) - 1

    @property
    def bad(self) -> np.ndarray:
        return self.code >= 0

    def rejected(
        self,
        lines: np.ndarray,
        raws: list[str],
        values: pd.DataFrame | None = None,
    ) -> list[RejectedRow]:
        """One :class:`RejectedRow` per bad row (loops over bad rows only)."""
        out = []
        for i, raw in zip(np.flatnonzero(self.bad), raws, strict=True):
            fld, reason = self.checks[self.code[i]]
            if values is not None and fld in values.columns:
                value = values[fld].iloc[i]
                # Numbers (Parquet, NDJSON read by pyarrow) as Python writes them, so a
                # JSON value reads the same whichever JSON reader parsed it.
                if isinstance(value, int | float | np.integer | np.floating) and pd.notna(value):
                    value = str(value)
                if isinstance(value, str) and value.strip():
                    reason = f"{reason}: {value.strip()[:60]!r}"
            out.append(RejectedRow(int(lines[i]), fld, reason, raw))
        return out


def is_texty(col: pd.Series) -> bool:
    return bool(pd.api.types.is_string_dtype(col) or col.dtype == object)


def _arrow_strings(col: pd.Series) -> pa.Array | pa.ChunkedArray:
    """The column as Arrow strings, as given; cheap for Arrow-backed str."""
    if is_texty(col):
        try:
            return pa.array(col, type=pa.large_string(), from_pandas=True)
        except (pa.ArrowException, TypeError):
            pass
    return pa.array(col.astype("string"), type=pa.large_string(), from_pandas=True)


def _arrow_text(col: pd.Series) -> pa.Array | pa.ChunkedArray:
    """Stripped strings as Arrow (null for missing or empty); cheap for Arrow-backed str."""
    arr = pc.utf8_trim_whitespace(_arrow_strings(col))
    return pc.if_else(pc.equal(arr, ""), pa.scalar(None, pa.large_string()), arr)


def text(col: pd.Series) -> pd.Series:
    """Stripped strings (Arrow-backed) with ``<NA>`` for missing or empty values."""
    return _arrow_series(_arrow_text(col), col.index)


def _arrow_series(arr: pa.Array | pa.ChunkedArray, index: pd.Index) -> pd.Series:
    # Wrapping Arrow data as an ArrowExtensionArray is zero-copy; callers cast to the
    # contract's "string" dtype once at the end.
    return pd.Series(pd.arrays.ArrowExtensionArray(arr), index=index)


def numeric(col: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(float values, missing, invalid)``; non-finite numbers count as invalid."""
    if pd.api.types.is_bool_dtype(col):
        col = col.astype("string")
    if pd.api.types.is_numeric_dtype(col):
        values = col.astype("float64").to_numpy(dtype="float64", na_value=np.nan)
        missing = np.isnan(values)
        return values, missing, np.zeros(len(col), dtype=bool)
    txt = _arrow_text(col)
    missing = pc.is_null(txt).to_numpy(zero_copy_only=False)
    try:
        # Arrow's cast parses a clean column many times faster than pd.to_numeric ...
        values = pc.cast(txt, pa.float64()).to_numpy(zero_copy_only=False)
    except pa.ArrowInvalid:
        # ... but fails on the first bad value; then pandas finds every bad one.
        parsed = pd.to_numeric(_arrow_series(txt, col.index), errors="coerce")
        values = parsed.to_numpy(dtype="float64", na_value=np.nan)
    values = np.asarray(values, dtype="float64")
    invalid = ~missing & ~np.isfinite(values)
    return values, missing, invalid


def integers(
    col: pd.Series, errors: RowErrors, field: str, *, lo: float = 0, hi: float = 2**53
) -> pd.Series:
    """Optional integer column checked for ``lo <= v <= hi`` → ``Int64`` (bad rows ``<NA>``)."""
    values, missing, invalid = numeric(col)
    errors.add(invalid, field, "not a number")
    with np.errstate(invalid="ignore"):
        fractional = ~missing & ~invalid & (values != np.floor(values))
        out_of_range = ~missing & ~invalid & ~fractional & ((values < lo) | (values > hi))
    errors.add(fractional, field, "not an integer")
    errors.add(out_of_range, field, f"outside {lo:g}..{hi:g}")
    mask = missing | invalid | fractional | out_of_range
    ints = np.where(mask, 0, values).astype("int64")
    return pd.Series(pd.arrays.IntegerArray(ints, mask), index=col.index)


def floats(
    col: pd.Series, errors: RowErrors, field: str, *, lo: float = -np.inf, hi: float = np.inf
) -> pd.Series:
    """Optional float column checked for ``lo <= v <= hi`` → ``float64`` (NaN when missing)."""
    values, missing, invalid = numeric(col)
    errors.add(invalid, field, "not a number")
    with np.errstate(invalid="ignore"):
        out_of_range = ~missing & ~invalid & ((values < lo) | (values > hi))
    errors.add(out_of_range, field, f"outside {lo:g}..{hi:g}")
    return pd.Series(np.where(invalid | out_of_range, np.nan, values), index=col.index)


def refuse_nul(frame: pd.DataFrame, errors: RowErrors, columns: Iterable[str]) -> None:
    """Reject rows holding a NUL character in any text column of ``columns`` in ``frame``."""
    for name in columns:
        if name not in frame.columns or not is_texty(frame[name]):
            continue
        if not _may_hold_nul(frame[name]):
            continue
        # No trimming needed: stripping whitespace never removes a NUL.
        found = pc.match_substring(_arrow_strings(frame[name]), "\x00")
        errors.add(pc.fill_null(found, False).to_numpy(zero_copy_only=False), name, NUL_CHARACTER)


def _may_hold_nul(col: pd.Series) -> bool:
    """False when the column is Arrow strings whose character data hold no zero byte
    (one pass over the data buffer, far cheaper than a substring search per value);
    True otherwise (then each value is searched)."""
    if not isinstance(col.array, pd.arrays.ArrowExtensionArray):
        return True
    arr = pa.array(col.array)
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        return True
    for chunk in arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]:
        data = chunk.buffers()[2]
        if data is not None and not np.frombuffer(data, dtype=np.uint8).all():
            return True
    return False


def required(col: pd.Series, errors: RowErrors, field: str) -> None:
    """Reject rows where a required field is empty."""
    errors.add(text(col).isna().to_numpy(), field, "required value is missing")


def timestamps_iso(col: pd.Series, errors: RowErrors, field: str) -> pd.Series:
    """ISO 8601 strings with ``Z`` or an offset (or tz-aware datetimes) → UTC ``ns``.

    Naive timestamps are rejected: their time zone is unknown, so their instant is too.
    So are instants outside :data:`TIMESTAMP_MIN` .. :data:`TIMESTAMP_MAX`.
    """
    index = col.index
    if isinstance(col.dtype, pd.DatetimeTZDtype):
        return in_time_range(col.dt.tz_convert("UTC"), errors, field)
    if pd.api.types.is_datetime64_dtype(col.dtype):
        errors.add(col.notna().to_numpy(), field, "naive timestamp (no UTC offset)")
        return pd.Series(pd.NaT, index=index, dtype="datetime64[ns, UTC]")
    arrow = _arrow_text(col)
    fast = _strict_iso_utc(arrow, index)
    if fast is not None:
        return in_time_range(fast, errors, field)
    txt = _arrow_series(arrow, index)
    present = txt.notna().to_numpy()
    has_offset = txt.str.contains(_OFFSET_RE, regex=True).fillna(False).to_numpy(dtype=bool)
    # pandas picks one unit for the column (s/ms/us/ns), so a far year can parse (and is
    # range-checked below) or come back NaT when another value needs nanoseconds.
    parsed = pd.to_datetime(txt, utc=True, format="ISO8601", errors="coerce")
    bad = present & parsed.isna().to_numpy()
    if bad.any():
        year = pd.to_numeric(
            txt[bad].str.extract(r"^([+-]?\d{4,})-", expand=False), errors="coerce"
        )
        far = np.zeros(len(txt), dtype=bool)
        far[np.flatnonzero(bad)] = (
            (year < TIMESTAMP_MIN.year) | (year > TIMESTAMP_MAX.year)
        ).to_numpy(dtype=bool, na_value=False)
        errors.add(far, field, OUT_OF_RANGE)
    errors.add(bad, field, "not an ISO 8601 timestamp")
    errors.add(present & ~bad & ~has_offset, field, "naive timestamp (no UTC offset or Z)")
    parsed = pd.Series(parsed.where(has_offset), index=index)
    return in_time_range(parsed, errors, field)


#: The common shape of exported timestamps, e.g. ``2024-03-11T06:00:00Z`` or
#: ``2024-03-11 06:00:00.5+05:30``: parsed by Arrow, far faster than pandas' ISO 8601.
_STRICT_ISO_RE = (
    r"^\d{4}-[01]\d-[0-3]\d[T ][0-2]\d:[0-5]\d:[0-5]\d(?:\.\d{1,9})?(?:Z|[+-][0-2]\d:[0-5]\d)$"
)


def _strict_iso_utc(txt: pa.Array | pa.ChunkedArray, index: pd.Index) -> pd.Series | None:
    """UTC instants when every present value has the strict ISO 8601 shape above and
    Arrow parses it (real calendar dates), else None (then pandas parses, row by row).

    For those strings Arrow and pandas agree on the instant; for any other one the
    general path finds and names the problem.
    """
    strict = pc.match_substring_regex(txt, _STRICT_ISO_RE)
    if pc.any(pc.invert(pc.fill_null(strict, True))).as_py():
        return None
    try:
        parsed = pc.cast(txt, pa.timestamp("ns", tz="UTC"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    nanoseconds = pc.fill_null(pc.cast(parsed, pa.int64()), np.iinfo(np.int64).min)
    if isinstance(nanoseconds, pa.ChunkedArray):
        nanoseconds = nanoseconds.combine_chunks()
    # The smallest int64 is NaT.
    stamps = nanoseconds.to_numpy(zero_copy_only=False).view("datetime64[ns]")
    return pd.Series(stamps, index=index).dt.tz_localize("UTC")


def in_time_range(values: pd.Series, errors: RowErrors, field: str) -> pd.Series:
    """UTC timestamps of any unit → ``datetime64[ns, UTC]``; rows outside
    :data:`TIMESTAMP_MIN` .. :data:`TIMESTAMP_MAX` are rejected (``NaT``)."""
    outside = (values.notna() & ((values < TIMESTAMP_MIN) | (values >= TIMESTAMP_MAX))).to_numpy(
        dtype=bool
    )
    errors.add(outside, field, OUT_OF_RANGE)
    return values.mask(outside).astype("datetime64[ns, UTC]")


def unix_seconds(col: pd.Series, errors: RowErrors, field: str) -> pd.Series:
    """Optional Unix seconds → UTC ``ns`` timestamps (``NaT`` when missing).

    Text that is not a number rejects the row; a number outside :data:`TIMESTAMP_MIN` ..
    :data:`TIMESTAMP_MAX` (exports write 0 or garbage for unknown dates) becomes ``NaT``,
    so the rest of the record is kept.
    """
    values, _, invalid = numeric(col)
    # An overflowing number ("1e400") parses to infinity: out of range, not garbage.
    errors.add(invalid & ~np.isinf(values), field, "not a number")
    lo, hi = TIMESTAMP_MIN.timestamp(), TIMESTAMP_MAX.timestamp()
    with np.errstate(invalid="ignore"):
        values = np.where((values >= lo) & (values < hi), values, np.nan)
    stamps = pd.to_datetime(values, unit="s", utc=True).astype("datetime64[ns, UTC]")
    return pd.Series(stamps, index=col.index)


def choices(
    col: pd.Series,
    errors: RowErrors,
    field: str,
    mapping: dict[str, str],
    *,
    upper: bool = True,
    reject_unknown: bool = True,
) -> pd.Series:
    """Map case-folded names through ``mapping``; unknown names rejected (or ``<NA>``)."""
    txt = _arrow_text(col)
    key = pc.utf8_upper(txt) if upper else pc.utf8_lower(txt)
    names = pa.array(list(mapping), type=pa.large_string())
    targets = pa.array(list(mapping.values()), type=pa.large_string())
    mapped = pc.take(targets, pc.index_in(key, value_set=names))
    out = _arrow_series(mapped, col.index)
    present = pc.is_valid(txt).to_numpy(zero_copy_only=False)
    unknown = present & out.isna().to_numpy()
    if reject_unknown:
        errors.add(unknown, field, f"not one of {'/'.join(sorted(set(mapping.values())))}")
    return out


def hash_devices(devices: pd.Series, secret: bytes | None = None) -> pd.Series:
    """HMAC-SHA256 of each device id (hex, 128 bits kept); hashes unique values only."""
    return DeviceHasher(secret)(devices)


class DeviceHasher:
    """:func:`hash_devices` for the chunks of one read: the ids hashed so far are
    remembered (Arrow strings, with their digests), so each distinct id is hashed once
    per read, not once per chunk; a file's chunks share most of their phones, and the
    HMACs were most of the time of reading it. At most ``limit`` ids are remembered
    (about 40 bytes each); past that they are forgotten and the next chunk starts
    afresh."""

    def __init__(self, secret: bytes | None = None, *, limit: int = 1 << 20) -> None:
        self.key = DEFAULT_DEVICE_SECRET if secret is None else secret
        self.limit = limit
        self._names = pa.array([], type=pa.large_string())
        self._digests = pa.array([], type=pa.large_string())

    def __call__(self, devices: pd.Series) -> pd.Series:
        txt = _arrow_text(devices)
        if isinstance(txt, pa.ChunkedArray):
            txt = txt.combine_chunks()
        encoded = pc.dictionary_encode(txt)
        ids = encoded.dictionary
        if len(self._names) > self.limit:
            self._names, self._digests = self._names[:0], self._digests[:0]
        known = pc.index_in(ids, value_set=self._names)
        new = pc.is_null(known).to_numpy(zero_copy_only=False)
        fresh = ids.filter(pa.array(new))
        # hmac.digest is the one-shot C path: a third of the time of hmac.new per device.
        digests = pa.array(
            [
                hmac.digest(self.key, u.encode("utf-8"), hashlib.sha256).hex()[:DEVICE_HASH_HEX]
                for u in fresh.to_pylist()
            ],
            type=pa.large_string(),
        )
        at = np.empty(len(ids), dtype=np.int64)
        at[~new] = known.filter(pa.array(~new)).to_numpy(zero_copy_only=False)
        at[new] = len(self._names) + np.arange(len(fresh))
        self._names = pa.concat_arrays([self._names, fresh])
        self._digests = pa.concat_arrays([self._digests, digests])
        of_ids = self._digests.take(pa.array(at))
        return _arrow_series(pc.take(of_ids, encoded.indices), devices.index)
