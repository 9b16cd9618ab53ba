"""Tell what kind of file a measurement-like file is from its first bytes."""

from __future__ import annotations

from dcm.errors import IngestError
from dcm.ingest._source import ZIP_MAGIC, ZIP_REFUSED, Source, peek, source_name
from dcm.ingest.measurements import header_delimiter
from dcm.schema import RADIOS

KINDS = ("measurements", "cells", "gnettrack", "towercollector")

_SNIFF_BYTES = 64 * 1024


def sniff_kind(source: Source, *, name: str | None = None) -> str:
    """``"measurements"``, ``"cells"``, ``"gnettrack"`` or ``"towercollector"``.

    Looks at the header line (or the first record of a header-less OpenCelliD export);
    JSON and Parquet files are measurements, and so is a header with ``timestamp`` (or
    ``status``), ``lat`` and ``lon``. Raises :class:`IngestError` when the file is
    missing, unreadable, a ZIP archive, or of none of these kinds.
    """
    label = source_name(source, name)
    head = _head(source, label)
    if head[:4] in ZIP_MAGIC:
        raise IngestError(ZIP_REFUSED, path=label)
    if head[:4] == b"PAR1" or head.lstrip()[:1] in (b"{", b"["):
        return "measurements"
    first = head.lstrip(b"\xef\xbb\xbf\r\n").split(b"\n", 1)[0].decode("utf-8", "replace")
    delimiter = header_delimiter(first.encode("utf-8"))
    fields = [c.strip().strip('"').lower() for c in first.split(delimiter)]
    names = set(fields)
    if {"measured_at", "cell_id"} <= names:
        return "towercollector"
    if {"timestamp", "longitude", "latitude"} <= names:
        return "gnettrack"
    # A canonical measurement header, even one lacking a required column (the measurement
    # reader then names it, as `dcm ingest` does): its serving-cell columns must not make
    # it pass for a cell export.
    if {"timestamp", "lat", "lon"} <= names or {"status", "lat", "lon"} <= names:
        return "measurements"
    if {"radio", "mcc", "area", "cell"} <= names and ({"net", "mnc"} & names):
        return "cells"
    if fields and fields[0].upper() in RADIOS and len(fields) == 14:
        return "cells"
    raise IngestError(
        "cannot tell the kind of file from its first line; expected a canonical "
        "measurement header (timestamp,lat,lon,status,...), an OpenCelliD/MLS export, a "
        "G-NetTrack log or a Tower Collector CSV",
        path=label,
    )


def _head(source: Source, label: str) -> bytes:
    head = peek(source, name=label, size=_SNIFF_BYTES)
    if head is None:  # a stream that cannot seek back: it is read for the sniff alone
        raw = source.read(_SNIFF_BYTES)  # type: ignore[union-attr]
        head = peek(raw.encode("utf-8") if isinstance(raw, str) else raw, name=label)
    return head or b""
