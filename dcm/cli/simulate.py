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
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
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
    """Generate scenario NAME (cells, measurements, population, areas, hazard, truth)."""
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
