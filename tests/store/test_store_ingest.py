"""Ingest into the store: idempotent by checksum and by row, raw files kept, devices hashed."""

from __future__ import annotations

import hashlib
import re
import stat
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pytest

from dcm import live
from dcm.analysis import DetectionParams
from dcm.errors import IngestError, NotFound, ParameterError
from dcm.ingest.report import IngestReport
from dcm.settings import Settings
from dcm.store import Principal, Store, open_store

if TYPE_CHECKING:
    from conftest import Scenario

START = pd.Timestamp("2021-04-09T00:00:00Z")  # the scenario's event start


@pytest.fixture
def event_store(store: Store, admin: Principal) -> Store:
    store.create_event("vincent", start=START, principal=admin)
    return store


def _count(store: Store) -> int:
    return int(store.db.scalar("SELECT count(*) FROM measurements"))


def test_same_file_twice_adds_nothing(
    event_store: Store, scenario: Scenario, admin: Principal
) -> None:
    path = scenario.event_slice(0, 2)
    first = live.ingest(event_store, "vincent", path, principal=admin)
    assert first.new and first.added == first.report.accepted > 500
    assert _count(event_store) == first.added
    again = live.ingest(event_store, "vincent", path, principal=admin)
    assert not again.new and again.added == 0
    assert again.dataset.id == first.dataset.id
    assert _count(event_store) == first.added
    assert len(event_store.list_datasets("vincent")) == 1


def test_overlapping_file_adds_only_new_rows(
    event_store: Store, scenario: Scenario, admin: Principal
) -> None:
    live.ingest(event_store, "vincent", scenario.event_slice(0, 2), principal=admin)
    before = _count(event_store)
    wider = live.ingest(event_store, "vincent", scenario.event_slice(0, 3), principal=admin)
    hours = (scenario.event["timestamp"] - START) // pd.Timedelta(hours=1)
    assert wider.new
    assert wider.added == int((hours == 2).sum())
    assert wider.dataset.added == wider.added
    assert _count(event_store) == before + wider.added


def test_rows_without_ids_are_deduplicated_by_content(
    event_store: Store, scenario: Scenario, admin: Principal, tmp_path: Path
) -> None:
    rows = pd.read_csv(scenario.event_slice(0, 1)).drop(columns="measurement_id")
    rows.to_csv(tmp_path / "a.csv", index=False)
    # Same rows, other column order: another file (checksum), the same measurements.
    rows[list(reversed(rows.columns))].to_csv(tmp_path / "b.csv", index=False)
    first = live.ingest(event_store, "vincent", tmp_path / "a.csv", principal=admin)
    second = live.ingest(event_store, "vincent", tmp_path / "b.csv", principal=admin)
    assert first.added == len(rows)
    assert second.new and second.added == 0
    assert _count(event_store) == len(rows)


def test_raw_upload_kept_by_checksum(
    event_store: Store, scenario: Scenario, admin: Principal
) -> None:
    path = scenario.event_slice(0, 1)
    data = path.read_bytes()
    outcome = live.ingest(event_store, "vincent", data, name="upload.csv", principal=admin)
    digest = hashlib.sha256(data).hexdigest()
    assert outcome.dataset.checksum == digest
    assert (event_store.data_dir / "raw" / digest).read_bytes() == data


def test_devices_are_hashed_and_the_secret_is_private(
    store_url: str, tmp_path: Path, scenario: Scenario, admin: Principal
) -> None:
    settings = Settings(data_dir=tmp_path / "d")  # no secret: one is generated
    with open_store(settings, url=store_url) as store:
        store.create_event("vincent", start=START, principal=admin)
        live.ingest(store, "vincent", scenario.event_slice(0, 1), principal=admin)
        devices = {r[0] for r in store.db.query("SELECT DISTINCT device FROM measurements")}
        secret = store.device_secret()
    clear = set(scenario.event["device"])
    assert devices and not devices & clear
    path = tmp_path / "d" / "secret"
    assert path.read_text().strip() == secret and len(secret) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_event_data_marks_windows_to_span_dirty(
    event_store: Store, scenario: Scenario, admin: Principal
) -> None:
    outcome = live.ingest(event_store, "vincent", scenario.event_slice(0, 2), principal=admin)
    dirty = event_store.dirty_windows("vincent")
    # Data in hours 0-1 can change windows 0 .. 1 + the evidence span.
    n_dirty = 2 + DetectionParams().span_windows
    assert list(dirty) == list(pd.date_range(START, periods=n_dirty, freq="h"))
    assert outcome.dirty_windows == n_dirty
    event = event_store.get_event("vincent")
    assert START + pd.Timedelta(hours=1) <= event.high_water < START + pd.Timedelta(hours=2)


def test_other_kinds_and_dataset_metadata(
    event_store: Store, scenario: Scenario, admin: Principal
) -> None:
    cells = live.ingest(
        event_store,
        "vincent",
        scenario.cells,
        kind="cells",
        licence="CC-BY-SA-4.0",
        visibility="public",
        principal=admin,
    )
    assert cells.added == 32 and len(event_store.cells("vincent")) == 32
    assert cells.dataset.licence == "CC-BY-SA-4.0" and cells.dataset.visibility == "public"
    assert cells.dataset.owner == admin.name
    areas = live.ingest(event_store, "vincent", scenario.areas, kind="areas", principal=admin)
    assert areas.added == 2
    assert set(event_store.areas("vincent")["area_id"]) == {"W", "E"}
    pop = live.ingest(
        event_store, "vincent", scenario.population, kind="population", principal=admin
    )
    assert pop.added == 900
    assert event_store.population("vincent")["population"].sum() == pytest.approx(18000)


def test_bad_input_is_reported_not_stored(
    event_store: Store, admin: Principal, tmp_path: Path
) -> None:
    with pytest.raises(IngestError):
        live.ingest(event_store, "vincent", tmp_path / "missing.csv", principal=admin)
    with pytest.raises(ParameterError):
        live.ingest(event_store, "vincent", b"x", kind="weather", principal=admin)
    with pytest.raises(NotFound):
        live.ingest(event_store, "nowhere", b"x", principal=admin)
    assert event_store.list_datasets("vincent") == []


def test_updates_of_one_event_wait_for_each_other(
    event_store: Store, store_url: str, settings: Settings
) -> None:
    import threading
    import time

    held = threading.Event()

    def hold() -> None:
        with open_store(settings, url=store_url) as other, other.event_lock("vincent"):
            held.set()
            time.sleep(0.5)

    worker = threading.Thread(target=hold)
    worker.start()
    assert held.wait(10)
    started = time.perf_counter()
    with event_store.event_lock("vincent"):
        waited = time.perf_counter() - started
    worker.join()
    assert waited >= 0.3


def test_a_file_written_in_batches_keeps_the_readers_rows_and_report(
    store_url: str, settings: Settings, scenario: Scenario, admin: Principal, tmp_path: Path
) -> None:
    """Rows written 40 at a time (``ingest_batch_rows``) in the one transaction: the
    dataset holds the rows and the report (line, field, reason) the whole-file reader
    gives, copies by id and by content dropped once, the high-water mark and windows
    of every batch."""
    from dcm.ingest import read_measurements

    lines = scenario.event_slice(0, 3).read_text().splitlines()
    header, rows = lines[0], lines[1:]
    columns = header.split(",")

    def changed(row: str, **values: str) -> str:
        fields = row.split(",")
        for column, value in values.items():
            fields[columns.index(column)] = value
        return ",".join(fields)

    no_id = changed(rows[7], measurement_id="")  # copies by content, not by id
    future = changed(rows[9], timestamp="2035-01-01T00:00:00Z", measurement_id="late")
    messy = [header, *rows[:150], rows[3], changed(rows[5], lat="91"), no_id, "not,a,row"]
    messy += [*rows[150:], rows[140], no_id, future]
    path = tmp_path / "messy.csv"
    path.write_text("\n".join(messy) + "\n")
    batched = settings.model_copy(update={"ingest_batch_rows": 40})
    with open_store(batched, url=store_url) as store:
        store.create_event("vincent", start=START, principal=admin)
        outcome = live.ingest(store, "vincent", path, principal=admin)
        whole = read_measurements(
            path, device_secret=store.device_secret().encode(), not_after=pd.Timestamp.now("UTC")
        )
        stored = store.measurements("vincent")
        ev = store.get_event("vincent")
        dirty = store.dirty_windows("vincent")
    assert outcome.report is not None

    def without_clock(report: IngestReport) -> dict[str, object]:
        """The report with the time received (seconds apart in the two reads) left out."""
        rows = [
            {**r, "reason": re.sub(r"\(\S+Z\)", "(…)", r["reason"])}
            for r in report.to_dict()["rejected_rows"]
        ]  # type: ignore[attr-defined]
        return {**report.to_dict(), "rejected_rows": rows}

    assert without_clock(outcome.report) == without_clock(whole.report)
    assert [r.field for r in whole.report.rejected] == ["lat", "row", "timestamp"]
    assert whole.report.duplicates == 3 and len(whole.report.rejected) == 3
    assert outcome.added == len(whole.frame) > 4 * 40
    want = whole.frame.sort_values(["timestamp", "measurement_id"], ignore_index=True)
    got = stored.sort_values(["timestamp", "measurement_id"], ignore_index=True)
    pd.testing.assert_frame_equal(got, want)
    assert ev.high_water == whole.frame["timestamp"].max()
    assert len(dirty) == len(live.touched_windows(whole.frame["timestamp"], ev))


def test_bytes_and_streams_are_kept_like_the_file(
    event_store: Store, scenario: Scenario, admin: Principal
) -> None:
    """The same data as a path, bytes, a seekable stream or one that cannot seek (an
    upload body): one raw copy, one checksum, one dataset."""
    import io

    path = scenario.event_slice(0, 1)
    data = path.read_bytes()

    class Body(io.RawIOBase):
        def __init__(self) -> None:
            self.data = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def, override]
            return self.data.readinto(buffer)

    first = live.ingest(event_store, "vincent", Body(), name="hour.csv", principal=admin)
    assert first.new and first.added > 100
    for source in (path, data, io.BytesIO(b"skip" + data)):
        if isinstance(source, io.BytesIO):
            source.read(4)  # kept from the current position
        again = live.ingest(event_store, "vincent", source, name="hour.csv", principal=admin)
        assert not again.new and again.dataset.id == first.dataset.id
    raw = Path(event_store.data_dir) / "raw"
    assert [p.name for p in raw.iterdir()] == [hashlib.sha256(data).hexdigest()]
    assert not [p for p in Path(event_store.data_dir).iterdir() if p.name.startswith("dcm-")]
