"""``dcm compare``: baseline vs. event measurements → outages, cell status, grid, map."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from dcm.analysis.grid import DEFAULT_RESOLUTION


@contextmanager
def progress_steps(*, quiet: bool) -> Iterator[Any]:
    """A rich status line that shows the current step (nothing when quiet)."""
    if quiet:
        yield lambda _msg: None
        return
    from rich.console import Console

    console = Console(stderr=True, log_path=False)
    with console.status("starting") as status:

        def step(message: str) -> None:
            status.update(f"[bold]{message}…")
            console.log(message)

        yield step


def print_summary(result: Any, paths: dict[str, Path]) -> None:
    """A short human summary of a comparison: per network, people and cells, file paths."""
    counts = result.summary["counts"]
    windows = result.summary["windows"]
    click.echo(
        f"windows judged: {windows['count']} "
        f"({_iso(windows['first_start'])} to {_iso(windows['last_end'])})"
    )
    click.echo(
        f"outages: {counts['outages']} confirmed tracked, {counts['outage_features']} features "
        f"({counts.get('suspected_features', 0)} of them suspected)"
    )
    for net, entry in counts["per_network"].items():
        people = entry.get("people_latest")
        peak = entry.get("people_peak")
        extra = "" if people is None else f", people now {people:,.0f} (peak {peak:,.0f})"
        click.echo(
            f"  {net:>8}: {entry['outages_latest']} area(s) now, "
            f"{entry['area_km2_latest']:.1f} km², {entry['cells_offline_latest']} "
            f"cells offline{extra}; {entry['outages_total']} over the period"
        )
    cells = counts["cells_latest"]
    listed = ", ".join(f"{k} {v}" for k, v in cells.items()) or "none"
    click.echo(f"cells in the last window: {listed}")
    for name, path in paths.items():
        click.echo(f"{name}: {path}")
    for warning in result.summary.get("warnings", []):
        click.echo(f"dcm: warning: {warning}", err=True)


def _iso(value: Any) -> str:
    import pandas as pd

    return pd.Timestamp(value).strftime("%Y-%m-%dT%H:%MZ")


@click.command(name="compare")
@click.option(
    "--cells",
    "cells",
    required=True,
    type=click.Path(dir_okay=False),
    help="Cell list (OpenCelliD/MLS export, CSV, plain or gzip).",
)
@click.option(
    "--baseline",
    required=True,
    type=click.Path(),
    help="Measurements before the event (CSV, GeoJSON, Parquet, NDJSON, or a dataset "
    "directory made by dcm convert).",
)
@click.option(
    "--event",
    required=True,
    type=click.Path(),
    help="Measurements since the event (same formats as --baseline).",
)
@click.option(
    "--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output folder."
)
@click.option("--window", default="1h", show_default=True, help="Time window length.")
@click.option(
    "--resolution",
    default=DEFAULT_RESOLUTION,
    show_default=True,
    type=int,
    help="H3 grid resolution (see docs/method.md).",
)
@click.option(
    "--population",
    type=click.Path(dir_okay=False),
    help="Population raster (GeoTIFF, people per pixel).",
)
@click.option("--areas", type=click.Path(dir_okay=False), help="Administrative areas.")
@click.option("--hazard", type=click.Path(dir_okay=False), help="Hazard footprint.")
@click.option("--at", "at", help="Judge only the window holding this time (ISO 8601).")
@click.option("--overwrite", is_flag=True, help="Replace existing result files.")
@click.pass_context
def command(
    ctx: click.Context,
    cells: str,
    baseline: str,
    event: str,
    out_dir: str,
    window: str,
    resolution: int,
    population: str | None,
    areas: str | None,
    hazard: str | None,
    at: str | None,
    overwrite: bool,
) -> None:
    """Compare event measurements with the baseline and write the results to OUT."""
    from dcm.compare import OUTPUT_FILES, compare, write_comparison
    from dcm.errors import Conflict

    out = Path(out_dir)
    existing = [n for n in OUTPUT_FILES if (out / n).exists()]
    if existing and not overwrite:  # fail before the long work, not after
        raise Conflict(f"{out} already holds {', '.join(existing)}; use --overwrite to replace")
    quiet = bool((ctx.obj or {}).get("quiet"))
    with progress_steps(quiet=quiet) as step:
        result = compare(
            cells=cells,
            baseline=baseline,
            event=event,
            window=window,
            resolution=resolution,
            population=population,
            areas=areas,
            hazard=hazard,
            at=at,
            progress=step,
        )
        paths = write_comparison(result, out, overwrite=overwrite, progress=step)
    if not quiet:
        print_summary(result, paths)
