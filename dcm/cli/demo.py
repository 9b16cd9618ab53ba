"""``dcm demo``: the comparison on the bundled St Vincent sample scenario."""

from __future__ import annotations

from pathlib import Path

import click

import dcm
from dcm.errors import NotFound

SAMPLE_FILES = (
    "cells.csv.gz",
    "baseline.csv.gz",
    "event.csv.gz",
    "population.tif",
    "areas.geojson",
    "hazard.geojson",
)


def sample_dir() -> Path:
    """The St Vincent sample folder of this checkout (raises NotFound when absent)."""
    folder = Path(dcm.__file__).resolve().parents[1] / "sample_data" / "stvincent"
    missing = [n for n in SAMPLE_FILES if not (folder / n).is_file()]
    if missing:
        raise NotFound(
            f"sample data not found: {folder} lacks {', '.join(missing)} "
            "(dcm demo needs a source checkout with sample_data/)"
        )
    return folder


@click.command(name="demo")
@click.option(
    "--out",
    "out_dir",
    default="dcm-demo-output",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Output folder (replaced if present).",
)
@click.pass_context
def command(ctx: click.Context, out_dir: str) -> None:
    """Run the comparison on the St Vincent sample and print a short summary."""
    from dcm.cli.compare import print_summary, progress_steps
    from dcm.compare import compare, write_comparison

    folder = sample_dir()
    quiet = bool((ctx.obj or {}).get("quiet"))
    with progress_steps(quiet=quiet) as step:
        result = compare(
            cells=folder / "cells.csv.gz",
            baseline=folder / "baseline.csv.gz",
            event=folder / "event.csv.gz",
            population=folder / "population.tif",
            areas=folder / "areas.geojson",
            hazard=folder / "hazard.geojson",
            progress=step,
        )
        paths = write_comparison(result, out_dir, overwrite=True, progress=step)
    click.echo(f"St Vincent sample ({folder})")
    print_summary(result, paths)
    click.echo(
        f"open the map: {Path(paths['map']).resolve()}"
        if "map" in paths
        else "map.html was not written (map renderer unavailable)"
    )
