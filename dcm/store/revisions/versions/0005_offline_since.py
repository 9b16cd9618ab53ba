"""Cell status offline_since (dcm store migration 5).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import context

from dcm.store import migrations

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    migrations.apply_step(context.config.attributes["db"], 5)


def downgrade() -> None:
    raise NotImplementedError("dcm store migrations go forward only")
