"""Alembic environment of the dcm store, run by :func:`dcm.store.migrations.migrate`.

dcm hands over its own :class:`~dcm.store._db.Database` (``config.attributes["db"]``)
inside an open transaction: every revision, and the ``alembic_version`` row, commits or
rolls back with it. No ``alembic.ini`` is read. On PostgreSQL the target metadata is the
PostGIS geometry of :mod:`dcm.store.postgis`, compared alone (its ``include_object``).
"""

from __future__ import annotations

from alembic import context

from dcm.store import postgis

db = context.config.attributes["db"]
if db.is_pg:
    context.configure(
        connection=db.connection,
        target_metadata=postgis.metadata,
        include_object=postgis.include_object,
        compare_type=True,
    )
else:
    context.configure(connection=db.connection, target_metadata=None)
with context.begin_transaction():  # joins dcm's transaction
    context.run_migrations()
