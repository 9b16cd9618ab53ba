"""Alembic environment of the dcm store, run by :func:`dcm.store.migrations.migrate`.

dcm hands over its own :class:`~dcm.store._db.Database` (``config.attributes["db"]``)
inside an open transaction: every revision, and the ``alembic_version`` row, commits or
rolls back with it. No ``alembic.ini`` is read.
"""

from __future__ import annotations

from alembic import context

db = context.config.attributes["db"]
context.configure(connection=db.connection, target_metadata=None)
with context.begin_transaction():  # joins dcm's transaction
    context.run_migrations()
