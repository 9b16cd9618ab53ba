"""Outage tier and certainty, cell status silence_h_needed (dcm store migration 3).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import context

from dcm.store import migrations

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    migrations.apply_step(context.config.attributes["db"], 3)


def downgrade() -> None:
    raise NotImplementedError("dcm store migrations go forward only")
