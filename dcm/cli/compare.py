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
    """A rich status line that shows the current step (nothing when quiet). The step
    function's ``tick`` shows passing progress (rows counted) on a terminal only; it is
    None when stderr is not one (a log then gets the steps, not every tick)."""
    if quiet:
        step: Any = lambda _msg: None  # noqa: E731
        step.tick = None
        yield step
        return
    from rich.console import Console

    console = Console(stderr=True, log_path=False)
    with console.status("starting") as status:
        current = ["starting"]

        def step(message: str) -> None:
            current[0] = message
            status.update(f"[bold]{message}…")
            console.log(message)

        def tick(message: str) -> None:
            status.update(f"[bold]{current[0]}…[/bold] {message}")

        step.tick = tick if console.is_terminal else None  # type: ignore[attr-defined]
        yield step


@contextmanager
def _dask_client(address: str | None) -> Iterator[Any]:
    """A dask.distributed client of the scheduler at ``address`` (None: no client)."""
    if address is None:
        yield None
        return
    from dcm.errors import ParameterError

    try:
        from distributed import Client
    except ImportError as exc:
        raise ParameterError("--dask needs dask.distributed: pip install 'dcm[scale]'") from exc
    try:
        client = Client(address, timeout="20s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise ParameterError(f"--dask: cannot reach the scheduler at {address} ({exc})") from exc
    with client:
        yield client


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
@click.option(
    "--memory-limit",
    help="Memory for reading and counting, e.g. 2GB: sizes the chunks read at a time; "
    "stops with an error when the counts alone need more.",
)
@click.option(
    "--dask",
    "scheduler",
    metavar="ADDRESS",
    help="Count on a dask.distributed cluster (scheduler address, e.g. tcp://host:8786); "
    "needs the 'scale' extra (pip install 'dcm[scale]').",
)
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
    memory_limit: str | None,
    scheduler: str | None,
) -> None:
    """Compare event measurements with the baseline and write the results to OUT."""
    from dcm.compare import check_out_dir, compare_and_write

    out = Path(out_dir)
    check_out_dir(out, overwrite=overwrite)  # fail before the long work, not after
    quiet = bool((ctx.obj or {}).get("quiet"))
    if memory_limit is not None:
        from dcm.scan import parse_memory

        parse_memory(memory_limit)  # a bad size fails before the long work
    with progress_steps(quiet=quiet) as step, _dask_client(scheduler) as client:
        # The grid rows go to status.parquet as they are judged: never held whole.
        result, paths = compare_and_write(
            out,
            overwrite=overwrite,
            progress=step,
            cells=cells,
            baseline=baseline,
            event=event,
            window=window,
            resolution=resolution,
            population=population,
            areas=areas,
            hazard=hazard,
            at=at,
            memory_limit=memory_limit,
            client=client,
            status=step.tick,
        )
    if not quiet:
        print_summary(result, paths)
