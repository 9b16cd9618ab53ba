"""Replay: feed a measurement file into an event slice by slice, as if live.

The file is read once with :func:`dcm.ingest.read_measurements` (:func:`prepare`); its
rows are then cut into time slices (one hour by default) and each slice goes through
:func:`dcm.service.ingest_frame` (one audited dataset per slice, idempotent) followed by
:func:`dcm.service.update`, so alerts appear and cancel as they would have during the
event (:func:`replay_frame`).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dcm.errors import IngestError, ParameterError

if TYPE_CHECKING:  # pandas and the store load only when a replay runs (fast CLI --help)
    import pandas as pd

    from dcm.ingest.report import IngestReport
    from dcm.store import Principal, Store


@dataclass
class SliceResult:
    """What one slice did: rows added, windows recomputed, outages in the latest computed
    window, and the CAP messages issued (type, identifier)."""

    start: pd.Timestamp
    end: pd.Timestamp
    rows: int
    added: int
    windows: int
    outages: int
    messages: list[tuple[str, str]] = field(default_factory=list)

    def line(self) -> str:
        """One human line for the terminal."""
        issued = ", ".join(f"{kind} {ident}" for kind, ident in self.messages) or "-"
        return (
            f"{self.start:%Y-%m-%dT%H:%MZ}  +{self.added:<5} rows  {self.windows:>2} window(s)  "
            f"{self.outages:>2} outage(s) now  {issued}"
        )


def parse_time(value: str, option: str) -> pd.Timestamp:
    import pandas as pd

    try:
        ts = pd.Timestamp(value)
    except ValueError as exc:
        raise ParameterError(f"{option}: cannot read a time from {value!r}") from exc
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def slice_bounds(
    timestamps: pd.Series,
    *,
    step: pd.Timedelta,
    start: pd.Timestamp | None = None,
    until: pd.Timestamp | None = None,
    hours: float | None = None,
) -> pd.DatetimeIndex:
    """Slice starts (UTC DatetimeIndex) covering ``timestamps`` from ``start`` (default:
    the first timestamp floored to ``step``) to ``until`` (or ``start + hours``; default:
    past the last timestamp). Raises ParameterError for an empty or inverted range."""
    import pandas as pd

    if until is not None and hours is not None:
        raise ParameterError("give --until or --hours, not both")
    ts = pd.DatetimeIndex(pd.to_datetime(timestamps, utc=True))
    first = start if start is not None else ts.min().floor(step)
    if hours is not None:
        if hours <= 0:
            raise ParameterError(f"--hours must be positive, got {hours}")
        until = first + pd.Timedelta(hours=hours)
    if until is None:
        until = ts.max().floor(step) + step
    if until <= first:
        raise ParameterError(f"nothing to replay: --until {until} is not after {first}")
    return pd.date_range(first, until, freq=step, inclusive="left")


def replay_frame(
    store: Store,
    event: str,
    frame: pd.DataFrame,
    *,
    source: str,
    checksum: str,
    starts: pd.DatetimeIndex,
    step: pd.Timedelta,
    licence: str | None,
    visibility: str,
    clock: str,
    principal: Principal,
) -> Iterator[SliceResult]:
    """Yield a :class:`SliceResult` per slice of ``frame`` (MEASUREMENT_COLUMNS) after
    ingesting it into ``event`` and running the incremental update. Each slice is one
    dataset whose checksum is derived from the file checksum and the slice bounds, so a
    second replay of the same file adds nothing. ``clock="data"`` stamps CAP messages with
    the slice end (the replayed time), ``"wall"`` with the current time.

    A slice is received at its end: its dataset, rows, dirty windows and high-water mark
    commit together, then its update commits results and alerts together, so a replay
    that dies anywhere is finished by running it again (done slices add nothing, and the
    update of the slice it died in runs again with the same clock)."""
    import numpy as np
    import pandas as pd

    from dcm.service.ingesting import ingest_frame
    from dcm.service.updating import update
    from dcm.store.faults import fault_point

    ev = store.get_event(event)
    times = pd.to_datetime(frame["timestamp"], utc=True).to_numpy(dtype="datetime64[ns]")
    order = np.argsort(times, kind="stable")
    times, frame = times[order], frame.iloc[order]
    # Both sides in ns: a start parsed from "--from" may carry a coarser unit.
    limits = pd.DatetimeIndex([*starts, starts[-1] + step]).as_unit("ns")
    edges = limits.asi8.astype("datetime64[ns]")
    cuts = np.searchsorted(times, edges, side="left")  # frame is sorted: slices are ranges
    seen = len(store.alert_messages(ev.id))
    for i, start in enumerate(starts):
        end = start + step
        part = frame.iloc[cuts[i] : cuts[i + 1]]
        bounds = f"{start:%Y-%m-%dT%H:%M:%SZ}/{end:%Y-%m-%dT%H:%M:%SZ}"
        added = 0
        if len(part):
            outcome = ingest_frame(
                store,
                ev,
                part,
                kind="measurements",
                source=f"{source}#{bounds}",
                checksum=hashlib.sha256(f"{checksum}:{bounds}".encode()).hexdigest(),
                counts={"rows_in": len(part), "accepted": len(part)},
                licence=licence,
                visibility=visibility,
                received=end,
                principal=principal,
            )
            added = outcome.added
        fault_point("replay.slice_ingested")
        now = end if clock == "data" else None
        summary = update(store, ev.id, principal=principal, now=now, until=end)
        fault_point("replay.slice_updated")
        messages = store.alert_messages(ev.id)
        issued = [(m.msg_type, m.identifier) for m in messages[seen:]]
        seen = len(messages)
        windows = store.event_windows(ev.id)
        done = windows.loc[~windows["dirty"], "window_start"]
        outages = len(store.outages(ev.id, windows=[done.max()])) if len(done) else 0
        yield SliceResult(
            start=start,
            end=end,
            rows=len(part),
            added=added,
            windows=len(summary.windows),
            outages=outages,
            messages=issued,
        )


def parse_step(step: str) -> pd.Timedelta:
    """The slice length of ``--step`` (e.g. ``1h``, ``30min``); ParameterError unless a
    positive duration."""
    import pandas as pd

    try:
        step_td = pd.Timedelta(step)
    except ValueError as exc:
        raise ParameterError(f"--step: cannot read a duration from {step!r}") from exc
    if step_td <= pd.Timedelta(0):
        raise ParameterError(f"--step must be positive, got {step}")
    return step_td


@dataclass
class ReplayPlan:
    """A measurement file read once and cut into slices: its valid rows
    (MEASUREMENT_COLUMNS), the reader's report, the checksum of the raw file (kept in the
    store) and the slice starts."""

    frame: pd.DataFrame
    report: IngestReport
    checksum: str
    starts: pd.DatetimeIndex
    step: pd.Timedelta


def read_file(file: Path) -> bytes:
    """The bytes of the file to replay (IngestError naming it when missing). A CSV or
    NDJSON file is read through first, nothing kept: a line past ``DCM_MAX_LINE_BYTES``
    or a gzip bomb is refused before the file is read whole."""
    from dcm.ingest._source import check_lines
    from dcm.ingest.measurements import line_based

    if not file.is_file():
        raise IngestError("file not found" if not file.exists() else "not a file", path=str(file))
    label = str(file)
    check_lines(file, name=label, line_based=lambda head: line_based(label, head))
    return file.read_bytes()


def prepare(
    store: Store,
    event: str,
    data: bytes,
    *,
    name: str,
    step: pd.Timedelta,
    start: pd.Timestamp | str | None = None,
    until: pd.Timestamp | str | None = None,
    hours: float | None = None,
) -> ReplayPlan:
    """Check that ``event`` can be replayed into (it exists and has a baseline), keep the
    raw file ``data`` (read by :func:`read_file`; ``name`` in messages), read its rows
    and cut them into slices (:func:`slice_bounds`; ``start`` and ``until`` may be the
    text of ``--from`` and ``--until``). Rows timed after now (plus the clock allowance)
    cannot have been measured yet: they are rejected like any bad row. Raises before
    storing anything when the event lacks a baseline."""
    from dcm import ingest as readers
    from dcm.service.ingesting import received_limit

    ev = store.get_event(event)  # NotFound before any work
    if store.time_range(ev.id, period="baseline")[0] is None:
        # Every slice ends in an update, which needs the baseline: say so before
        # storing anything.
        raise ParameterError(
            f"event {ev.name}: no baseline measurements ingested yet "
            "(dcm ingest --kind baseline FILE first)"
        )
    checksum, _ = store.keep_raw(data)
    result = readers.read_measurements(
        io.BytesIO(data),
        name=name,
        device_secret=store.device_secret().encode(),
        not_after=received_limit(store),
    )
    if result.frame.empty:
        raise IngestError("no valid measurement rows", path=name)
    # Times as given on the command line are read once the file is (errors in that order).
    starts = slice_bounds(
        result.frame["timestamp"],
        step=step,
        start=parse_time(start, "--from") if isinstance(start, str) else start,
        until=parse_time(until, "--until") if isinstance(until, str) else until,
        hours=hours,
    )
    return ReplayPlan(
        frame=result.frame, report=result.report, checksum=checksum, starts=starts, step=step
    )
