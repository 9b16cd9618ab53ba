"""Turn a path or binary stream into bytes: gzip detected by magic bytes, errors named."""

from __future__ import annotations

import io
import re
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from dcm.errors import IngestError, InputTooLarge

#: What the row readers accept: a path, an open binary stream, or the bytes themselves.
Source = str | Path | BinaryIO | bytes

GZIP_MAGIC = b"\x1f\x8b"

#: Local file header and empty-archive signatures of a ZIP archive.
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")

#: Why a ZIP archive is refused: stored (uncompressed) members start with readable text,
#: so without this check a CSV inside one would be read with the archive's headers as rows.
ZIP_REFUSED = "a ZIP archive, not a text file: unzip it first (plain or gzip files are read)"


def source_name(source: Source, name: str | None = None) -> str:
    """The name used in reports and errors: ``name``, the path, or the stream's name."""
    if name:
        return name
    if isinstance(source, str | Path):
        return str(source)
    if isinstance(source, bytes | bytearray | memoryview):
        return "<bytes>"
    return str(getattr(source, "name", "<stream>"))


#: Inflation ratios are judged once the output passes this size: small files of
#: repeated rows compress very well and are no threat.
RATIO_FLOOR_BYTES = 64 * 1024**2
_CHUNK = 1024**2


#: Longest line of a line-based file (CSV, NDJSON) by default: a measurement record is
#: a few hundred bytes; a longer line is not a record but a file without line ends.
MAX_LINE_BYTES = 1024**2


@dataclass(frozen=True)
class InputLimits:
    """How large an input may grow: ``max_bytes`` after gunzip, and at most ``max_ratio``
    times its compressed size once past :data:`RATIO_FLOOR_BYTES`; a line of a CSV or
    NDJSON file at most ``max_line_bytes``."""

    max_bytes: int
    max_ratio: float
    max_line_bytes: int = MAX_LINE_BYTES

    @classmethod
    def from_settings(cls, settings: Any = None) -> InputLimits:
        """The limits of ``settings`` (``DCM_MAX_DECOMPRESSED_BYTES``,
        ``DCM_MAX_INFLATION_RATIO`` and ``DCM_MAX_LINE_BYTES`` when None)."""
        if settings is None:
            from dcm.settings import Settings

            settings = Settings()
        return cls(
            settings.max_decompressed_bytes,
            settings.max_inflation_ratio,
            settings.max_line_bytes,
        )

    def too_large(self, size: int, *, name: str) -> InputTooLarge:
        return InputTooLarge(
            f"refused: larger than {self.max_bytes:,} bytes (after gunzip; the limit is "
            "DCM_MAX_DECOMPRESSED_BYTES): split the file",
            path=name,
        )


class Inflater:
    """Gunzip a stream chunk by chunk, refusing it as soon as it passes ``limits``.

    Each :meth:`feed` returns the output of one compressed chunk, in pieces of at most
    1 MiB, so a gzip bomb is stopped after a few MiB whatever it would inflate to.
    Concatenated gzip members (and zero padding between them) are read like ``gzip``.
    """

    def __init__(self, limits: InputLimits, *, name: str) -> None:
        self.limits = limits
        self.name = name
        self.bytes_in = 0
        self.bytes_out = 0
        self._inflate: Any = None  # the current member's decompressor

    def feed(self, chunk: bytes, *, keep: bool = True) -> list[bytes]:
        """Output for the next compressed ``chunk`` (none kept with ``keep=False``, which
        only checks the limits); raises :class:`IngestError` when the stream is corrupt
        or passes the limits."""
        if keep:
            return list(self.pieces(chunk))
        for _ in self.pieces(chunk):
            pass
        return []

    def pieces(self, chunk: bytes) -> Iterator[bytes]:
        """:meth:`feed`'s output one piece at a time: a reader that refuses a piece (a
        line too long) stops the inflation there."""
        self.bytes_in += len(chunk)
        data = chunk
        try:
            while True:
                if self._inflate is None or self._inflate.eof:
                    data = data.lstrip(b"\0")
                    if not data:
                        break
                    self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
                piece = self._inflate.decompress(data, _CHUNK)
                self._count(piece)
                yield piece
                if self._inflate.eof:  # the next member, if any, starts in unused_data
                    data = self._inflate.unused_data
                    continue
                data = self._inflate.unconsumed_tail
                if not data and len(piece) < _CHUNK:  # a full piece may have more behind
                    break
        except zlib.error as exc:
            raise IngestError(f"corrupt gzip data ({exc})", path=self.name) from exc

    def finish(self) -> None:
        """Raise :class:`IngestError` when the stream ended inside a gzip member."""
        if self._inflate is None or not self._inflate.eof:
            raise IngestError(
                "corrupt gzip data (the stream ends before the end-of-stream marker)",
                path=self.name,
            )

    def _count(self, piece: bytes) -> None:
        self.bytes_out += len(piece)
        if self.bytes_out > self.limits.max_bytes:
            raise self.limits.too_large(self.bytes_out, name=self.name)
        if (
            self.bytes_out > RATIO_FLOOR_BYTES
            and self.bytes_out > self.limits.max_ratio * self.bytes_in
        ):
            raise InputTooLarge(
                f"refused: the gzip data inflates more than {self.limits.max_ratio:g} times "
                "(a gzip bomb? the limit is DCM_MAX_INFLATION_RATIO)",
                path=self.name,
            )


class LineGuard:
    """Follow the lines of a text stream fed in pieces and refuse, with its line number,
    the first line longer than ``max_bytes`` (LF, CRLF and a lone CR end a line, as
    :func:`decode_utf8` reads them). Holds nothing but two counters, so a file that is
    one huge line is refused after ``max_bytes`` of it, never read whole."""

    def __init__(self, max_bytes: int, *, name: str) -> None:
        self.max_bytes = max_bytes
        self.name = name
        self.line = 1  # the line the next byte belongs to
        self.length = 0  # bytes of that line seen so far
        self._cr = False  # the last piece ended with CR (an LF next ends no new line)

    def feed(self, piece: bytes) -> None:
        """Account for the next ``piece``; raises :class:`InputTooLarge` naming the line."""
        if not piece:
            return
        if self._cr and piece[:1] == b"\n":  # the LF of a CRLF cut between two pieces
            piece = piece[1:]
            self._cr = False
            if not piece:
                return
        ends = [i for i in (piece.find(b"\n"), piece.find(b"\r")) if i >= 0]
        if self.length + (min(ends) if ends else len(piece)) > self.max_bytes:
            raise self.too_long(self.line)  # the line open before this piece
        if len(piece) > self.max_bytes:
            self._check(piece)  # a line inside the piece may pass the limit too
        crs = piece.count(b"\r")
        breaks = piece.count(b"\n") + crs - (piece.count(b"\r\n") if crs else 0)
        last = max(piece.rfind(b"\n"), piece.rfind(b"\r"))
        self.length = self.length + len(piece) if last < 0 else len(piece) - last - 1
        self.line += breaks
        self._cr = piece.endswith(b"\r")

    def _check(self, piece: bytes) -> None:
        if self._fits(piece):
            return
        arr = np.frombuffer(piece, dtype=np.uint8)
        lf, cr = arr == 10, arr == 13
        ends = np.flatnonzero(lf | cr)
        # Bytes of the line each line end closes, then of the line left open.
        lengths = np.diff(ends, prepend=-1) - 1
        lengths = np.append(lengths, arr.size - 1 - (ends[-1] if ends.size else -1))
        lengths[0] += self.length
        over = np.flatnonzero(lengths > self.max_bytes)
        if not over.size:
            return
        breaks = cr | (lf & ~np.concatenate(([False], cr[:-1])))
        at = ends[over[0]] if over[0] < ends.size else arr.size
        raise self.too_long(self.line + int(breaks[:at].sum()))

    def _fits(self, piece: bytes) -> bool:
        """Whether every line of ``piece`` (the first continuing the open line) is at
        most ``max_bytes`` long: each stretch of ``max_bytes`` + 1 bytes from a line's
        start must hold a line end, found from the stretch's end (a C search over the
        bytes, skipping whole lines, instead of an array pass over every byte)."""
        start, before, n = 0, self.length, len(piece)
        while start + self.max_bytes - before + 1 <= n:
            stop = start + self.max_bytes - before + 1
            end = max(piece.rfind(b"\n", start, stop), piece.rfind(b"\r", start, stop))
            if end < 0:
                return False
            start, before = end + 1, 0
        return True

    def too_long(self, line: int) -> InputTooLarge:
        return InputTooLarge(
            f"refused: line {line:,} is longer than {self.max_bytes:,} bytes (the limit is "
            "DCM_MAX_LINE_BYTES): a CSV or NDJSON file holds one record per line",
            path=self.name,
        )


def read_bytes(
    source: Source,
    *,
    name: str,
    limits: InputLimits | None = None,
    line_based: bool | Callable[[bytes], bool] = False,
) -> bytes:
    """All bytes of ``source``, gunzipped when they start with the gzip magic.

    ``limits`` (default :meth:`InputLimits.from_settings`) bound the size after gunzip
    and the inflation ratio; gzip input is inflated chunk by chunk, so an input past
    them is refused before it fills the memory. With ``line_based`` (or when it is a
    function saying so of the first MiB), a line longer than ``limits.max_line_bytes``
    is refused as soon as it passes the limit. Raises :class:`IngestError` for a missing
    or unreadable file, a corrupt gzip stream or an input past the limits.
    """
    limits = limits if limits is not None else InputLimits.from_settings()
    with open_source(source, name=name) as stream:
        return _read_stream(stream, name=name, limits=limits, line_based=line_based)


def iter_bytes(
    source: Source,
    *,
    name: str,
    limits: InputLimits | None = None,
    line_based: bool | Callable[[bytes], bool] = False,
) -> Iterator[bytes]:
    """The bytes of ``source`` a MiB at a time, as :func:`read_bytes` reads them
    (gunzipped, refused past ``limits``, a ZIP archive refused) without holding them."""
    limits = limits if limits is not None else InputLimits.from_settings()
    with open_source(source, name=name) as stream:
        start = b""
        pieces = _pieces(stream, name=name, limits=limits, line_based=line_based)
        for piece in pieces:
            if len(start) < 4:
                start += piece
                if len(start) < 4:
                    continue
                if start[:4] in ZIP_MAGIC:
                    raise IngestError(ZIP_REFUSED, path=name)
                piece, start = start, start[:4]
            yield piece
        if len(start) < 4 and start:
            yield start


def peek(source: Source, *, name: str, size: int = 64 * 1024) -> bytes | None:
    """Up to ``size`` first bytes of ``source`` (gunzipped when gzip), leaving it to be
    read from the start; None for a stream that cannot seek back. Raises
    :class:`IngestError` for a missing or unreadable file or corrupt gzip data."""
    if isinstance(source, str | Path):
        with open_source(source, name=name) as fh:
            raw = fh.read(size)
    elif isinstance(source, bytes | bytearray | memoryview):
        raw = bytes(source[:size])
    else:
        if not source.seekable():
            return None
        position = source.tell()
        raw = source.read(size)
        source.seek(position)
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
    if raw[:2] == GZIP_MAGIC:
        try:
            # A partial stream: decompress what we have, ignore the missing end.
            raw = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(raw, size)
        except zlib.error as exc:
            raise IngestError(f"corrupt gzip data ({exc})", path=name) from exc
    return bytes(raw)


def check_lines(
    source: Source,
    *,
    name: str,
    limits: InputLimits | None = None,
    line_based: bool | Callable[[bytes], bool] = True,
) -> None:
    """Read ``source`` through (gunzipped, a MiB at a time, nothing kept) and raise
    :class:`InputTooLarge` at the first line longer than ``limits.max_line_bytes``, or
    when the input passes the size or inflation limits: what :func:`read_bytes` would
    refuse, found before anything is read whole or kept."""
    limits = limits if limits is not None else InputLimits.from_settings()
    with open_source(source, name=name) as stream:
        for _ in _pieces(stream, name=name, limits=limits, line_based=line_based):
            pass


@contextmanager
def open_source(source: Source, *, name: str) -> Iterator[BinaryIO]:
    """``source`` as a binary stream: a path opened (one-line :class:`IngestError` when
    it is missing, a directory or unreadable), bytes wrapped, a stream as it is."""
    if isinstance(source, str | Path):
        path = Path(source)
        if not path.exists():
            raise IngestError("file not found", path=name)
        if path.is_dir():
            raise IngestError("is a directory, not a file", path=name)
        try:
            with path.open("rb") as fh:
                yield fh
        except OSError as exc:
            raise IngestError(f"cannot read file ({exc.strerror})", path=name) from exc
    elif isinstance(source, bytes | bytearray | memoryview):
        yield io.BytesIO(bytes(source))
    else:
        yield source


def _read_stream(
    stream: BinaryIO,
    *,
    name: str,
    limits: InputLimits,
    line_based: bool | Callable[[bytes], bool] = False,
) -> bytes:
    if line_based is False:
        data = _inflate_stream(stream, name=name, limits=limits)
    else:
        out = io.BytesIO()
        for piece in _pieces(stream, name=name, limits=limits, line_based=line_based):
            out.write(piece)
        data = out.getvalue()
    if data[:4] in ZIP_MAGIC:
        raise IngestError(ZIP_REFUSED, path=name)
    return data


def _pieces(
    stream: BinaryIO,
    *,
    name: str,
    limits: InputLimits,
    line_based: bool | Callable[[bytes], bool],
) -> Iterator[bytes]:
    """The bytes of ``stream`` a MiB at a time, gunzipped, refused past ``limits``; lines
    guarded when ``line_based`` is true (or says so of the first piece)."""
    guard: LineGuard | None = None
    size = 0
    try:
        head = stream.read(2)
        if isinstance(head, str):  # a text stream given by mistake: accept it
            head = head.encode("utf-8")
            blocks: Iterator[bytes] = (
                text.encode("utf-8") for text in iter(lambda: stream.read(_CHUNK), "")
            )
            gzip = False
        else:
            blocks = iter(lambda: stream.read(_CHUNK), b"")
            gzip = head == GZIP_MAGIC
        inflater = Inflater(limits, name=name) if gzip else None
        first = True
        for chunk in _prepend(head, blocks):
            pieces = inflater.pieces(chunk) if inflater is not None else [chunk]
            for piece in pieces:
                if not piece:
                    continue
                if first:
                    first = False
                    wanted = line_based(piece) if callable(line_based) else line_based
                    guard = LineGuard(limits.max_line_bytes, name=name) if wanted else None
                if inflater is None:
                    size += len(piece)
                    if size > limits.max_bytes:
                        raise limits.too_large(size, name=name)
                if guard is not None:
                    guard.feed(piece)
                yield piece
        if inflater is not None:
            inflater.finish()
    except (OSError, ValueError) as exc:
        if isinstance(exc, IngestError):
            raise
        raise IngestError(f"cannot read stream ({exc})", path=name) from exc


def _prepend(head: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if head:
        yield head
    yield from rest


def _inflate_stream(stream: BinaryIO, *, name: str, limits: InputLimits) -> bytes:
    try:
        head = stream.read(2)
        if isinstance(head, str):  # a text stream given by mistake: accept it
            rest = stream.read()
            data = (head + rest).encode("utf-8")
            if len(data) > limits.max_bytes:
                raise limits.too_large(len(data), name=name)
            return data
        if head != GZIP_MAGIC:
            rest = stream.read(max(0, limits.max_bytes - len(head)) + 1)
            if len(head) + len(rest) > limits.max_bytes:
                raise limits.too_large(len(head) + len(rest), name=name)
            return head + rest
        inflater = Inflater(limits, name=name)
        out = io.BytesIO()
        chunk = head
        while chunk:
            for piece in inflater.feed(chunk):
                out.write(piece)
            chunk = stream.read(_CHUNK)
        inflater.finish()
        return out.getvalue()
    except (OSError, ValueError) as exc:
        if isinstance(exc, IngestError):
            raise
        raise IngestError(f"cannot read stream ({exc})", path=name) from exc


def decode_utf8(data: bytes, *, name: str, start: bool = True) -> bytes:
    """``data`` as valid UTF-8 bytes (BOM removed, a lone CR made a line end);
    undecodable bytes become U+FFFD. ``start=False`` says ``data`` is a later piece of
    a file read in chunks: no BOM to remove and no binary check (that looks at the
    file's first bytes only).

    Replacing instead of failing keeps a file with one garbled row readable: the row then
    fails validation on its own and is reported, the others go on.
    """
    if start and data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    sample = np.frombuffer(data[:8192] if start else b"", dtype=np.uint8)
    control = int(((sample < 32) & ~np.isin(sample, (9, 10, 13))).sum())
    # A text file may carry stray control bytes in a few bad rows (two rows of a dozen
    # each must not condemn a small file); many of them mean binary.
    if control > max(32, sample.size // 50):
        raise IngestError("binary data, not a text file", path=name)
    if b"\r" in data and data.count(b"\r") != data.count(b"\r\n"):
        # A lone CR ends a line for pyarrow and Python's csv module alike; make it a
        # newline so that every parser (and every reported line number) agrees.
        data = re.sub(rb"\r(?!\n)", b"\n", data)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        data = data.decode("utf-8", errors="replace").encode("utf-8")
    return data
