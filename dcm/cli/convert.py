"""``dcm convert``: measurement files → a partitioned Parquet dataset (see docs/scale.md)."""

from __future__ import annotations

from pathlib import Path

import click

from dcm.analysis.grid import DEFAULT_RESOLUTION


@click.command(name="convert")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Dataset directory to create.",
)
@click.option(
    "--resolution",
    default=DEFAULT_RESOLUTION,
    show_default=True,
    type=int,
    help="H3 resolution of the stored cells (use the one dcm compare will run at).",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing dataset at --out.")
@click.pass_context
def command(
    ctx: click.Context, inputs: tuple[Path, ...], out: Path, resolution: int, overwrite: bool
) -> None:
    """Convert measurement INPUTS (CSV, GeoJSON, NDJSON, Parquet; plain or gzip) into a
    Parquet dataset partitioned by day and H3 parent cell, with each row's H3 cell.

    CSV is read in chunks, so a file larger than memory converts. Rejected rows (file,
    line, field, reason) go to OUT/_rejected.csv; the dataset appears at OUT only
    when it is whole.
    """
    from dcm.cli.compare import progress_steps
    from dcm.convert import convert

    quiet = bool((ctx.obj or {}).get("quiet"))
    with progress_steps(quiet=quiet) as step:
        result = convert(
            list(inputs), out, resolution=resolution, overwrite=overwrite, progress=step
        )
    if quiet:
        return
    for report in result.reports:
        dupes = f", {report.duplicates:,} duplicate" if report.duplicates else ""
        click.echo(
            f"{report.path}: {report.rows_in:,} rows in, {report.accepted:,} kept, "
            f"{report.rejected_count:,} rejected{dupes}"
        )
        for reason, count in list(report.reasons().items())[:5]:
            click.echo(f"  {count:,} rejected: {reason}")
    meta = result.meta
    click.echo(
        f"{result.path}: {meta['rows']:,} rows, H3 resolution {meta['resolution']}, "
        "partitioned by day and h3_parent"
    )
    if meta["rejected"]:
        click.echo(f"rejected rows (file, line, field, reason): {result.path / '_rejected.csv'}")
