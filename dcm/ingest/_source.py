"""Turn a path or binary stream into bytes: gzip detected by magic bytes, errors named."""

from __future__ import annotations

import io
import re
import zlib
from collections.abc import Iterator
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


@dataclass(frozen=True)
class InputLimits:
    """How large an input may grow: ``max_bytes`` after gunzip, and at most ``max_ratio``
    times its compressed size once past :data:`RATIO_FLOOR_BYTES`."""

    max_bytes: int
    max_ratio: float

    @classmethod
    def from_settings(cls, settings: Any = None) -> InputLimits:
        """The limits of ``settings`` (``DCM_MAX_DECOMPRESSED_BYTES`` and
        ``DCM_MAX_INFLATION_RATIO`` when None)."""
        if settings is None:
            from dcm.settings import Settings

            settings = Settings()
        return cls(settings.max_decompressed_bytes, settings.max_inflation_ratio)

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
        self.bytes_in += len(chunk)
        out: list[bytes] = []
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
                if keep:
                    out.append(piece)
                if self._inflate.eof:  # the next member, if any, starts in unused_data
                    data = self._inflate.unused_data
                    continue
                data = self._inflate.unconsumed_tail
                if not data and len(piece) < _CHUNK:  # a full piece may have more behind
                    break
        except zlib.error as exc:
            raise IngestError(f"corrupt gzip data ({exc})", path=self.name) from exc
        return out

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


def read_bytes(source: Source, *, name: str, limits: InputLimits | None = None) -> bytes:
    """All bytes of ``source``, gunzipped when they start with the gzip magic.

    ``limits`` (default :meth:`InputLimits.from_settings`) bound the size after gunzip
    and the inflation ratio; gzip input is inflated chunk by chunk, so an input past
    them is refused before it fills the memory. Raises :class:`IngestError` for a
    missing or unreadable file, a corrupt gzip stream or an input past the limits.
    """
    limits = limits if limits is not None else InputLimits.from_settings()
    with open_source(source, name=name) as stream:
        return _read_stream(stream, name=name, limits=limits)


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


def _read_stream(stream: BinaryIO, *, name: str, limits: InputLimits) -> bytes:
    data = _inflate_stream(stream, name=name, limits=limits)
    if data[:4] in ZIP_MAGIC:
        raise IngestError(ZIP_REFUSED, path=name)
    return data


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
