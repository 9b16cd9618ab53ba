"""``dcm simulate``: generate a disaster scenario with ground truth."""

from __future__ import annotations

from pathlib import Path

import click

from dcm.simulate.scenarios import SCENARIOS


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
@click.pass_context
def command(
    ctx: click.Context, name: str, seed: int, scale: float, out_dir: Path, overwrite: bool
) -> None:
    """Generate a disaster scenario with ground truth, in the formats real data comes in.

    Writes cells (OpenCelliD export), baseline and event measurements (canonical
    CSV, with duplicate and malformed rows), a population GeoTIFF, admin areas,
    the hazard footprint and the truth (sites and cells down/up, served grid).
    quake, cyclone, eruption and control are on a synthetic island; stvincent is
    modelled on the La Soufrière eruption of April 2021; the control scenarios
    have no disaster.
    """
    from dcm.simulate import simulate, write_scenario

    scenario = simulate(name, seed=seed, scale=scale)
    paths = write_scenario(scenario, out_dir, overwrite=overwrite)
    quiet = bool(ctx.obj and ctx.obj.get("quiet"))
    if not quiet:
        counts = scenario.truth.meta["counts"]
        click.echo(
            f"{name} (seed {seed}): {counts['baseline']} baseline and {counts['event']} "
            f"event measurements, {counts['sites']} sites, {counts['sites_down']} down; "
            f"{len(paths)} files in {out_dir}"
        )
