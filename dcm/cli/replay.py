"""``dcm replay``: feed a measurement file into an event slice by slice, as if live.

The file is read once with :func:`dcm.ingest.read_measurements`; its rows are then cut
into time slices (``--step``, one hour by default) and each slice goes through
:func:`dcm.live.ingest_frame` (one audited dataset per slice, idempotent) followed by
:func:`dcm.live.update`, so alerts appear and cancel as they would have during the event.
"""

from __future__ import annotations

import hashlib
import io
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import click

from dcm.errors import IngestError, ParameterError
from dcm.store.models import VISIBILITIES

if TYPE_CHECKING:  # pandas and the store load only when the command runs (fast --help)
    import pandas as pd

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


def _utc(value: str, option: str) -> pd.Timestamp:
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

    from dcm import live
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
            outcome = live.ingest_frame(
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
        summary = live.update(store, ev.id, principal=principal, now=now, until=end)
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


@click.command(name="replay")
@click.option("--event", "event", required=True, help="Event name or id.")
@click.option("--step", default="1h", show_default=True, help="Slice length, e.g. 1h or 30min.")
@click.option(
    "--from",
    "start",
    default=None,
    help="First slice start (default: first row); earlier rows are not fed.",
)
@click.option("--until", default=None, help="Stop before this time (default: after last row).")
@click.option("--hours", type=float, default=None, help="Replay this many hours from --from.")
@click.option("--licence", default=None, help="Licence of the data, e.g. CC-BY-4.0.")
@click.option(
    "--visibility",
    type=click.Choice(VISIBILITIES),
    default="restricted",
    show_default=True,
    help="Who may read the rows.",
)
@click.option(
    "--clock",
    type=click.Choice(["data", "wall"]),
    default="data",
    show_default=True,
    help="CAP 'sent' time: the slice end (replayed time) or now.",
)
@click.option("-q", "--quiet", is_flag=True, help="A progress bar instead of one line per slice.")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
def command(
    ctx: click.Context,
    event: str,
    step: str,
    start: str | None,
    until: str | None,
    hours: float | None,
    licence: str | None,
    visibility: str,
    clock: str,
    quiet: bool,
    file: Path,
) -> None:
    """Replay the event measurements in FILE slice by slice: ingest each slice, update,
    and print per slice the rows added, windows recomputed, outages now and the CAP
    messages issued (Alert / Update / Cancel). Running it again adds nothing."""
    import pandas as pd

    from dcm import ingest as readers
    from dcm import live
    from dcm.cli.event import open_cli_store, operator

    try:
        step_td = pd.Timedelta(step)
    except ValueError as exc:
        raise ParameterError(f"--step: cannot read a duration from {step!r}") from exc
    if step_td <= pd.Timedelta(0):
        raise ParameterError(f"--step must be positive, got {step}")
    if not file.is_file():
        raise IngestError("file not found" if not file.exists() else "not a file", path=str(file))
    quiet = quiet or bool((ctx.obj or {}).get("quiet"))
    data = file.read_bytes()
    with open_cli_store() as store:
        ev = store.get_event(event)  # NotFound before any work
        if store.time_range(ev.id, period="baseline")[0] is None:
            # Every slice ends in an update, which needs the baseline: say so before
            # storing anything.
            raise ParameterError(
                f"event {ev.name}: no baseline measurements ingested yet "
                "(dcm ingest --kind baseline FILE first)"
            )
        checksum, _ = store.keep_raw(data)
        # Rows timed after now (plus the clock allowance) cannot have been measured yet:
        # rejected like any bad row. Each slice is received at its end.
        result = readers.read_measurements(
            io.BytesIO(data),
            name=str(file),
            device_secret=store.device_secret().encode(),
            not_after=live.received_limit(store),
        )
        report = result.report
        if result.frame.empty:
            raise IngestError("no valid measurement rows", path=str(file))
        starts = slice_bounds(
            result.frame["timestamp"],
            step=step_td,
            start=_utc(start, "--from") if start else None,
            until=_utc(until, "--until") if until else None,
            hours=hours,
        )
        click.echo(
            f"{file}: {report.rows_in} rows, {report.accepted} accepted, "
            f"{report.rejected_count} rejected, {report.duplicates} duplicate; "
            f"{len(starts)} slice(s) of {step} from {starts[0]:%Y-%m-%dT%H:%MZ}",
            err=quiet,
        )
        slices = replay_frame(
            store,
            event,
            result.frame,
            source=str(file),
            checksum=checksum,
            starts=starts,
            step=step_td,
            licence=licence,
            visibility=visibility,
            clock=clock,
            principal=operator(),
        )
        totals = {"added": 0, "Alert": 0, "Update": 0, "Cancel": 0}
        with click.progressbar(
            length=len(starts), label="replaying", file=sys.stderr, hidden=not quiet
        ) as bar:
            for done in slices:
                totals["added"] += done.added
                for kind, _ in done.messages:
                    totals[kind] += 1
                if not quiet:
                    click.echo(done.line())
                bar.update(1)
    click.echo(
        f"{len(starts)} slice(s), {totals['added']} rows added; CAP messages: "
        f"{totals['Alert']} Alert, {totals['Update']} Update, {totals['Cancel']} Cancel"
    )
