"""``dcm demo``: the comparison on the bundled St Vincent sample scenario
(:mod:`dcm.service.demo` does the work; this module prints)."""

from __future__ import annotations

from pathlib import Path

import click

from dcm.service.demo import sample_dir, timeline_lines

__all__ = ["command", "sample_dir", "timeline_lines"]


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
    from dcm.service import demo

    sample_dir()  # NotFound before any progress output
    quiet = bool((ctx.obj or {}).get("quiet"))
    with progress_steps(quiet=quiet) as step:
        folder, result, paths = demo.run(out_dir, progress=step)
    click.echo(f"St Vincent sample ({folder})")
    print_summary(result, paths)
    for line in timeline_lines(result):
        click.echo(line)
    click.echo(
        f"open the map: {Path(paths['map']).resolve()}"
        if "map" in paths
        else "map.html was not written (map renderer unavailable)"
    )
