"""GeoJSON and NDJSON measurement files → a frame of canonical-named columns plus lines.

NDJSON (one flat object or one GeoJSON point feature per line) is parsed by pyarrow's
JSON reader in one vectorised pass; the physical line of each record comes from a numpy
scan for the lines holding records. When pyarrow refuses the file (a broken line, a field whose
type changes between rows, nested canonical fields), the file is read line by line with
:func:`json.loads`, which reports each bad line and keeps the others. A GeoJSON
FeatureCollection is one JSON document and is read with :func:`json.loads`.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from dcm.errors import IngestError
from dcm.ingest._source import decode_utf8
from dcm.ingest.report import RAW_ECHO_CHARS, RejectedRow
from dcm.schema import MEASUREMENT_COLUMNS, MEASUREMENT_REQUIRED

RawRows = Callable[[np.ndarray], list[str]]
Loaded = tuple[pd.DataFrame, np.ndarray, RawRows, list[RejectedRow]]

#: Field names the measurement readers look at (after lower-casing); others are dropped.
_WANTED = set(MEASUREMENT_COLUMNS) | {"net", "latitude", "longitude", "lng"}
#: Raw text cut a little past what reports keep, so they still add the "…".
_RAW_CHARS = RAW_ECHO_CHARS + 1
#: Deepest nesting of objects and arrays read; a measurement record needs 4 levels.
#: Deeper input would crash pyarrow's reader and exhaust Python's recursion.
MAX_JSON_DEPTH = 64


def geojson_frame(data: bytes, name: str) -> Loaded:
    """Point features → property columns plus lon/lat; line = 1-based feature number."""
    depth = _line_depths(data)
    if depth.size and depth.max() > MAX_JSON_DEPTH:
        line = int(np.argmax(depth > MAX_JSON_DEPTH)) + 1
        raise IngestError(
            f"not read: JSON nested more than {MAX_JSON_DEPTH} levels deep (line {line})",
            path=name,
        )
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise IngestError(f"not valid GeoJSON ({exc})", path=name) from exc
    if isinstance(doc, dict) and doc.get("type") == "Feature":
        features = [doc]
    elif isinstance(doc, dict) and isinstance(doc.get("features"), list):
        features = doc["features"]
    else:
        raise IngestError("not a GeoJSON FeatureCollection", path=name)
    return _features_frame(features, np.arange(1, len(features) + 1))


def ndjson_frame(data: bytes, name: str) -> Loaded:
    """One JSON object (flat record or GeoJSON point feature) per line."""
    data = decode_utf8(data, name=name)
    depths = _line_depths(data)
    deep = depths.size > 0 and depths.max() > MAX_JSON_DEPTH
    fast = None if deep else _ndjson_arrow(data)
    return fast if fast is not None else _ndjson_lines(data, name, depths)


def _line_depths(data: bytes) -> np.ndarray:
    """Deepest nesting of ``{``/``[`` on each line (index 0 = line 1), vectorised.

    Brackets inside strings count too, so a line may read deeper than it is; that only
    sends it to the careful path or rejects a line no measurement record looks like.
    """
    arr = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(arr == 10)
    out = np.zeros(newlines.size + 1, dtype=np.int64)
    step = np.zeros(256, dtype=np.int8)
    step[[ord("{"), ord("[")]] = 1
    step[[ord("}"), ord("]")]] = -1
    delta = step[arr]
    where = np.flatnonzero(delta)
    if where.size == 0:
        return out
    steps = delta[where].astype(np.int64)
    line = np.searchsorted(newlines, where)
    first = np.r_[True, line[1:] != line[:-1]]
    total = np.cumsum(steps)
    before = (total - steps)[first]  # depth carried in from earlier lines: dropped
    depth = total - before[np.cumsum(first) - 1]
    out[line[first]] = np.maximum.reduceat(depth, np.flatnonzero(first))
    return out


def _record_lines(data: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(start, end, 1-based line) of every line holding a ``{``, vectorised.

    Every NDJSON record is an object, so it has a brace; a blank line has none. A
    non-blank line without one makes pyarrow fail, and the exact path takes over, so
    counting brace lines is enough to map pyarrow's rows to lines.
    """
    arr = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(arr == 10)
    braces = np.flatnonzero(arr == ord("{"))
    line_index = np.unique(np.searchsorted(newlines, braces))
    starts = np.concatenate(([0], newlines + 1))[line_index]
    ends = np.concatenate((newlines, [arr.size]))[line_index]
    return starts, ends, line_index + 1


def _ndjson_arrow(data: bytes) -> Loaded | None:
    """pyarrow's JSON reader; None when it cannot read the file as clean NDJSON."""
    import pyarrow.json as pajson

    starts, ends, numbers = _record_lines(data)
    if starts.size == 0:
        return None
    try:
        first = json.loads(data[starts[0] : ends[0]])
    except ValueError:
        return None
    if not isinstance(first, dict):
        return None
    feature = first.get("type") == "Feature"
    # Keep timestamps as text: pyarrow would otherwise infer them and drop the offset.
    text_field = pa.field("timestamp", pa.string())
    schema = (
        pa.schema([pa.field("properties", pa.struct([text_field]))])
        if feature
        else pa.schema([text_field])
    )
    try:
        table = pajson.read_json(
            io.BytesIO(data),
            read_options=pajson.ReadOptions(block_size=1 << 24),
            parse_options=pajson.ParseOptions(
                explicit_schema=schema, unexpected_field_behavior="infer"
            ),
        )
    except (pa.ArrowException, ValueError):
        return None
    if table.num_rows != starts.size:
        return None
    columns: dict[str, pa.ChunkedArray | pa.Array] = {}
    geometry_ok = np.ones(table.num_rows, dtype=bool)
    if feature:
        if not {"type", "properties", "geometry"} <= set(table.column_names):
            return None
        if not pc.all(pc.equal(table["type"], "Feature")).as_py():
            return None  # features mixed with flat records: the exact path sorts them out
        # Types first: combining chunks of other shapes ("geometry": [null, null] in
        # every row) can fail inside pyarrow.
        if not all(
            pa.types.is_struct(table.schema.field(c).type) for c in ("properties", "geometry")
        ):
            return None
        try:
            props = table["properties"].combine_chunks()
            geometry = table["geometry"].combine_chunks()
        except pa.ArrowException:
            # Odd shapes ({"": [null, null]}) can still fail inside pyarrow: the exact
            # path reads them row by row.
            return None
        for i, fld in enumerate(props.type):
            columns[fld.name] = props.field(i)
        names = [f.name for f in geometry.type]
        if not {"type", "coordinates"} <= set(names):
            return None
        gtype = geometry.field(names.index("type"))
        coords = geometry.field(names.index("coordinates"))
        if not pa.types.is_list(coords.type) and not pa.types.is_large_list(coords.type):
            return None  # non-point coordinates (nested lists) in every row
        geometry_ok = pc.fill_null(pc.equal(gtype, "Point"), False).to_numpy(zero_copy_only=False)
        columns["lon"] = _nth(coords, 0)
        columns["lat"] = _nth(coords, 1)
    else:
        for col_name in table.column_names:
            columns[col_name] = table[col_name]
    frame: dict[str, pd.Series] = {}
    for key, values in columns.items():
        if key.strip().lower() not in _WANTED:
            continue
        if pa.types.is_nested(values.type) or pa.types.is_timestamp(values.type):
            return None
        frame[key] = _to_pandas(values)
    result = pd.DataFrame(frame, index=pd.RangeIndex(table.num_rows))

    def raw_rows(positions: np.ndarray) -> list[str]:
        # At most 4 bytes a character: a huge line is never decoded whole.
        return [
            data[starts[i] : min(ends[i], starts[i] + 4 * _RAW_CHARS)]
            .decode("utf-8", "replace")
            .strip()[:_RAW_CHARS]
            for i in positions
        ]

    rejected = [
        RejectedRow(int(numbers[i]), "geometry", "geometry is not a Point", raw)
        for i, raw in zip(
            np.flatnonzero(~geometry_ok), raw_rows(np.flatnonzero(~geometry_ok)), strict=True
        )
    ]
    keep = np.flatnonzero(geometry_ok)
    result = result.iloc[keep].reset_index(drop=True)
    return result, numbers[keep], lambda pos: raw_rows(keep[pos]), rejected


def _nth(coords: pa.Array, n: int) -> pa.Array:
    """Element ``n`` of each coordinate list (null when the list is shorter or null)."""
    lengths = pc.fill_null(pc.list_value_length(coords), 0)
    safe = pc.if_else(pc.greater(lengths, n), coords, pa.scalar(None, coords.type))
    return pc.list_element(safe, n)


def _to_pandas(values: pa.Array | pa.ChunkedArray) -> pd.Series:
    # Arrow-backed (zero-copy, integers stay integers with nulls: id 5 reads as "5").
    if pa.types.is_null(values.type):
        values = values.cast(pa.string())
    return pd.Series(pd.arrays.ArrowExtensionArray(values))


def _ndjson_lines(data: bytes, name: str, depths: np.ndarray) -> Loaded:
    """Exact path: ``json.loads`` per line, each broken line rejected with its reason
    (``depths``: :func:`_line_depths` of ``data``)."""
    text = data.decode("utf-8")
    records: list[object] = []
    numbers: list[int] = []
    rejected: list[RejectedRow] = []
    deep = f"nested more than {MAX_JSON_DEPTH} levels deep"
    # Split at LF only: JSON strings may hold U+2028 and friends, which splitlines cuts.
    for number, line in enumerate(text.replace("\r\n", "\n").split("\n"), start=1):
        stripped = line.strip().lstrip("\x1e")
        if not stripped:
            continue
        if depths[number - 1] > MAX_JSON_DEPTH:
            rejected.append(RejectedRow(number, "row", deep, line))
            continue
        try:
            records.append(json.loads(stripped))
            numbers.append(number)
        except ValueError as exc:
            rejected.append(RejectedRow(number, "row", f"not valid JSON ({exc.args[0]})", line))
    if not records and rejected:
        raise IngestError("no line is valid JSON (not an NDJSON file)", path=name)
    frame, lines, raw_rows, more = _features_frame(records, np.asarray(numbers, dtype=np.int64))
    return frame, lines, raw_rows, rejected + more


def _features_frame(items: Sequence[object], numbers: np.ndarray) -> Loaded:
    """Flat dicts or GeoJSON point features → a frame with lon/lat from the geometry."""
    rows: list[dict[str, object]] = []
    keep: list[int] = []
    rejected: list[RejectedRow] = []
    for i, item in enumerate(items):
        line = int(numbers[i])
        if not isinstance(item, dict):
            raw = json.dumps(item)[:_RAW_CHARS]
            rejected.append(RejectedRow(line, "row", "not a JSON object", raw))
            continue
        if item.get("type") == "Feature":
            props = item.get("properties") or {}
            geom = item.get("geometry") or {}
            row = dict(props) if isinstance(props, dict) else {}
            coords = geom.get("coordinates") if isinstance(geom, dict) else None
            if not isinstance(geom, dict) or geom.get("type") != "Point":
                raw = json.dumps(item)[:_RAW_CHARS]
                rejected.append(RejectedRow(line, "geometry", "geometry is not a Point", raw))
                continue
            if isinstance(coords, list) and len(coords) >= 2:
                row["lon"], row["lat"] = coords[0], coords[1]
        else:
            row = item
        rows.append({k: _scalar(v) for k, v in row.items()})
        keep.append(i)
    frame = pd.DataFrame.from_records(rows) if rows else pd.DataFrame()
    frame = frame.astype("string") if len(frame.columns) else frame
    if not len(frame.columns):
        frame = pd.DataFrame(index=pd.RangeIndex(len(rows)))
    if not rows and rejected:  # every record refused: report them, not "missing columns"
        frame = pd.DataFrame({c: pd.Series(dtype="string") for c in MEASUREMENT_REQUIRED})
    lines = numbers[keep] if keep else np.zeros(0, np.int64)

    def raw_rows(positions: np.ndarray) -> list[str]:
        return [json.dumps(items[keep[i]])[:_RAW_CHARS] for i in positions]

    return frame, lines, raw_rows, rejected


def _scalar(value: object) -> object:
    # Nested values (lists, dicts) are not canonical fields; keep them as JSON text.
    return json.dumps(value) if isinstance(value, list | dict) else value
