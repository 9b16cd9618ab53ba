"""Measurement logs of field apps (G-NetTrack Pro, Tower Collector) → canonical measurements.

The column mappings are documented in ``docs/ingest.md``. Each reader renames and derives
canonical columns vectorised, then hands over to the canonical validation, so the field
rules, reports and hashing are the same as for canonical files.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dcm.errors import IngestError
from dcm.ingest import _fields as f
from dcm.ingest._csv import StringTable, read_csv_strings
from dcm.ingest._source import Source, decode_utf8, read_bytes, source_name
from dcm.ingest.measurements import normalise_measurements
from dcm.ingest.report import IngestResult

#: G-NetTrack's own timestamp format: phone local time, no offset ("2023.05.24_14.03.10").
GNETTRACK_TIME_FORMAT = "%Y.%m.%d_%H.%M.%S"

#: Values G-NetTrack and Tower Collector write for "not measured".
_MISSING = ("-", "N/A", "n/a", "null", "NULL", "UNKNOWN")


def _read_table(source: Source, name: str | None) -> tuple[str, pd.DataFrame, StringTable]:
    """Tab- or comma-separated app log → (label, frame with lower-case names, table)."""
    label = source_name(source, name)
    data = decode_utf8(read_bytes(source, name=label, line_based=True), name=label)
    head = data[:4096].split(b"\n", 1)[0]
    delimiter = "\t" if b"\t" in head else ("," if b"," in head else ";")
    _, table = read_csv_strings(data, name=label, delimiter=delimiter)
    frame = table.frame
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    return label, frame, table


def _col(frame: pd.DataFrame, *names: str) -> pd.Series:
    """First present column among ``names`` with app "missing" markers blanked."""
    for name in names:
        if name in frame.columns:
            col = f.text(frame[name])
            return col.mask(col.isin(_MISSING))
    return pd.Series(pd.NA, index=frame.index, dtype="string")


def _require(frame: pd.DataFrame, label: str, kind: str, groups: list[tuple[str, ...]]) -> None:
    missing = [" or ".join(g) for g in groups if not any(n in frame.columns for n in g)]
    if missing:
        raise IngestError(f"not a {kind} log: missing columns {missing}", path=label)


def read_gnettrack(
    source: Source,
    *,
    timezone: str | None = None,
    device: str | None = None,
    network: str | None = None,
    device_secret: bytes | None = None,
    name: str | None = None,
) -> IngestResult:
    """Read a G-NetTrack Pro log (tab-separated text, or its CSV export).

    G-NetTrack writes phone local time without an offset, so ``timezone`` (an IANA name
    such as ``"Pacific/Guam"`` or a fixed offset such as ``"+10:00"``) is required unless
    the timestamps carry an offset. ``device`` names the phone for the whole file (the log
    has no device column); it is hashed like any device id. ``network`` (``"MCC-MNC"``)
    fills rows without an ``Operator`` code (logs that carry only the operator's name).
    A row is ``ok`` when it names a serving cell or a signal level, else ``no_service``.
    """
    label, raw, table = _read_table(source, name)
    _require(raw, label, "G-NetTrack", [("timestamp",), ("latitude",), ("longitude",)])
    n = len(raw)
    errors = f.RowErrors(n)

    stamp = _col(raw, "timestamp")
    local = pd.to_datetime(stamp, format=GNETTRACK_TIME_FORMAT, errors="coerce")
    # Far local times would overflow on the way to UTC nanoseconds; the exact UTC bounds
    # are checked again once the time zone is applied.
    far = (local < f.TIMESTAMP_MIN.tz_localize(None)) | (local >= f.TIMESTAMP_MAX.tz_localize(None))
    errors.add(far.to_numpy(dtype=bool), "timestamp", f.OUT_OF_RANGE)
    local = local.mask(far)
    is_local = local.notna().to_numpy()
    if is_local.any() and timezone is None:
        raise IngestError(
            "G-NetTrack timestamps are phone local time without a UTC offset; "
            "give the time zone (timezone='Pacific/Guam' or '+10:00', CLI --timezone)",
            path=label,
        )
    timestamps = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns, UTC]")
    if is_local.any():
        timestamps[is_local] = _localise(local[is_local], str(timezone), label)
        # Clock changes: a local time that is skipped or repeated has no single instant.
        unclear = is_local & timestamps.isna().to_numpy()
        errors.add(unclear, "timestamp", f"local time skipped or repeated in {timezone}")
    rest = ~is_local & stamp.notna().to_numpy()
    if rest.any():
        sub = f.RowErrors(int(rest.sum()))
        timestamps[rest] = f.timestamps_iso(stamp[rest], sub, "timestamp").to_numpy()
        bad = np.zeros(n, dtype=bool)
        bad[np.flatnonzero(rest)[sub.bad]] = True
        far_codes = [i for i, (_, reason) in enumerate(sub.checks) if reason == f.OUT_OF_RANGE]
        far_iso = np.zeros(n, dtype=bool)
        far_iso[np.flatnonzero(rest)] = np.isin(sub.code, far_codes)
        errors.add(far_iso, "timestamp", f.OUT_OF_RANGE)
        errors.add(bad, "timestamp", f"neither {GNETTRACK_TIME_FORMAT} nor ISO 8601 with offset")

    operator = _col(raw, "operator", "mcc-mnc").str.replace(r"\D", "", regex=True)
    operator = operator.mask(~operator.str.len().between(5, 6).fillna(False))
    if network is not None:
        parts = network.split("-")
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise IngestError(f"network must look like MCC-MNC, not {network!r}", path=label)
        operator = operator.fillna(parts[0].zfill(3) + parts[1])
    tech = _col(raw, "networktech")
    mode = _col(raw, "networkmode")
    radio_name = tech.fillna(mode)
    radio = radio_name.str.upper().map(f.RADIO_ALIASES)
    cell = _full_cell_id(_col(raw, "rawcellid", "cellid"), _col(raw, "node"), radio)
    level = _col(raw, "level", "rsrp")
    serving = cell.notna() | level.notna()

    canonical = pd.DataFrame(
        {
            "timestamp": timestamps,
            "lat": _col(raw, "latitude"),
            "lon": _col(raw, "longitude"),
            "status": np.where(serving.to_numpy(), "ok", "no_service"),
            "mcc": operator.str.slice(0, 3),
            "mnc": operator.str.slice(3),
            "radio": radio_name,
            "area": _col(raw, "lac", "tac"),
            "cell": cell,
            "signal_dbm": level,
            "download_kbps": _col(raw, "dl_bitrate"),
            "upload_kbps": _col(raw, "ul_bitrate"),
            "latency_ms": _col(raw, "pingavg"),
            "accuracy_m": _col(raw, "accuracy"),
            "device": pd.Series(device, index=raw.index, dtype="string"),
        },
        index=raw.index,
    )
    return normalise_measurements(
        canonical,
        lines=table.lines,
        raw_rows=table.raw_rows,
        name=label,
        kind="gnettrack",
        device_secret=device_secret,
        rejected=table.rejected,
        rows_in=table.rows_in,
        reject_unknown_radio=False,
        errors=errors,
    )


def _localise(local: pd.Series, timezone: str, label: str) -> np.ndarray:
    """Naive local times → UTC (DST gaps and repeats become NaT and are rejected)."""
    try:
        if timezone[:1] in "+-" or timezone.upper() in ("UTC", "Z"):
            offset = "+00:00" if timezone.upper() in ("UTC", "Z") else timezone
            text = local.dt.strftime("%Y-%m-%dT%H:%M:%S") + offset
            return pd.to_datetime(text, utc=True, format="ISO8601").to_numpy()
        aware = local.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT")
        return aware.dt.tz_convert("UTC").to_numpy()
    except (ValueError, KeyError) as exc:
        raise IngestError(f"unknown time zone {timezone!r} ({exc})", path=label) from exc


def _full_cell_id(cell: pd.Series, node: pd.Series, radio: pd.Series) -> pd.Series:
    """OpenCelliD-style cell id: eNodeB*256+cell for LTE, RNC*65536+cell for UMTS.

    G-NetTrack logs the short cell id next to its ``Node`` (eNodeB / RNC); OpenCelliD
    keys LTE cells by the 28-bit ECI and UMTS cells by the 28-bit UTRAN cell id. Values
    already above the short range are taken as full ids.
    """
    c = pd.to_numeric(cell, errors="coerce")
    nd = pd.to_numeric(node, errors="coerce")
    lte = (radio == "LTE").fillna(False) & nd.notna() & (c < 256)
    umts = (radio == "UMTS").fillna(False) & nd.notna() & (c < 65536)
    full = c.where(~lte, nd * 256 + c).where(~umts, nd * 65536 + c)
    # Unparseable ids stay as text so the canonical check rejects them with the value.
    out = full.astype("Int64").astype("string")
    return out.where(c.notna() | cell.isna(), cell)


def read_towercollector(
    source: Source,
    *,
    device_secret: bytes | None = None,
    name: str | None = None,
) -> IngestResult:
    """Read a Tower Collector CSV export.

    Each row is one cell seen at one place and time; only serving-cell rows
    (``neighboring`` false) are measurements, neighbouring-cell rows are reported as
    rejected with that reason. ``measured_at`` is ISO 8601 UTC; ``-1`` and
    ``2147483647`` mark unknown ids and become missing.
    """
    label, raw, table = _read_table(source, name)
    _require(raw, label, "Tower Collector", [("measured_at",), ("lat",), ("lon",), ("cell_id",)])
    errors = f.RowErrors(len(raw))
    neighbour = _col(raw, "neighboring", "neighbouring").str.lower() == "true"
    errors.add(
        neighbour.fillna(False).to_numpy(),
        "neighboring",
        "neighbouring cell row (only the serving cell is a measurement)",
    )

    def ident(*names: str) -> pd.Series:
        col = _col(raw, *names)
        return col.mask(col.isin(("-1", "2147483647", "9223372036854775807")))

    canonical = pd.DataFrame(
        {
            "timestamp": _col(raw, "measured_at"),
            "lat": _col(raw, "lat"),
            "lon": _col(raw, "lon"),
            "status": pd.Series("ok", index=raw.index, dtype="string"),
            "mcc": ident("mcc"),
            "mnc": ident("mnc"),
            "radio": _col(raw, "net_type"),
            "area": ident("lac"),
            "cell": ident("cell_id"),
            "signal_dbm": _col(raw, "dbm"),
            "accuracy_m": _col(raw, "accuracy"),
            "device": _col(raw, "device"),
        },
        index=raw.index,
    )
    return normalise_measurements(
        canonical,
        lines=table.lines,
        raw_rows=table.raw_rows,
        name=label,
        kind="towercollector",
        device_secret=device_secret,
        rejected=table.rejected,
        rows_in=table.rows_in,
        reject_unknown_radio=False,
        errors=errors,
    )
