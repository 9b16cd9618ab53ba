"""``dcm update``: recompute the windows that new data touched."""

from __future__ import annotations

import click


@click.command(name="update")
@click.option("--event", "event", required=True, help="Event name or id.")
@click.option("--full", is_flag=True, help="Recompute every window, not only dirty ones.")
def command(event: str, full: bool) -> None:
    """Recompute the dirty windows of an event, track outages, issue CAP alerts."""
    from dcm import service
    from dcm.cli.event import open_cli_store, operator

    with open_cli_store() as store:
        summary = service.update(store, event, principal=operator(), full=full)
    if not summary.windows:
        issued = ", ".join(f"{n} {kind}" for kind, n in summary.alerts.items() if n)
        # Messages without recomputation: alerts a store written by an older version
        # missed (its update died between results and alerts).
        click.echo(
            f"{summary.event}: nothing to update" + (f"; CAP messages: {issued}" if issued else "")
        )
        return
    first, last = summary.windows[0], summary.windows[-1]
    alerts = ", ".join(f"{n} {kind}" for kind, n in summary.alerts.items() if n) or "none"
    click.echo(
        f"{summary.event}: {len(summary.windows)} window(s) {first:%Y-%m-%dT%H:%MZ} to "
        f"{last:%Y-%m-%dT%H:%MZ} recomputed in {summary.seconds:.2f} s (run {summary.run_id}); "
        f"{summary.outages} outage feature(s); CAP messages: {alerts}"
    )
