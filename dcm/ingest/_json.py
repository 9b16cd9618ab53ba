"""GeoJSON and NDJSON measurement files → frames of canonical-named columns plus lines.

NDJSON (one flat object or one GeoJSON point feature per line) is parsed by pyarrow's
JSON reader in one vectorised pass; the physical line of each record comes from a numpy
scan for the lines holding records. When pyarrow refuses the file (a broken line, a field whose
type changes between rows, nested canonical fields), the file is read line by line with
:func:`json.loads`, which reports each bad line and keeps the others.

A GeoJSON FeatureCollection is one JSON document, often one line of hundreds of MB. It is
read as a stream (:func:`iter_geojson`): a vectorised scan of each block of bytes finds
the commas between the features of its ``features`` array (outside strings, at that
array's depth), and the features are parsed a batch at a time by :func:`json.loads`, so
memory is bounded by the batch, not the file, and every feature is parsed exactly as a
whole-document :func:`json.loads` would parse it.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from dcm.errors import IngestError, InputTooLarge
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
#: Reasons of NDJSON lines that are not JSON at all (the others were parsed).
NOT_JSON = "not valid JSON"
TOO_DEEP = f"nested more than {MAX_JSON_DEPTH} levels deep"
#: Features of a FeatureCollection parsed, validated and given out at a time (at most).
FEATURES_PER_CHUNK = 50_000
#: Largest JSON document read whole: one that is not a FeatureCollection (a single
#: Feature), and the members of a FeatureCollection beside its features.
MAX_DOCUMENT_BYTES = 64 * 1024**2


def iter_geojson(
    blocks: Iterable[bytes],
    name: str,
    *,
    max_features: int = FEATURES_PER_CHUNK,
    chunk_bytes: int = 16 * 1024**2,
    max_feature_bytes: int | None = None,
) -> Iterator[Loaded]:
    """Frames of the point features of a GeoJSON document given as ``blocks`` of bytes:
    at most ``max_features`` features (and about ``chunk_bytes`` of text) a frame, their
    "lines" the 1-based feature numbers in the whole collection.

    A single Feature, or any document without a ``features`` array in its top-level
    object, is read whole (up to :data:`MAX_DOCUMENT_BYTES`). Raises
    :class:`IngestError` for a document that is not valid JSON or not GeoJSON, nested
    more than :data:`MAX_JSON_DEPTH` levels on one line, or (``max_feature_bytes``) with
    a feature longer than that: then frames already given stay given.
    """
    reader = _CollectionReader(
        name,
        max_features=max(max_features, 1),
        chunk_bytes=max(chunk_bytes, 1),
        max_feature_bytes=max_feature_bytes,
    )
    for block in blocks:
        # The scan of a block takes ~20 times its size in index arrays: 1 MiB at a time.
        for at in range(0, len(block), _SCAN_BYTES):
            yield from reader.feed(block[at : at + _SCAN_BYTES])
    yield from reader.finish()


#: Bytes of a document scanned at a time.
_SCAN_BYTES = 1024**2
#: A FeatureCollection's features array is streamed when it opens within these first
#: bytes (the head is scanned again as it grows); any other document is read whole.
_HEAD_BYTES = 4 * 1024**2
#: Bytes that shape a JSON document: a code for each (0: none).
_OPEN, _CLOSE, _COMMA, _COLON = 1, 2, 3, 4
_SHAPE = np.zeros(256, dtype=np.int8)
_SHAPE[[ord("{"), ord("[")]] = _OPEN
_SHAPE[[ord("}"), ord("]")]] = _CLOSE
_SHAPE[ord(",")] = _COMMA
_SHAPE[ord(":")] = _COLON
_STEP = np.zeros(256, dtype=np.int8)
_STEP[[ord("{"), ord("[")]] = 1
_STEP[[ord("}"), ord("]")]] = -1
_SPACE = b" \t\r\n"


class _Structure:
    """Where the brackets, commas and colons outside strings are in JSON bytes fed in
    pieces, and the nesting depth after each (state carried from piece to piece)."""

    def __init__(self, depth: int = 0) -> None:
        self.depth = depth
        self.quotes = np.zeros(0, dtype=np.int64)
        self.in_string = False
        self.backslashes = 0  # backslashes ending the bytes fed so far

    def feed(self, arr: np.ndarray, at: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(absolute positions, shape codes, depth after each) of the bytes ``arr``
        starting at absolute position ``at``; also the real quotes are kept in
        :attr:`quotes` (absolute positions)."""
        quotes = np.flatnonzero(arr == 34)
        slashes = np.flatnonzero(arr == 92)
        if quotes.size and (slashes.size or self.backslashes):
            quotes = quotes[~self._escaped(quotes, slashes)]
        if slashes.size and slashes[-1] == arr.size - 1:
            run = _run_before(np.array([arr.size]), slashes)[0]
            self.backslashes = int(run) + (self.backslashes if run == arr.size else 0)
        elif arr.size:
            self.backslashes = 0
        shapes = np.flatnonzero(_SHAPE[arr])
        # A byte is inside a string when an odd number of real quotes (counting one left
        # open before this piece) comes before it.
        inside = (np.searchsorted(quotes, shapes) + self.in_string) % 2 == 1
        shapes = shapes[~inside]
        self.in_string = bool((quotes.size + self.in_string) % 2)
        codes = _SHAPE[arr[shapes]]
        steps = np.where(codes == _OPEN, 1, np.where(codes == _CLOSE, -1, 0))
        depth = self.depth + np.cumsum(steps)
        if depth.size:
            self.depth = int(depth[-1])
        self.quotes = quotes + at
        return shapes + at, codes, depth

    def _escaped(self, quotes: np.ndarray, slashes: np.ndarray) -> np.ndarray:
        run = _run_before(quotes, slashes)
        # A run reaching back to the piece's start continues the one carried in.
        run = run + np.where(run == quotes, self.backslashes, 0)
        return run % 2 == 1


def _run_before(points: np.ndarray, slashes: np.ndarray) -> np.ndarray:
    """Number of backslashes right before each of ``points`` (sorted positions of
    ``slashes``, the backslashes)."""
    if not slashes.size:
        return np.zeros(points.size, dtype=np.int64)
    # Start of the run of consecutive backslashes each backslash belongs to.
    new_run = np.r_[True, np.diff(slashes) != 1]
    run_start = slashes[new_run][np.cumsum(new_run) - 1]
    last = np.searchsorted(slashes, points) - 1
    ok = last >= 0
    last = np.maximum(last, 0)
    touching = ok & (slashes[last] == points - 1)
    return np.where(touching, points - run_start[last], 0)


class _LineDepth:
    """The deepest nesting of ``{``/``[`` on each line of bytes fed in pieces, as
    :func:`_line_depths` counts it for a whole file; refuses the first line deeper than
    :data:`MAX_JSON_DEPTH`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lines = 0  # newlines seen
        self.total = 0  # running sum of opens minus closes
        self.line_start = 0  # that sum where the open line starts

    def feed(self, arr: np.ndarray) -> None:
        delta = _STEP[arr]
        where = np.flatnonzero(delta)
        newlines = np.flatnonzero(arr == 10)
        if where.size:
            steps = delta[where].astype(np.int64)
            total = self.total + np.cumsum(steps)
            line = np.searchsorted(newlines, where)
            first = np.r_[True, line[1:] != line[:-1]]
            before = (total - steps)[first]
            if line[0] == 0:
                before[0] = self.line_start  # the line open before this piece
            depth = total - before[np.cumsum(first) - 1]
            over = np.flatnonzero(depth > MAX_JSON_DEPTH)
            if over.size:
                at = self.lines + int(line[over[0]]) + 1
                raise IngestError(
                    f"not read: JSON nested more than {MAX_JSON_DEPTH} levels deep (line {at})",
                    path=self.name,
                )
            if newlines.size:
                self.line_start = self.total + int(steps[where < newlines[-1]].sum())
            self.total = int(total[-1])
        elif newlines.size:
            self.line_start = self.total
        self.lines += newlines.size


class _Position:
    """Characters, lines and the start of the last line in the bytes before a point of
    the document: to name a syntax error's place in the whole document, as
    :func:`json.loads` of the whole would."""

    def __init__(self) -> None:
        self.chars = 0
        self.lines = 0
        self.line_start = 0  # character where the current line starts

    def advance(self, data: bytes) -> None:
        arr = np.frombuffer(data, dtype=np.uint8)
        chars = int(arr.size - np.count_nonzero((arr & 0xC0) == 0x80))
        last = data.rfind(b"\n")
        if last >= 0:
            head = arr[: last + 1]
            self.line_start = self.chars + int(head.size - np.count_nonzero((head & 0xC0) == 0x80))
            self.lines += data.count(b"\n")
        self.chars += chars

    def error(self, exc: json.JSONDecodeError, text: str, skip: int) -> str:
        """json's message for ``exc`` raised on ``text``, whose first ``skip``
        characters were added (not in the document) and the rest start here."""
        pos = max(exc.pos - skip, 0)
        body = text[skip:]
        line = self.lines + body.count("\n", 0, pos) + 1
        last = body.rfind("\n", 0, pos)
        column = pos - last if last >= 0 else self.chars + pos - self.line_start + 1
        return f"{exc.msg}: line {line} column {column} (char {self.chars + pos})"


class _CollectionReader:
    """The state of :func:`iter_geojson`: the head of the document until its
    ``features`` array opens, then the features a batch at a time, then the tail."""

    def __init__(
        self, name: str, *, max_features: int, chunk_bytes: int, max_feature_bytes: int | None
    ) -> None:
        self.name = name
        self.max_features = max_features
        self.chunk_bytes = chunk_bytes
        self.max_feature_bytes = max_feature_bytes
        self.depth = _LineDepth(name)
        self.phase = "head"  # then "items" (the features array), "tail" or "whole"
        self.head = b""  # the document up to its features array's "[" (included)
        self.tail = b""  # from the array's closing bracket on
        self.pending = b""  # bytes of the array not yet parsed, from position ``start``
        self.start = 0  # where the next batch starts (absolute; at a comma after the first)
        self.received = 0  # bytes fed so far
        self.commas: list[np.ndarray] = []  # separators after ``start``
        self.features = 0  # features given out so far
        self.first = True  # the next batch is the array's first
        self.where = _Position()
        self.structure = _Structure(depth=2)

    def feed(self, block: bytes) -> Iterator[Loaded]:
        if not block:
            return
        if self.received == 0 and block.startswith(b"\xef\xbb\xbf"):
            block = block[3:]  # json.loads of bytes skips a UTF-8 BOM too
        arr = np.frombuffer(block, dtype=np.uint8)
        self.depth.feed(arr)
        at = self.received
        self.received += len(block)
        if self.phase == "head":
            self.head += block
            yield from self._find_array()
        elif self.phase == "items":
            yield from self._items(block, arr, at)
        else:
            self._keep(block)

    def finish(self) -> Iterator[Loaded]:
        if self.phase == "head":
            self.phase = "whole"
            self.tail, self.head = self.head, b""
        if self.phase == "whole":
            yield self._whole(self.tail)
            return
        if self.phase == "items":
            # The array never closed: parse what there is, which fails where json would.
            yield from self._batches(end=True)
            self._parse_tail(b"")
            return
        self._parse_tail(self.tail)

    def _keep(self, block: bytes) -> None:
        self.tail += block
        if len(self.tail) > MAX_DOCUMENT_BYTES:
            raise InputTooLarge(
                f"refused: more than {MAX_DOCUMENT_BYTES // 1024**2} MiB of JSON outside the "
                "'features' array of a FeatureCollection (only features are read as a stream)",
                path=self.name,
            )

    def _find_array(self) -> Iterator[Loaded]:
        """Look for ``"features": [`` in the top-level object of the head."""
        head = self.head
        lead = head.lstrip(_SPACE)[:1]
        if not lead:
            return
        if lead != b"{" or b"\0" in head[:4]:  # not an object, or UTF-16/32 text
            self.phase = "whole"
            self.head, tail = b"", head
            self._keep(tail)
            return
        structure = _Structure()
        arr = np.frombuffer(head, dtype=np.uint8)
        shapes, codes, depth = structure.feed(arr, 0)
        quotes = structure.quotes
        for colon in shapes[(codes == _COLON) & (depth == 1)]:
            q = np.searchsorted(quotes, colon)
            if q < 2:
                continue
            key = head[quotes[q - 2] : quotes[q - 1] + 1]
            if key != b'"features"':
                try:
                    if json.loads(key) != "features":
                        continue
                except ValueError:
                    continue
            value = head[colon + 1 :].lstrip(_SPACE)[:1]
            if not value:
                break  # the value is still to come
            if value != b"[":
                continue
            opening = len(head) - len(head[colon + 1 :].lstrip(_SPACE))
            if opening > _HEAD_BYTES:
                break  # opens late: read whole
            yield from self._open_array(opening)
            return
        if len(head) > _HEAD_BYTES:  # no features array opens near the start: read whole
            self.phase = "whole"
            self.head, tail = b"", head
            self._keep(tail)

    def _open_array(self, opening: int) -> Iterator[Loaded]:
        prefix = self.head[: opening + 1]
        try:  # the members before the array, with the array and object closed
            top = json.loads(prefix + b"]}")
        except (ValueError, RecursionError) as exc:
            raise self._invalid(exc) from exc
        if isinstance(top, dict) and top.get("type") == "Feature":
            # A single Feature with a "features" member of its own: read whole.
            self.phase = "whole"
            self.tail, self.head = self.head, b""
            return
        rest = self.head[opening + 1 :]
        self.head = prefix
        self.where.advance(prefix)
        self.phase = "items"
        self.start = opening + 1
        self.pending = b""
        self.received = opening + 1  # the rest is fed again as array bytes
        arr = np.frombuffer(rest, dtype=np.uint8)
        self.received += len(rest)
        yield from self._items(rest, arr, opening + 1)

    def _items(self, block: bytes, arr: np.ndarray, at: int) -> Iterator[Loaded]:
        self.pending += block
        shapes, codes, depth = self.structure.feed(arr, at)
        closed = np.flatnonzero(depth < 2)
        end = int(shapes[closed[0]]) if closed.size else None
        commas = shapes[(codes == _COMMA) & (depth == 2)]
        if end is not None:
            commas = commas[commas < end]
        self.commas.append(commas)
        self._check_sizes(end if end is not None else self.received)
        if end is None:
            yield from self._batches(end=False)
            return
        if self.pending[end - self.start] != ord("]"):
            end += 1  # a "}" closes the array: the last batch holds it and fails there
        rest = self.pending[end - self.start :]
        self.pending = self.pending[: end - self.start]
        yield from self._batches(end=True)
        self.phase = "tail"
        self.tail = b""
        self._keep(rest)

    def _check_sizes(self, upto: int) -> None:
        if self.max_feature_bytes is None:
            return
        commas = np.concatenate(self.commas) if len(self.commas) > 1 else self.commas[0]
        bounds = np.r_[self.start, commas, upto]
        long = np.flatnonzero(np.diff(bounds) > self.max_feature_bytes + 1)
        if long.size:
            number = self.features + int(long[0]) + 1
            raise InputTooLarge(
                f"refused: feature {number:,} is longer than {self.max_feature_bytes:,} bytes "
                "(the limit is DCM_MAX_LINE_BYTES): a measurement is a small point feature",
                path=self.name,
            )

    def _batches(self, *, end: bool) -> Iterator[Loaded]:
        """Parse the whole features in ``pending`` (all of it when ``end``)."""
        commas = np.concatenate(self.commas) if len(self.commas) > 1 else self.commas[0]
        while True:
            final = False
            if commas.size >= self.max_features:
                cut = int(commas[self.max_features - 1])
            elif commas.size and int(commas[-1]) - self.start >= self.chunk_bytes:
                k = int(np.searchsorted(commas, self.start + self.chunk_bytes))
                cut = int(commas[max(k, 1) - 1])
            elif end:
                cut, final = self.start + len(self.pending), True
            else:
                break
            piece = self.pending[: cut - self.start]
            self.pending = self.pending[cut - self.start :]
            yield self._parse(piece, final=final)
            self.start = cut
            commas = commas[commas > cut]
            if final:
                break
        self.commas = [commas]

    def _parse(self, piece: bytes, *, final: bool) -> Loaded:
        # The first batch follows the array's "["; a later one starts at the comma after
        # the previous feature, so a dummy element goes before it.
        skip = 1 if self.first else 2
        lead = "[" if self.first else "[0"
        try:
            text = lead + piece.decode("utf-8") + "]"
            items = json.loads(text)
            if self.first and not items and not final:
                # Only blanks before the first comma: json names the comma.
                text = text[:-1] + ","
                json.loads(text)
        except UnicodeDecodeError as exc:
            raise IngestError(
                f"not valid GeoJSON ('utf-8' codec can't decode byte 0x{piece[exc.start]:02x} "
                f"in position {self.start + exc.start}: {exc.reason})",
                path=self.name,
            ) from exc
        except json.JSONDecodeError as exc:
            raise IngestError(
                f"not valid GeoJSON ({self.where.error(exc, text, skip)})", path=self.name
            ) from exc
        except RecursionError as exc:
            raise IngestError(f"not valid GeoJSON ({exc})", path=self.name) from exc
        if not self.first:
            items = items[1:]
        self.first = False
        self.where.advance(piece)
        numbers = np.arange(self.features + 1, self.features + len(items) + 1, dtype=np.int64)
        self.features += len(items)
        return _features_frame(items, numbers)

    def _parse_tail(self, tail: bytes) -> None:
        """Check the members beside the features (the head and ``tail``, the document
        from the array's closing bracket on)."""
        text = ""
        try:
            text = tail.decode("utf-8")
            top = json.loads(self.head.decode("utf-8") + text)
        except UnicodeDecodeError as exc:
            raise IngestError(f"not valid GeoJSON ({exc})", path=self.name) from exc
        except json.JSONDecodeError as exc:
            skip = len(exc.doc) - len(text)
            raise IngestError(
                f"not valid GeoJSON ({self.where.error(exc, exc.doc, skip)})", path=self.name
            ) from exc
        except RecursionError as exc:
            raise IngestError(f"not valid GeoJSON ({exc})", path=self.name) from exc
        if top.get("type") == "Feature":
            raise IngestError(
                "not read: a GeoJSON Feature whose 'type' follows a 'features' array",
                path=self.name,
            )
        if top.get("features") != []:
            raise IngestError("not read: 'features' given twice", path=self.name)

    def _whole(self, data: bytes) -> Loaded:
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise self._invalid(exc) from exc
        if isinstance(doc, dict) and doc.get("type") == "Feature":
            features = [doc]
        elif isinstance(doc, dict) and isinstance(doc.get("features"), list):
            features = doc["features"]
        else:
            raise IngestError("not a GeoJSON FeatureCollection", path=self.name)
        return _features_frame(features, np.arange(1, len(features) + 1))

    def _invalid(self, exc: BaseException) -> IngestError:
        return IngestError(f"not valid GeoJSON ({exc})", path=self.name)


def ndjson_frame(data: bytes, name: str, *, start: bool = True, whole: bool = True) -> Loaded:
    """One JSON object (flat record or GeoJSON point feature) per line.

    ``start=False``: ``data`` is a later piece of a file (whole lines), as for
    :func:`~dcm.ingest._source.decode_utf8`. ``whole=False``: a piece without any valid
    JSON line is not refused (the reader of the pieces judges the file,
    :func:`json_records`)."""
    data = decode_utf8(data, name=name, start=start)
    depths = _line_depths(data)
    deep = depths.size > 0 and depths.max() > MAX_JSON_DEPTH
    fast = None if deep else _ndjson_arrow(data)
    return fast if fast is not None else _ndjson_lines(data, name, depths, whole=whole)


def json_records(loaded: Loaded) -> int:
    """Records of an NDJSON piece that were JSON (kept, or refused for their content)."""
    frame, _, _, rejected = loaded
    return len(frame) + sum(
        r.reason not in (TOO_DEEP,) and not r.reason.startswith(NOT_JSON) for r in rejected
    )


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
        if not pc.all(pc.fill_null(pc.equal(table["type"], "Feature"), False)).as_py():
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
        kind = table["type"] if "type" in table.column_names else None
        if (
            kind is not None
            and pa.types.is_string(kind.type)
            and pc.any(pc.equal(kind, "Feature")).as_py()
        ):
            return None  # flat records mixed with features: as above
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


def _ndjson_lines(data: bytes, name: str, depths: np.ndarray, *, whole: bool = True) -> Loaded:
    """Exact path: ``json.loads`` per line, each broken line rejected with its reason
    (``depths``: :func:`_line_depths` of ``data``)."""
    text = data.decode("utf-8")
    records: list[object] = []
    numbers: list[int] = []
    rejected: list[RejectedRow] = []
    # Split at LF only: JSON strings may hold U+2028 and friends, which splitlines cuts.
    for number, line in enumerate(text.replace("\r\n", "\n").split("\n"), start=1):
        stripped = line.strip().lstrip("\x1e")
        if not stripped:
            continue
        if depths[number - 1] > MAX_JSON_DEPTH:
            rejected.append(RejectedRow(number, "row", TOO_DEEP, line))
            continue
        try:
            records.append(json.loads(stripped))
            numbers.append(number)
        except ValueError as exc:
            rejected.append(RejectedRow(number, "row", f"{NOT_JSON} ({exc.args[0]})", line))
    if whole and not records and rejected:
        raise IngestError("no line is valid JSON (not an NDJSON file)", path=name)
    frame, lines, raw_rows, more = _features_frame(records, np.asarray(numbers, dtype=np.int64))
    return frame, lines, raw_rows, rejected + more


def _features_frame(items: Sequence[object], numbers: np.ndarray) -> Loaded:
    """Flat dicts or GeoJSON point features → a frame of text columns (the fields of
    :data:`_WANTED`) with lon/lat from the geometry."""
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
        rows.append(row)
        keep.append(i)
    frame = _text_frame(rows)
    if not len(frame.columns):
        frame = pd.DataFrame(index=pd.RangeIndex(len(rows)))
    if not rows and rejected:  # every record refused: report them, not "missing columns"
        frame = pd.DataFrame({c: pd.Series(dtype="string") for c in MEASUREMENT_REQUIRED})
    lines = numbers[keep] if keep else np.zeros(0, np.int64)

    def raw_rows(positions: np.ndarray) -> list[str]:
        return [json.dumps(items[keep[i]])[:_RAW_CHARS] for i in positions]

    return frame, lines, raw_rows, rejected


#: Kinds of column (:func:`pandas.api.types.infer_dtype`) holding no list or dict.
_FLAT = {"string", "integer", "floating", "mixed-integer-float", "boolean", "empty"}


def _text_frame(rows: list[dict[str, object]]) -> pd.DataFrame:
    """Text columns of the wanted fields of ``rows``, each value on its own (an id 5
    reads "5" whatever the other rows hold, as pyarrow reads it; a nested value as JSON
    text)."""
    if not rows:
        return pd.DataFrame()
    frame = pd.DataFrame(rows, dtype=object)  # no inference: 5 stays an int, not 5.0
    frame = frame[[c for c in frame.columns if str(c).strip().lower() in _WANTED]]
    for c in frame.columns:
        if pd.api.types.infer_dtype(frame[c], skipna=True) not in _FLAT:
            frame[c] = frame[c].map(_scalar)
    return frame.astype("string") if len(frame.columns) else frame


def _scalar(value: object) -> object:
    """A JSON value as text: each value on its own (an id 5 reads "5" whatever the other
    rows hold, as pyarrow reads it), nested values (lists, dicts) as JSON text."""
    if isinstance(value, str) or value is None:
        return value
    if isinstance(value, list | dict):
        return json.dumps(value)
    if isinstance(value, float) and value != value:
        return None  # NaN: missing, as a float column's NaN was
    return str(value)
