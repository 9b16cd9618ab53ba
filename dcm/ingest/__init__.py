"""Every reader of outside data: files in, normalised frames (``dcm.schema``) out.

Row readers (:func:`read_measurements`, :func:`read_cells`, :func:`read_gnettrack`,
:func:`read_towercollector`) return an :class:`IngestResult`: the frame plus an
:class:`IngestReport` in which every rejected row has its line, field and reason, and
``rows_in == accepted + rejected + duplicates``. A file that cannot be read at all raises
:class:`dcm.errors.IngestError`. Layer readers return frames directly.
"""

from dcm.ingest._fields import DEFAULT_DEVICE_SECRET, hash_devices
from dcm.ingest.apps import read_gnettrack, read_towercollector
from dcm.ingest.cells import group_sites, read_cells
from dcm.ingest.geo import read_areas, read_hazard, read_ookla_tiles, read_population
from dcm.ingest.measurements import read_measurements
from dcm.ingest.report import IngestReport, IngestResult, RejectedRow
from dcm.ingest.sniff import KINDS, sniff_kind

READERS = {
    "measurements": read_measurements,
    "cells": read_cells,
    "gnettrack": read_gnettrack,
    "towercollector": read_towercollector,
}

__all__ = [
    "DEFAULT_DEVICE_SECRET",
    "KINDS",
    "READERS",
    "IngestReport",
    "IngestResult",
    "RejectedRow",
    "group_sites",
    "hash_devices",
    "read_areas",
    "read_cells",
    "read_gnettrack",
    "read_hazard",
    "read_measurements",
    "read_ookla_tiles",
    "read_population",
    "read_towercollector",
    "sniff_kind",
]
