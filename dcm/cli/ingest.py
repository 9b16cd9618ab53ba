"""``dcm ingest``: load files into an event in the store (idempotent)."""

from __future__ import annotations

import click

from dcm.store.models import DATASET_KINDS, VISIBILITIES


@click.command(name="ingest")
@click.option("--event", "event", required=True, help="Event name or id.")
@click.option(
    "--kind",
    type=click.Choice(DATASET_KINDS),
    default="measurements",
    show_default=True,
    help="What the file holds (measurements = during the event).",
)
@click.option("--licence", default=None, help="Licence of the data, e.g. CC-BY-4.0.")
@click.option(
    "--visibility",
    type=click.Choice(VISIBILITIES),
    default="restricted",
    show_default=True,
    help="Who may read the rows: everyone, partners, or granted keys only.",
)
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
def command(
    event: str, kind: str, licence: str | None, visibility: str, files: tuple[str, ...]
) -> None:
    """Add FILES to an event. A file already ingested adds nothing; rows already stored
    (same measurement_id, or same content) are skipped."""
    from dcm import service
    from dcm.cli.event import open_cli_store, operator

    with open_cli_store() as store:
        for path in files:
            outcome = service.ingest(
                store,
                event,
                path,
                kind=kind,
                licence=licence,
                visibility=visibility,
                principal=operator(),
            )
            ds = outcome.dataset
            if not outcome.new:
                click.echo(f"{path}: already ingested as dataset {ds.id}, nothing added")
                continue
            rejected = f", {ds.rejected} rejected" if ds.rejected else ""
            dupes = f", {ds.duplicates} duplicate" if ds.duplicates else ""
            click.echo(
                f"{path}: dataset {ds.id} ({kind}, {visibility}): {ds.rows_in} rows in, "
                f"{outcome.added} added{rejected}{dupes}; "
                f"{outcome.dirty_windows} window(s) to update"
            )
            if outcome.report is not None and (sites := outcome.report.sites_line()):
                click.echo(f"  {sites}")
            if outcome.report is not None and outcome.report.rejected:
                for reason, count in list(outcome.report.reasons().items())[:5]:
                    click.echo(f"  {count} rejected: {reason}")
