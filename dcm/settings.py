"""Configuration from ``DCM_`` environment variables, built when asked for."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Public root URL when none is configured (a local ``dcm serve``).
DEFAULT_PUBLIC_URL = "http://localhost:8000"


class Settings(BaseSettings):
    """Installation settings. Nothing reads the environment at import time."""

    model_config = SettingsConfigDict(env_prefix="DCM_", extra="ignore")

    #: ``sqlite:///path/to/dcm.sqlite`` (default: ``data_dir/dcm.sqlite``) or
    #: ``postgresql://user:pass@host:port/db`` for PostgreSQL + PostGIS.
    database_url: str | None = None
    #: Where the SQLite file, raw uploads and the installation secret live.
    data_dir: Path = Path.home() / ".local" / "share" / "dcm"
    #: Secret used to hash device identifiers; generated and stored in data_dir if unset.
    secret: str | None = None
    #: Public layers hide grid cells with fewer distinct devices than this.
    k_anonymity: int = 3
    #: Map refresh interval in seconds.
    map_refresh_s: int = 300
    #: Root URL the public reaches this installation at (``https://dcm.example.org``):
    #: CAP documents and the Atom feed link and name themselves from it, never from the
    #: Host header a client sends. Unset: ``dcm serve`` uses its own address, else
    #: DEFAULT_PUBLIC_URL.
    public_url: str | None = None
    #: Optional online basemap tile URL template; none by default (works offline).
    basemap_url: str | None = None
    #: Optional offline basemap: an MBTiles or PMTiles file dcm serves itself under
    #: ``/basemap/{z}/{x}/{y}.{format}`` (an OpenStreetMap extract made before deployment).
    basemap: Path | None = None
    #: Alert thresholds.
    alert_min_population: float = 100.0
    alert_min_area_km2: float = 1.0
    alert_min_confidence: float = 0.7
    #: Suspected outages (the data point to them but cannot confirm them yet) open CAP
    #: alert chains too, with certainty Possible. Off: they are mapped, and alerted once
    #: confirmed (about half the messages of the sample week came from suspected ones).
    alert_suspected: bool = False
    #: A SQLite writer waits this long in all for another one before "the store is busy".
    store_busy_timeout_s: float = 120.0
    #: Largest input read, counted after gunzip (CLI and uploads): a file that inflates
    #: beyond it is refused as soon as it does, before it fills the memory.
    max_decompressed_bytes: int = 1024**3
    #: Largest gzip inflation ratio accepted once the output passes 64 MiB: measurement
    #: files inflate 3-20 times, a gzip bomb of zeros or repeated rows about 1000 times.
    max_inflation_ratio: float = 100.0
    #: Longest line of a CSV or NDJSON input (one record per line): a file that is one
    #: huge line is refused once a line passes it, never read whole.
    max_line_bytes: int = 1024**2
    #: Largest upload body (as sent, compressed or not).
    max_upload_bytes: int = 2 * 1024**3
    #: The API gives up on a client that sends no byte of its request body, or reads no
    #: byte of its response, for this many seconds.
    client_idle_timeout_s: float = 60.0
    #: A measurement timed more than this many minutes after the data was received is
    #: rejected (device clocks run a little ahead; a row "from 2035" never moves an
    #: event's clock).
    clock_allowance_minutes: float = 15.0
    #: Measurement rows an ingest writes at a time (all in its one transaction): the
    #: ingest's memory grows with it, not with the file.
    ingest_batch_rows: int = 50_000

    @field_validator("public_url")
    @classmethod
    def _absolute_http_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
            raise ValueError(f"public_url must be an http(s) URL without a query: {value!r}")
        return value.strip().rstrip("/")

    def public_base(self) -> str:
        """The public root URL without a trailing slash (DEFAULT_PUBLIC_URL if unset)."""
        return (self.public_url or DEFAULT_PUBLIC_URL).rstrip("/")

    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file in ``data_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'dcm.sqlite'}"
