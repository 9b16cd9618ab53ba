"""``dcm validate``: read a measurement or cell file and report what would be rejected."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from dcm.errors import IngestError, ParameterError

if TYPE_CHECKING:
    from rich.console import Console

    from dcm.ingest import IngestReport

KIND_CHOICES = ("auto", "measurements", "cells", "gnettrack", "towercollector")

#: Files larger than this get a read progress bar (bytes).
PROGRESS_MIN_BYTES = 8 * 1024 * 1024


@click.command(name="validate")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--kind",
    type=click.Choice(KIND_CHOICES),
    default="auto",
    show_default=True,
    help="What the file holds; auto looks at its first line.",
)
@click.option(
    "--rejected",
    "rejected_out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the rejected rows here as CSV (line,field,reason,raw).",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing --rejected file.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@click.option(
    "--timezone",
    help="Time zone of G-NetTrack logs (phone local time), e.g. Pacific/Guam or +10:00.",
)
@click.option(
    "--show",
    type=click.IntRange(min=0),
    default=20,
    show_default=True,
    help="How many rejected rows to list (the --rejected file has all of them).",
)
@click.pass_context
def command(
    ctx: click.Context,
    file: Path,
    kind: str,
    rejected_out: Path | None,
    overwrite: bool,
    as_json: bool,
    timezone: str | None,
    show: int,
) -> None:
    """Check FILE and report accepted, rejected (line, field, reason) and duplicate rows;
    for a cell export also the number of sites and the largest site's cells and width.

    Exits 0 when the file could be read, even with rejected rows; a file that cannot be
    read at all is a one-line error and exit code 2.
    """
    from rich.console import Console
    from rich.markup import escape

    from dcm import ingest

    if rejected_out is not None and rejected_out.exists() and not overwrite:
        raise ParameterError(f"{rejected_out} exists; use --overwrite to replace it")
    quiet = bool(ctx.obj and ctx.obj.get("quiet"))
    err = Console(stderr=True, quiet=quiet or as_json)
    if kind == "auto":
        kind = ingest.sniff_kind(file)
    data = _read_with_progress(file, err)
    reader = ingest.READERS[kind]
    options: dict[str, object] = {"name": str(file)}
    if kind == "gnettrack":
        options["timezone"] = timezone
    with err.status(f"Checking {escape(file.name)} as {kind} …"):
        result = reader(io.BytesIO(data), **options)  # type: ignore[operator]
    report = result.report
    if rejected_out is not None:
        report.write_rejected(rejected_out)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
        return
    if not quiet:
        _print_report(report, Console(), show=show, rejected_out=rejected_out)


def _read_with_progress(path: Path, console: Console) -> bytes:
    """The file's bytes; a progress bar on stderr for large files."""
    from rich.markup import escape
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    if not path.exists():
        raise IngestError("file not found", path=str(path))
    size = path.stat().st_size
    if size < PROGRESS_MIN_BYTES:
        return path.read_bytes()
    chunks = []
    with (
        Progress(
            TextColumn("Reading {task.description}"),
            BarColumn(),
            DownloadColumn(),
            console=console,
            transient=True,
        ) as progress,
        path.open("rb") as fh,
    ):
        task = progress.add_task(escape(path.name), total=size)
        while chunk := fh.read(1 << 22):
            chunks.append(chunk)
            progress.advance(task, len(chunk))
    return b"".join(chunks)


def _print_report(
    report: IngestReport, console: Console, *, show: int, rejected_out: Path | None
) -> None:
    from rich.markup import escape
    from rich.table import Table

    console.print(f"[bold]{escape(report.path)}[/bold] ({report.kind})", highlight=False)
    counts = Table(show_header=False)
    counts.add_row("rows in", f"{report.rows_in:,}")
    counts.add_row("accepted", f"{report.accepted:,}")
    counts.add_row("rejected", f"{len(report.rejected):,}")
    counts.add_row("duplicates", f"{report.duplicates:,}")
    console.print(counts)
    console.print(
        f"rows in = accepted + rejected + duplicates: {report.rows_in:,} = "
        f"{report.accepted:,} + {len(report.rejected):,} + {report.duplicates:,}"
    )
    if (sites := report.sites_line()) is not None:
        console.print(sites, highlight=False)
    if not report.rejected:
        return
    reasons = Table("rejected", "field: reason", title="Reasons")
    for key, n in report.reasons().items():
        reasons.add_row(f"{n:,}", escape(key))
    console.print(reasons)
    if show:
        rows = Table("line", "field", "reason", title=f"First {min(show, len(report.rejected))}")
        for row in report.rejected[:show]:
            rows.add_row(str(row.line), escape(row.field), escape(row.reason))
        console.print(rows)
    if rejected_out is not None:
        console.print(
            f"All {len(report.rejected):,} rejected rows are in {escape(str(rejected_out))}"
        )
