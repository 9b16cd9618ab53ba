"""Named crash points for fault-injection tests of the store's units of work.

Each commit point of an ingest, update or replay calls :func:`fault_point` with its name.
When the environment variable ``DCM_FAULT_POINT`` names that point, the process kills
itself with SIGKILL there, as a power cut or ``kill -9`` would: no ``finally`` block, no
rollback by Python, no buffered output. ``DCM_FAULT_POINT=name@N`` stops at the N-th time
the point is reached (e.g. the third replay slice). Unset, a call costs one dictionary
lookup.

Points (in the order a command reaches them): ``migrate.step_applied`` (after each
migration step, inside the upgrade's one transaction; ``@N`` for the N-th step of an
upgrade), ``raw.tmp_written``, ``ingest.raw_kept``,
``ingest.dataset_recorded``, ``ingest.rows_inserted`` (after each batch of rows of a
dataset), ``ingest.windows_marked``,
``ingest.committed``; ``update.run_started``, ``update.results_saved``,
``update.alerts_written``, ``update.committed``; ``replay.slice_ingested``,
``replay.slice_updated``.
"""

from __future__ import annotations

import os
import signal

#: Environment variable naming the point to stop at (``name`` or ``name@N``).
FAULT_ENV = "DCM_FAULT_POINT"
#: Signal sent there: ``KILL`` (default) or e.g. ``INT`` (as Ctrl-C).
SIGNAL_ENV = "DCM_FAULT_SIGNAL"

FAULT_POINTS = (
    "raw.tmp_written",
    "ingest.raw_kept",
    "ingest.dataset_recorded",
    "ingest.rows_inserted",
    "ingest.windows_marked",
    "ingest.committed",
    "update.run_started",
    "update.results_saved",
    "update.alerts_written",
    "update.committed",
    "replay.slice_ingested",
    "replay.slice_updated",
)

#: Points of a store upgrade (:func:`dcm.store.migrations.migrate`), tested apart.
MIGRATION_POINTS = ("migrate.step_applied",)

_hits: dict[str, int] = {}


def fault_point(name: str) -> None:
    """Kill this process with SIGKILL (or the signal of ``DCM_FAULT_SIGNAL``) if
    ``DCM_FAULT_POINT`` names ``name`` (and this is the N-th time it is reached for
    ``name@N``)."""
    wanted = os.environ.get(FAULT_ENV)
    if not wanted:
        return
    point, _, nth = wanted.partition("@")
    if point != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] == (int(nth) if nth else 1):
        sig = getattr(signal, f"SIG{os.environ.get(SIGNAL_ENV, 'KILL').upper()}")
        os.kill(os.getpid(), sig)
