"""Turn a path or binary stream into bytes: gzip detected by magic bytes, errors named."""

from __future__ import annotations

import gzip
import re
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from dcm.errors import IngestError

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


def read_bytes(source: Source, *, name: str) -> bytes:
    """All bytes of ``source``, gunzipped when they start with the gzip magic.

    Raises :class:`IngestError` for a missing or unreadable file or a corrupt gzip stream.
    """
    if isinstance(source, str | Path):
        path = Path(source)
        if not path.exists():
            raise IngestError("file not found", path=name)
        if path.is_dir():
            raise IngestError("is a directory, not a file", path=name)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise IngestError(f"cannot read file ({exc.strerror})", path=name) from exc
    elif isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
    else:
        try:
            data = source.read()
        except (OSError, ValueError) as exc:
            raise IngestError(f"cannot read stream ({exc})", path=name) from exc
        if isinstance(data, str):  # a text stream given by mistake: accept it
            data = data.encode("utf-8")
    if data[:2] == GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise IngestError(f"corrupt gzip data ({exc})", path=name) from exc
    if data[:4] in ZIP_MAGIC:
        raise IngestError(ZIP_REFUSED, path=name)
    return bytes(data)


def decode_utf8(data: bytes, *, name: str) -> bytes:
    """``data`` as valid UTF-8 bytes (BOM removed, a lone CR made a line end);
    undecodable bytes become U+FFFD.

    Replacing instead of failing keeps a file with one garbled row readable: the row then
    fails validation on its own and is reported, the others go on.
    """
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    sample = np.frombuffer(data[:8192], dtype=np.uint8)
    control = int(((sample < 32) & ~np.isin(sample, (9, 10, 13))).sum())
    # A text file may carry a stray control byte in one bad row; many of them mean binary.
    if control > max(8, sample.size // 50):
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
