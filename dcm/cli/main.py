"""Entry point of the ``dcm`` command.

Subcommands live in their own modules (``dcm/cli/<name>.py``, each exposing a
click command called ``command``) and are imported only when invoked, so
``dcm --help`` stays fast. Deliberate dcm errors become one line on stderr and a
non-zero exit code; tracebacks are shown only with ``-v -v``.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

import click

from dcm import __version__
from dcm.errors import DCMError, NotFound, PermissionDenied, StoreBusy

#: command name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "simulate": ("dcm.cli.simulate", "Generate a disaster scenario with ground truth."),
    "validate": ("dcm.cli.validate", "Check a measurement or cell file and report bad rows."),
    "convert": ("dcm.cli.convert", "Convert measurement files to a partitioned Parquet dataset."),
    "compare": ("dcm.cli.compare", "Compare event measurements with the baseline."),
    "demo": ("dcm.cli.demo", "Run the comparison on the bundled St Vincent sample."),
    "event": ("dcm.cli.event", "Create and list events in the store."),
    "ingest": ("dcm.cli.ingest", "Load a file into an event in the store."),
    "update": ("dcm.cli.update", "Recompute the windows that new data touched."),
    "replay": ("dcm.cli.replay", "Feed a measurement file into an event hour by hour."),
    "report": ("dcm.cli.report", "Write the gap report for planners (HTML or PDF)."),
    "serve": ("dcm.cli.serve", "Run the API and web map."),
    "keys": ("dcm.cli.keys", "Manage API keys and dataset grants."),
}

EXIT_USER_ERROR = 2
EXIT_NOT_FOUND = 3
EXIT_DENIED = 4
#: sysexits' EX_TEMPFAIL: the store was busy; the same command later should succeed.
EXIT_BUSY = 75


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name, (module, _) in COMMANDS.items() if _available(module))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None or not _available(entry[0]):
            return None
        module = importlib.import_module(entry[0])
        command: click.Command = module.command
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dcm")
@click.option("-v", "--verbose", count=True, help="More output (-vv shows tracebacks).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool) -> None:
    """dcm, the Disaster Connectivity Mapper: where mobile service was lost, and since when."""
    level = (
        logging.ERROR
        if quiet
        else (logging.DEBUG if verbose >= 2 else logging.INFO if verbose == 1 else logging.WARNING)
    )
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    ctx.obj = {"verbose": verbose, "quiet": quiet}


def main(argv: list[str] | None = None) -> Any:
    """Run the CLI, turning deliberate errors into one line and an exit code."""
    verbose = sum(a.count("v") for a in (argv or sys.argv[1:]) if a.startswith("-v"))
    try:
        return cli.main(args=argv, prog_name="dcm", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except DCMError as exc:
        if verbose >= 2:
            raise
        click.echo(f"dcm: error: {exc}", err=True)
        code = (
            EXIT_NOT_FOUND
            if isinstance(exc, NotFound)
            else EXIT_DENIED
            if isinstance(exc, PermissionDenied)
            else EXIT_BUSY
            if isinstance(exc, StoreBusy)
            else EXIT_USER_ERROR
        )
        sys.exit(code)
    except OSError as exc:
        # A missing file, a full disk, a file-size limit: one line, no traceback.
        if verbose >= 2:
            raise
        click.echo(f"dcm: error: {_os_error(exc)}", err=True)
        sys.exit(EXIT_USER_ERROR)


def _os_error(exc: OSError) -> str:
    import errno

    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        reason = f"{reason}: the disk (or this process's file-size limit) is full, nothing was kept"
    return f"{exc.filename}: {reason}" if exc.filename else reason


if __name__ == "__main__":  # pragma: no cover
    main()
