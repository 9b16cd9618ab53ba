"""``dcm event``: create and list events in the store."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Any

import click

from dcm.errors import ParameterError


def operator() -> Any:
    """The principal of the local command line: an admin named after the OS user (whoever
    can run dcm against this data directory already holds the data)."""
    from dcm.store import Principal

    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        user = "unknown"
    return Principal(name=f"cli:{user}", role="admin")


def open_cli_store() -> Any:
    """The store named by the DCM_ settings (SQLite in the data directory by default)."""
    from dcm.settings import Settings
    from dcm.store import open_store

    return open_store(Settings())


def _area(value: str | None) -> dict[str, Any] | None:
    """A GeoJSON geometry from inline JSON or a file (Feature/FeatureCollection accepted)."""
    if value is None:
        return None
    text = value
    if not value.lstrip().startswith("{"):
        path = Path(value)
        if not path.is_file():
            raise ParameterError(f"--area: {value} is neither GeoJSON nor a file")
        text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParameterError(f"--area: not JSON ({exc})") from exc
    if data.get("type") == "FeatureCollection":
        import shapely

        geoms = [shapely.geometry.shape(f["geometry"]) for f in data.get("features", [])]
        if not geoms:
            raise ParameterError("--area: the FeatureCollection has no features")
        data = shapely.geometry.mapping(shapely.union_all(geoms))
    elif data.get("type") == "Feature":
        data = data["geometry"]
    return json.loads(json.dumps(data))


@click.group(name="event")
def command() -> None:
    """Create and list events (the unit data, results and alerts belong to)."""


@command.command(name="create")
@click.argument("name")
@click.option("--start", required=True, help="Event start (ISO 8601, UTC if no offset).")
@click.option("--end", default=None, help="Event end, if known.")
@click.option("--area", default=None, help="Affected area: GeoJSON text or file.")
@click.option("--description", default=None, help="Free text.")
@click.option("--window", default="1h", show_default=True, help="Analysis window length.")
def create(
    name: str, start: str, end: str | None, area: str | None, description: str | None, window: str
) -> None:
    """Create event NAME."""
    import pandas as pd

    try:
        start_ts = pd.Timestamp(start)
        end_ts = pd.Timestamp(end) if end else None
    except ValueError as exc:
        raise ParameterError(f"cannot read a time: {exc}") from exc
    with open_cli_store() as store:
        event = store.create_event(
            name,
            start=start_ts,
            end=end_ts,
            area=_area(area),
            description=description,
            window=window,
            principal=operator(),
        )
    click.echo(f"event {event.name} (id {event.id}) starts {event.start:%Y-%m-%dT%H:%MZ}")


@command.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_events(as_json: bool) -> None:
    """List events with their data high-water mark and dataset count."""
    with open_cli_store() as store:
        rows = []
        for event in store.list_events():
            datasets = store.list_datasets(event.id)
            rows.append(
                {
                    "name": event.name,
                    "id": event.id,
                    "start": event.start.isoformat(),
                    "end": event.end.isoformat() if event.end is not None else None,
                    "window": event.window,
                    "high_water": event.high_water.isoformat() if event.high_water else None,
                    "datasets": len(datasets),
                    "description": event.description,
                }
            )
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no events (create one with: dcm event create NAME --start TIME)")
    for row in rows:
        click.echo(
            f"{row['name']:<24} start {row['start'][:16]}  data until "
            f"{(row['high_water'] or '-')[:16]:<16}  {row['datasets']} dataset(s)"
        )
