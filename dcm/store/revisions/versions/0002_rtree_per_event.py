"""Measurement R*Trees per event and visibility (dcm store migration 2).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import context

from dcm.store import migrations

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    migrations.apply_step(context.config.attributes["db"], 2)


def downgrade() -> None:
    raise NotImplementedError("dcm store migrations go forward only")
