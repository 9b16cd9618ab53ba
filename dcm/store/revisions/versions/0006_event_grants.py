"""Event grants by source and licence (dcm store migration 6).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from alembic import context

from dcm.store import migrations

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    migrations.apply_step(context.config.attributes["db"], 6)


def downgrade() -> None:
    raise NotImplementedError("dcm store migrations go forward only")
