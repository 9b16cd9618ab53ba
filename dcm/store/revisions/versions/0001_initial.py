"""Events, datasets, measurements, cells, results, alerts, keys, audit (dcm store migration 1).

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from alembic import context

from dcm.store import migrations

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    migrations.apply_step(context.config.attributes["db"], 1)


def downgrade() -> None:
    raise NotImplementedError("dcm store migrations go forward only")
