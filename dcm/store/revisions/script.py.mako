"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
"""

from __future__ import annotations

from alembic import context

from dcm.store import migrations

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = None
depends_on = None


def upgrade() -> None:
    migrations.apply_step(context.config.attributes["db"], ${int(up_revision)})


def downgrade() -> None:
    raise NotImplementedError("dcm store migrations go forward only")
