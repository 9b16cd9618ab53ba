"""``dcm keys``: API keys (stored hashed), roles, and grants of datasets or events."""

from __future__ import annotations

import json
from typing import Any

import click

from dcm.store.access import ROLES

_EVENT_HELP = "Event name or id: the key reads its datasets, later ones included."
_SOURCE_HELP = "Only datasets of this source (a file and its replay slices)."
_LICENCE_HELP = "Only datasets under this licence (e.g. CC-BY-4.0)."


@click.group(name="keys")
def command() -> None:
    """Create, list and revoke API keys; grant and revoke what they may read."""


@command.command(name="create")
@click.option("--name", required=True, help="Who the key is for (unique).")
@click.option("--role", type=click.Choice(ROLES), required=True, help="What the key may do.")
@click.option("--grant", "grants", multiple=True, type=int, help="Dataset id to grant (repeat).")
def create(name: str, role: str, grants: tuple[int, ...]) -> None:
    """Create a key; the clear key is printed once and never stored."""
    from dcm.cli.event import open_cli_store, operator

    with open_cli_store() as store:
        record, token = store.create_key(name, role=role, grants=grants, principal=operator())
    click.echo(token)
    click.echo(
        f"key {record.id} for {record.name} ({record.role}"
        + (f", datasets {sorted(record.grants)}" if record.grants else "")
        + "): store it now, it is not shown again",
        err=True,
    )


def _key_row(key: Any) -> dict[str, Any]:
    return {
        "id": key.id,
        "name": key.name,
        "role": key.role,
        "prefix": key.prefix,
        "grants": sorted(key.grants),
        "event_grants": [
            {"event": g.event, "source": g.source, "licence": g.licence} for g in key.event_grants
        ],
        "created_at": key.created_at.isoformat(),
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at is not None else None,
    }


@command.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_keys(as_json: bool) -> None:
    """List keys and their grants (prefix only: the keys themselves are not stored)."""
    from dcm.cli.event import open_cli_store

    with open_cli_store() as store:
        keys = store.list_keys()
    rows = [_key_row(k) for k in keys]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for key, row in zip(keys, rows, strict=True):
        state = "revoked" if row["revoked_at"] else "active"
        grants = ",".join(map(str, row["grants"])) or "-"
        click.echo(
            f"{row['id']:>4} {row['name']:<20} {row['role']:<8} {row['prefix']}…  "
            f"{state:<8} grants {grants}"
        )
        for grant in key.event_grants:
            click.echo(f"{'':>5}grant: {grant.describe()} (since {grant.created_at:%Y-%m-%d})")


def _rule_options(fn: Any) -> Any:
    fn = click.option("--licence", default=None, help=_LICENCE_HELP)(fn)
    fn = click.option("--source", default=None, help=_SOURCE_HELP)(fn)
    fn = click.option("--event", "event", default=None, help=_EVENT_HELP)(fn)
    return click.option("--dataset", "dataset", type=int, default=None, help="Dataset id.")(fn)


def _check_rule(
    event: str | None, dataset: int | None, source: str | None, licence: str | None
) -> None:
    if event is not None and dataset is not None:
        raise click.UsageError("give --event or --dataset, not both")
    if event is None and (source is not None or licence is not None):
        raise click.UsageError("--source and --licence need --event")


@command.command(name="grant")
@click.argument("key")
@_rule_options
def grant(
    key: str, dataset: int | None, event: str | None, source: str | None, licence: str | None
) -> None:
    """Let KEY (id or name) read an event's datasets, restricted ones included (only
    those of --source and/or --licence when given, datasets ingested later too), or
    one dataset (--dataset)."""
    from dcm.cli.event import open_cli_store, operator

    _check_rule(event, dataset, source, licence)
    if event is None and dataset is None:
        raise click.UsageError("give --event (optionally --source/--licence) or --dataset")
    with open_cli_store() as store:
        record = store.get_key(key)
        if dataset is not None:
            store.grant(record.id, dataset, principal=operator())
            click.echo(f"key {record.id} ({record.name}) may read dataset {dataset}")
            return
        assert event is not None
        from dcm import service

        outcome = service.grant_event(
            store, record.id, event, source=source, licence=licence, principal=operator()
        )
    rule, matching, sources = outcome.grant, outcome.datasets, outcome.sources
    shown = [*map(str, matching[:3]), "…", str(matching[-1])] if len(matching) > 5 else matching
    now = (
        f"{len(matching)} dataset(s) now: {', '.join(map(str, shown))}"
        if matching
        else "no dataset yet"
        + (f" (sources of the event: {', '.join(sources[:5])})" if sources else "")
    )
    verb = "may read" if outcome.new else "already may read"
    click.echo(
        f"key {record.id} ({record.name}) {verb} {rule.describe()}; "
        f"{now}; datasets ingested later too"
    )


@command.command(name="revoke")
@click.argument("key")
@_rule_options
def revoke(
    key: str, dataset: int | None, event: str | None, source: str | None, licence: str | None
) -> None:
    """Revoke KEY (id or name), or only one of its grants: --event with the same
    --source/--licence it was granted with, or --dataset."""
    from dcm.cli.event import open_cli_store, operator

    _check_rule(event, dataset, source, licence)
    with open_cli_store() as store:
        record = store.get_key(key)
        if dataset is not None:
            if dataset not in record.grants:
                from dcm.errors import NotFound

                raise NotFound(f"key {record.name!r} has no grant on dataset {dataset}")
            store.revoke_grant(record.id, dataset, principal=operator())
            click.echo(f"key {record.id} ({record.name}) no longer reads dataset {dataset}")
            return
        if event is not None:
            rule = store.revoke_event_grant(
                record.id, event, source=source, licence=licence, principal=operator()
            )
            click.echo(f"key {record.id} ({record.name}) no longer reads {rule.describe()}")
            return
        record = store.revoke_key(record.id, principal=operator())
    click.echo(f"key {record.id} ({record.name}) revoked")
