"""Dirty marks per event window (dcm store migration 4).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import context

from dcm.store import migrations

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    migrations.apply_step(context.config.attributes["db"], 4)


def downgrade() -> None:
    raise NotImplementedError("dcm store migrations go forward only")
