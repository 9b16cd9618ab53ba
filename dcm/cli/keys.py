"""``dcm keys``: API keys (stored hashed), roles and dataset grants."""

from __future__ import annotations

import json

import click

from dcm.store.access import ROLES


@click.group(name="keys")
def command() -> None:
    """Create, list and revoke API keys."""


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


@command.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_keys(as_json: bool) -> None:
    """List keys (prefix only: the keys themselves are not stored)."""
    from dcm.cli.event import open_cli_store

    with open_cli_store() as store:
        keys = store.list_keys()
    rows = [
        {
            "id": k.id,
            "name": k.name,
            "role": k.role,
            "prefix": k.prefix,
            "grants": sorted(k.grants),
            "created_at": k.created_at.isoformat(),
            "revoked_at": k.revoked_at.isoformat() if k.revoked_at is not None else None,
        }
        for k in keys
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        state = "revoked" if row["revoked_at"] else "active"
        grants = ",".join(map(str, row["grants"])) or "-"
        click.echo(
            f"{row['id']:>4} {row['name']:<20} {row['role']:<8} {row['prefix']}…  "
            f"{state:<8} grants {grants}"
        )


@command.command(name="revoke")
@click.argument("key")
def revoke(key: str) -> None:
    """Revoke KEY (id or name)."""
    from dcm.cli.event import open_cli_store, operator

    with open_cli_store() as store:
        record = store.revoke_key(key, principal=operator())
    click.echo(f"key {record.id} ({record.name}) revoked")
