"""The live service over the store: what the CLI commands and the API endpoints call.

::

    from dcm import service
    outcome = service.ingest(store, "vincent", "hour.csv", kind="measurements",
                             principal=principal)        # idempotent by checksum and row id
    summary = service.update(store, "vincent", principal=principal)  # dirty windows only
    gaps = service.gap_report(store, "vincent")           # DataFrame, ranked by people

One module per concern: :mod:`~dcm.service.ingesting` (a file or frame as one dataset,
one unit of work), :mod:`~dcm.service.updating` (dirty windows, then alerts, one unit of
work), :mod:`~dcm.service.alerts` (the CAP lifecycle), :mod:`~dcm.service.gaps` (the gap
report), :mod:`~dcm.service.granting` (event grants to keys),
:mod:`~dcm.service.replay` (a file fed slice by slice) and
:mod:`~dcm.service.demo` (the St Vincent sample). The CLI (``dcm.cli``) parses options
and prints; the API (``dcm.api``) speaks HTTP; neither holds orchestration of its own.
Module names are verbs in -ing so that ``service.ingest`` and ``service.update`` stay the
functions.

Names are loaded on first use, so importing ``dcm.service`` (e.g. for ``dcm --help``)
costs nothing until a command runs.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

#: Public name -> submodule defining it.
_EXPORTS = {
    "IngestOutcome": "ingesting",
    "ingest": "ingesting",
    "ingest_frame": "ingesting",
    "ingest_upload": "ingesting",
    "received_limit": "ingesting",
    "touched_windows": "ingesting",
    "UpdateSummary": "updating",
    "coverage": "updating",
    "detection_params": "updating",
    "grid_devices": "updating",
    "update": "updating",
    "DEFAULT_SENDER": "alerts",
    "MATERIAL_CHANGE": "alerts",
    "alerts_geojson": "alerts",
    "cap_message": "alerts",
    "cap_severity": "alerts",
    "latest_alerts": "alerts",
    "refresh_alerts": "alerts",
    "GAP_COLUMNS": "gaps",
    "TREND_SHARE": "gaps",
    "gap_document": "gaps",
    "gap_history": "gaps",
    "gap_report": "gaps",
    "gap_window": "gaps",
    "GrantOutcome": "granting",
    "event_sources": "granting",
    "grant_event": "granting",
    "list_event_grants": "granting",
    "revoke_grant_by_id": "granting",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'dcm.service' has no attribute {name!r}")
    value = getattr(import_module(f"dcm.service.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
