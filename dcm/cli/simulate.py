"""``dcm simulate``: generate a disaster scenario with ground truth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from dcm.errors import ParameterError
from dcm.simulate.scenarios import SCENARIOS


def _numbers(text: str | None, option: str, count: int) -> Any:
    """``count`` comma-separated numbers of an option as a tuple (None when not given)."""
    if text is None:
        return None
    parts = text.split(",")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != count or len(parts) != count:
        raise ParameterError(f"{option} takes {count} comma-separated numbers, got {text!r}")
    return values


@click.command(name="simulate")
@click.option(
    "--scenario",
    "name",
    type=click.Choice(SCENARIOS),
    default="stvincent",
    show_default=True,
    help="Which scenario to generate.",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Random seed; the same seed gives the same files.",
)
@click.option(
    "--scale",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="Multiplies the number of measurements.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder to write the scenario into.",
)
@click.option("--overwrite", is_flag=True, help="Replace the files of an existing folder.")
@click.option(
    "--density",
    type=float,
    default=None,
    help="Baseline reports per site-hour (0.03-5); the event volume follows. "
    "Default: the scenario's own volume.",
)
@click.option(
    "--onset-hour", type=float, default=None, help="Local hour of day (0-24) of the onset."
)
@click.option(
    "--outage-hours",
    metavar="MIN,MAX",
    default=None,
    help="Outage durations in hours, log-uniform (MAX >= the event length: never restored).",
)
@click.option(
    "--power-delay-h",
    metavar="MIN,MAX",
    default=None,
    help="Hours after the hazard arrives at which power failures start.",
)
@click.option(
    "--sector-share",
    type=float,
    default=0.0,
    show_default=True,
    help="Share of failures that take down one sector, not the whole site.",
)
@click.option(
    "--clustering",
    type=float,
    default=1.0,
    show_default=True,
    help="Above 1, failures concentrate where the hazard is strongest.",
)
@click.option(
    "--cells-from",
    metavar="PATH",
    default=None,
    help="OpenCelliD export (csv/csv.gz) whose cells inside --bbox become the network.",
)
@click.option(
    "--bbox",
    metavar="W,S,E,N",
    default=None,
    help="Region cut from --cells-from: lon_min,lat_min,lon_max,lat_max.",
)
@click.pass_context
def command(
    ctx: click.Context,
    name: str,
    seed: int,
    scale: float,
    out_dir: Path,
    overwrite: bool,
    density: float | None,
    onset_hour: float | None,
    outage_hours: str | None,
    power_delay_h: str | None,
    sector_share: float,
    clustering: float,
    cells_from: str | None,
    bbox: str | None,
) -> None:
    """Generate a disaster scenario with ground truth, in the formats real data comes in.

    Writes cells (OpenCelliD export), baseline and event measurements (canonical
    CSV, with duplicate and malformed rows), a population GeoTIFF, admin areas,
    the hazard footprint and the truth (sites and cells down/up, served grid).
    quake, cyclone, eruption and control are on a synthetic island; stvincent is
    modelled on the La Soufrière eruption of April 2021; the control scenarios
    have no disaster. The condition options (--density ... --bbox) change how the
    disaster plays out; without them the scenario is unchanged. With --cells-from
    and --bbox, quake, cyclone, eruption and control run on real cells.
    """
    from dcm.simulate import Conditions, simulate, write_scenario

    conditions = Conditions(
        density=density,
        onset_hour=onset_hour,
        outage_hours=_numbers(outage_hours, "--outage-hours", 2),
        power_delay_h=_numbers(power_delay_h, "--power-delay-h", 2),
        sector_share=sector_share,
        clustering=clustering,
        cells_from=cells_from,
        bbox=_numbers(bbox, "--bbox", 4),
    )
    scenario = simulate(name, seed=seed, scale=scale, conditions=conditions)
    paths = write_scenario(scenario, out_dir, overwrite=overwrite)
    quiet = bool(ctx.obj and ctx.obj.get("quiet"))
    if not quiet:
        counts = scenario.truth.meta["counts"]
        click.echo(
            f"{name} (seed {seed}): {counts['baseline']} baseline and {counts['event']} "
            f"event measurements, {counts['sites']} sites, {counts['sites_down']} down; "
            f"{len(paths)} files in {out_dir}"
        )
