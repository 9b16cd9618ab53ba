"""Events, their datasets and raw files, and the dirty windows of incremental updates."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import pandas as pd
import shapely

from dcm.errors import Conflict, NotFound, ParameterError
from dcm.store._db import to_ts, to_utc, ts_text
from dcm.store.access import Principal
from dcm.store.faults import fault_point
from dcm.store.models import DATASET_KINDS, VISIBILITIES, Dataset, Event
from dcm.store.repositories.base import _EVENT_NAME, Repository, _drop_stale_tmp, _json, _now


class EventRepository(Repository):
    """Events, datasets (licence, visibility), raw uploads and event windows."""

    # -- events --------------------------------------------------------------------------
    def create_event(
        self,
        name: str,
        *,
        start: pd.Timestamp | str,
        end: pd.Timestamp | str | None = None,
        area: dict[str, Any] | None = None,
        description: str | None = None,
        window: str = "1h",
        principal: Principal,
    ) -> Event:
        """Create an event; :class:`~dcm.errors.Conflict` if the name exists."""
        principal.require(principal.can_write(None), "create event")
        name = name.strip()
        # Names appear in URLs, collection ids and CAP identifiers (no spaces or commas).
        if not _EVENT_NAME.fullmatch(name) or name.isdigit():
            raise ParameterError(
                f"bad event name {name!r}: use letters, digits, '-', '_' and '.' (not only digits)"
            )
        start_ts = to_ts(start)
        end_ts = to_ts(end) if end is not None else None
        if end_ts is not None and start_ts is not None and end_ts <= start_ts:
            raise ParameterError("event end must be after its start")
        try:
            pd.Timedelta(window)
        except ValueError as exc:
            raise ParameterError(f"bad window length {window!r}") from exc
        if area is not None:
            try:
                shapely.from_geojson(_json(area))
            except shapely.errors.GEOSException as exc:
                raise ParameterError(f"event area is not a GeoJSON geometry: {exc}") from exc
        if self.db.scalar("SELECT id FROM events WHERE name = :name", {"name": name}) is not None:
            raise Conflict(f"event {name!r} exists")
        with self.db.transaction():
            event_id = self.db.scalar(
                "INSERT INTO events (name, start_time, end_time, description, area, "
                "window_length, created_at) VALUES (:name, :start, :end, :description, :area, "
                ":window, :created) RETURNING id",
                {
                    "name": name,
                    "start": ts_text(start_ts),
                    "end": ts_text(end_ts),
                    "description": description,
                    "area": _json(area) if area else None,
                    "window": window,
                    "created": ts_text(_now()),
                },
            )
            self.audit(principal, "event.create", f"event:{name}", {"id": event_id})
        return self.get_event(int(event_id))

    _EVENT_SQL = (
        "SELECT id, name, start_time, end_time, description, area, window_length, created_at, "
        "high_water FROM events"
    )

    @staticmethod
    def _event(row: Sequence[Any]) -> Event:
        return Event(
            id=int(row[0]),
            name=row[1],
            start=to_ts(row[2]),  # type: ignore[arg-type]
            end=to_ts(row[3]),
            description=row[4],
            area=json.loads(row[5]) if row[5] else None,
            window=row[6],
            created_at=to_ts(row[7]),  # type: ignore[arg-type]
            high_water=to_ts(row[8]),
        )

    def get_event(self, event: str | int | Event) -> Event:
        """An event by name or id; :class:`~dcm.errors.NotFound` otherwise."""
        if isinstance(event, Event):
            event = event.id
        if isinstance(event, int) or (isinstance(event, str) and event.isdigit()):
            row = self.db.one(f"{self._EVENT_SQL} WHERE id = :id", {"id": int(event)})
        else:
            row = self.db.one(f"{self._EVENT_SQL} WHERE name = :name", {"name": event})
        if row is None:
            raise NotFound(f"no event {event!r}")
        return self._event(row)

    def event_id(self, event: str | int | Event) -> int:
        """Numeric id of an event given by name, id or record (NotFound otherwise)."""
        if isinstance(event, Event):
            return event.id
        return self._event_key(event)[0]

    def event_name(self, event: str | int | Event) -> str:
        """Name of an event given by name, id or record (NotFound otherwise)."""
        if isinstance(event, Event):
            return event.name
        return self._event_key(event)[1]

    def _event_key(self, event: str | int) -> tuple[int, str]:
        # Events are never renamed or deleted: once found, (id, name) stay true.
        cached = self._event_keys.get(event)
        if cached is None:
            found = self.get_event(event)
            cached = self._event_keys[event] = (found.id, found.name)
        return cached

    def list_events(self) -> list[Event]:
        """All events, newest start first."""
        rows = self.db.query(f"{self._EVENT_SQL} ORDER BY start_time DESC, id DESC")
        return [self._event(r) for r in rows]

    def set_high_water(self, event: str | int, ts: pd.Timestamp) -> None:
        """Raise the event's data high-water mark to ``ts`` (never lowers it)."""
        eid = self.event_id(event)
        # One statement: two ingests committing at once can never lower the mark.
        text = ts_text(ts)
        self.db.execute(
            "UPDATE events SET high_water = :ts WHERE id = :id AND (high_water IS NULL OR "
            "high_water < :ts)",
            {"ts": text, "id": eid},
        )

    @contextmanager
    def event_lock(self, event: str | int) -> Iterator[None]:
        """Hold the update lock of an event (across processes): a second ``dcm update`` of
        the same event waits instead of computing and alerting the same windows twice.

        PostgreSQL: a session advisory lock; SQLite: ``flock`` on a file beside the
        database. Not re-entrant.
        """
        eid = self.event_id(event)
        if self.db.is_pg:
            self.db.execute("SELECT pg_advisory_lock(4242017, :id)", {"id": eid})
            try:
                yield
            finally:
                self.db.execute("SELECT pg_advisory_unlock(4242017, :id)", {"id": eid})
            return
        import fcntl

        base = self.db.path if self.db.path not in (None, ":memory:") else None
        lock = Path(f"{base}.event-{eid}.lock") if base else self.data_dir / f"event-{eid}.lock"
        lock.parent.mkdir(parents=True, exist_ok=True)
        with lock.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def event_windows(self, event: str | int) -> pd.DataFrame:
        """Windows of an event: ``window_start, window_end, dirty, computed_at, run_id``."""
        frame = self.db.frame(
            "SELECT window_start, window_end, dirty, computed_at, run_id FROM event_windows "
            "WHERE event_id = :event ORDER BY window_start",
            {"event": self.event_id(event)},
        )
        for col in ("window_start", "window_end", "computed_at"):
            frame[col] = to_utc(frame[col])
        frame["dirty"] = frame["dirty"].astype(bool)
        frame["run_id"] = frame["run_id"].astype("Int64")
        return frame

    # -- datasets and raw files ------------------------------------------------------------
    def keep_raw(self, data: bytes | Path | BinaryIO) -> tuple[str, Path]:
        """Keep ``data`` (bytes, the file at a path, or a seekable binary stream from its
        current position; a file or stream is copied a MiB at a time, never read whole)
        as ``data_dir/raw/<sha256>`` (once) and return (checksum, path)."""
        if isinstance(data, bytes):
            checksum = hashlib.sha256(data).hexdigest()
        elif isinstance(data, str | Path):
            with Path(data).open("rb") as fh:
                checksum = hashlib.file_digest(fh, "sha256").hexdigest()
        else:
            start, digest = data.tell(), hashlib.sha256()
            # Not hashlib.file_digest: it hashes a BytesIO whole, whatever its position.
            while block := data.read(1024**2):
                digest.update(block)
            checksum = digest.hexdigest()
            data.seek(start)
        path = self.data_dir / "raw" / checksum
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{checksum}.{os.getpid()}.tmp")
            try:
                if isinstance(data, bytes):
                    tmp.write_bytes(data)
                elif isinstance(data, str | Path):
                    shutil.copyfile(data, tmp)
                else:
                    with tmp.open("wb") as out:
                        shutil.copyfileobj(data, out, 1024**2)
                fault_point("raw.tmp_written")
                os.replace(tmp, path)  # atomic: a reader never sees half a file
            except BaseException:
                tmp.unlink(missing_ok=True)  # a full disk must not keep a partial copy
                raise
            _drop_stale_tmp(path)
        return checksum, path

    _DATASET_SQL = (
        "SELECT id, event_id, kind, source, licence, visibility, owner, checksum, rows_in, "
        "accepted, rejected, duplicates, added, ingested_at FROM datasets"
    )

    @staticmethod
    def _dataset(row: Sequence[Any]) -> Dataset:
        return Dataset(
            id=int(row[0]),
            event_id=int(row[1]),
            kind=row[2],
            source=row[3],
            licence=row[4],
            visibility=row[5],
            owner=row[6],
            checksum=row[7],
            rows_in=int(row[8]),
            accepted=int(row[9]),
            rejected=int(row[10]),
            duplicates=int(row[11]),
            added=int(row[12]),
            ingested_at=to_ts(row[13]),  # type: ignore[arg-type]
        )

    def find_dataset(self, event: str | int, checksum: str, kind: str) -> Dataset | None:
        """The dataset of ``event`` with this checksum and kind, if already ingested."""
        row = self.db.one(
            f"{self._DATASET_SQL} WHERE event_id = :event AND checksum = :checksum "
            "AND kind = :kind",
            {"event": self.event_id(event), "checksum": checksum, "kind": kind},
        )
        return None if row is None else self._dataset(row)

    def add_dataset(
        self,
        event: str | int,
        *,
        kind: str,
        source: str,
        checksum: str,
        licence: str | None,
        visibility: str,
        counts: dict[str, int],
        principal: Principal,
    ) -> Dataset:
        """Record a dataset (counts: rows_in, accepted, rejected, duplicates, added)."""
        if kind not in DATASET_KINDS:
            raise ParameterError(f"unknown dataset kind {kind!r} (use {', '.join(DATASET_KINDS)})")
        if visibility not in VISIBILITIES:
            raise ParameterError(f"unknown visibility {visibility!r} ({', '.join(VISIBILITIES)})")
        ev = self.get_event(event)
        principal.require(principal.can_ingest(ev), f"ingest into {ev.name}")
        with self.db.transaction():
            dataset_id = self.db.scalar(
                "INSERT INTO datasets (event_id, kind, source, licence, visibility, owner, "
                "checksum, rows_in, accepted, rejected, duplicates, added, ingested_at) "
                "VALUES (:event, :kind, :source, :licence, :visibility, :owner, :checksum, "
                ":rows_in, :accepted, :rejected, :duplicates, :added, :ingested_at) RETURNING id",
                {
                    "event": ev.id,
                    "kind": kind,
                    "source": source,
                    "licence": licence,
                    "visibility": visibility,
                    "owner": principal.name,
                    "checksum": checksum,
                    **{
                        k: int(counts.get(k, 0))
                        for k in ("rows_in", "accepted", "rejected", "duplicates", "added")
                    },
                    "ingested_at": ts_text(_now()),
                },
            )
            self.audit(
                principal,
                "dataset.add",
                f"dataset:{dataset_id}",
                {"event": ev.name, "kind": kind, "checksum": checksum, "visibility": visibility},
            )
        return self.get_dataset(int(dataset_id))

    def get_dataset(self, dataset_id: int) -> Dataset:
        row = self.db.one(f"{self._DATASET_SQL} WHERE id = :id", {"id": int(dataset_id)})
        if row is None:
            raise NotFound(f"no dataset {dataset_id}")
        return self._dataset(row)

    def list_datasets(
        self, event: str | int | None = None, *, principal: Principal | None = None
    ) -> list[Dataset]:
        """Datasets (of one event), only those ``principal`` may read when given."""
        if event is None:
            rows = self.db.query(f"{self._DATASET_SQL} ORDER BY id")
        else:
            rows = self.db.query(
                f"{self._DATASET_SQL} WHERE event_id = :event ORDER BY id",
                {"event": self.event_id(event)},
            )
        datasets = [self._dataset(r) for r in rows]
        if principal is not None:
            datasets = [d for d in datasets if principal.can_read_dataset(d)]
        return datasets

    def set_dataset_added(self, dataset_id: int, added: int) -> None:
        """Set how many rows of a dataset were new to the store."""
        self.db.execute(
            "UPDATE datasets SET added = :added WHERE id = :id",
            {"added": int(added), "id": int(dataset_id)},
        )

    def readable_dataset_ids(self, event: str | int, principal: Principal) -> list[int] | None:
        """Ids of the event's datasets ``principal`` may read; None when it may read all."""
        rows = self.db.query(
            "SELECT id, visibility FROM datasets WHERE event_id = :event",
            {"event": self.event_id(event)},
        )
        allowed = [int(i) for i, vis in rows if principal.can_read_visibility(vis, int(i))]
        return None if len(allowed) == len(rows) else allowed

    # -- incremental state -----------------------------------------------------------------
    def mark_dirty(self, event: str | int, windows: pd.DatetimeIndex) -> int:
        """Mark windows (by start) for recomputation; returns how many are dirty now."""
        ev = self.get_event(event)
        length = pd.Timedelta(ev.window)
        starts = pd.DatetimeIndex(windows).unique()
        if len(starts):
            rows = [
                {"event": ev.id, "start": ts_text(s), "end": ts_text(s + length)} for s in starts
            ]
            with self.db.transaction():
                self.db.executemany(
                    "INSERT INTO event_windows (event_id, window_start, window_end, dirty, "
                    "marks) VALUES (:event, :start, :end, 1, 1) ON CONFLICT (event_id, "
                    "window_start) DO "
                    "UPDATE SET dirty = 1, marks = event_windows.marks + 1",
                    rows,
                )
        return int(
            self.db.scalar(
                "SELECT count(*) FROM event_windows WHERE event_id = :event AND dirty = 1",
                {"event": ev.id},
            )
        )

    def dirty_windows(self, event: str | int) -> pd.DatetimeIndex:
        """Starts of windows waiting for recomputation, ascending."""
        return pd.DatetimeIndex(self.dirty_marks(event).index)

    def dirty_marks(self, event: str | int) -> pd.Series:
        """How often each window waiting for recomputation was marked dirty (indexed by
        window start, ascending): hand it to :meth:`save_results` so a window marked
        again while it was computed stays dirty."""
        rows = self.db.query(
            "SELECT window_start, marks FROM event_windows WHERE event_id = :event "
            "AND dirty = 1 ORDER BY window_start",
            {"event": self.event_id(event)},
        )
        index = pd.DatetimeIndex(to_utc([r[0] for r in rows]), name="window_start")
        return pd.Series([int(r[1]) for r in rows], index=index, dtype="int64", name="marks")
