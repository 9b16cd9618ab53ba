"""Persistence for dcm's live service: SQLite by default, PostgreSQL + PostGIS on request.

::

    from dcm.store import open_store, Principal

    with open_store(settings) as store:            # migrates on open
        principal = store.authenticate(api_key)    # or Principal.anonymous()
        page = store.features("outages", "vincent-2021", bbox=(-61.3, 13.1, -61.1, 13.4),
                              limit=10, offset=0, principal=principal)
        page.features, page.number_matched

Orchestration (ingest a file, incremental update, alerts, gap report) lives in
:mod:`dcm.service`; this package only keeps and queries rows.
"""

from dcm.store.access import ROLES, Principal
from dcm.store.core import BBox, Interval, Store, open_store
from dcm.store.models import (
    COLLECTION_KINDS,
    DATASET_KINDS,
    MSG_TYPES,
    VISIBILITIES,
    AlertMessage,
    ApiKey,
    AuditEntry,
    Dataset,
    Event,
    EventGrant,
    FeaturePage,
    Run,
)

__all__ = [
    "COLLECTION_KINDS",
    "DATASET_KINDS",
    "MSG_TYPES",
    "ROLES",
    "VISIBILITIES",
    "AlertMessage",
    "ApiKey",
    "AuditEntry",
    "BBox",
    "Dataset",
    "Event",
    "EventGrant",
    "FeaturePage",
    "Interval",
    "Principal",
    "Run",
    "Store",
    "open_store",
]
