"""``dcm replay``: feed a measurement file into an event slice by slice, as if live
(:mod:`dcm.service.replay` does the work; this module parses options and prints)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from dcm.service.replay import SliceResult, replay_frame, slice_bounds
from dcm.store.models import VISIBILITIES

__all__ = ["SliceResult", "command", "replay_frame", "slice_bounds"]


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
    from dcm.cli.event import open_cli_store, operator
    from dcm.service import replay

    step_td = replay.parse_step(step)
    data = replay.read_file(file)
    quiet = quiet or bool((ctx.obj or {}).get("quiet"))
    with open_cli_store() as store:
        plan = replay.prepare(
            store,
            event,
            data,
            name=str(file),
            step=step_td,
            start=start or None,
            until=until or None,
            hours=hours,
        )
        report, starts = plan.report, plan.starts
        click.echo(
            f"{file}: {report.rows_in} rows, {report.accepted} accepted, "
            f"{report.rejected_count} rejected, {report.duplicates} duplicate; "
            f"{len(starts)} slice(s) of {step} from {starts[0]:%Y-%m-%dT%H:%MZ}",
            err=quiet,
        )
        slices = replay.replay_frame(
            store,
            event,
            plan.frame,
            source=str(file),
            checksum=plan.checksum,
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
