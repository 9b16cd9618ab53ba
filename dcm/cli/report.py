"""``dcm report``: the gap report for planners as an HTML page or a PDF."""

from __future__ import annotations

from pathlib import Path

import click


@click.command(name="report")
@click.option("--event", "event", required=True, help="Event name or id.")
@click.option(
    "--at",
    "at",
    default=None,
    help="Report the window holding this time (ISO 8601, UTC if no offset); default latest.",
)
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Output file: .html (chart inline, works offline) or .pdf.",
)
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
def command(event: str, at: str | None, out: Path, overwrite: bool) -> None:
    """Write the ranked gap report (district, network, people, since, cells offline) and a
    chart of people cut off over time per network."""
    import pandas as pd

    from dcm import service
    from dcm.cli.event import open_cli_store
    from dcm.errors import ParameterError
    from dcm.publish.report import write_gap_report

    moment = None
    if at is not None:
        try:
            moment = pd.Timestamp(at)
        except ValueError as exc:
            raise ParameterError(f"--at {at!r}: not a time (use ISO 8601)") from exc
        moment = moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")
    with open_cli_store() as store:
        ev = store.get_event(event)
        window = service.gap_window(store, ev.id, at=moment)
        report = service.gap_report(store, ev.id, at=moment)
        history = service.gap_history(store, ev.id, until=None if window is None else window[0])
    path = write_gap_report(report, history, out, event=ev.name, window=window, overwrite=overwrite)
    when = f"window {window[0]:%Y-%m-%dT%H:%MZ}" if window else "no window computed yet"
    click.echo(f"{ev.name}: gap report ({when}, {len(report)} row(s)) written to {path}")
