"""Every reader of outside data: files in, normalised frames (``dcm.schema``) out."""

from dcm.ingest.cells import group_sites, read_cells
from dcm.ingest.measurements import read_measurements
from dcm.ingest.report import IngestReport, IngestResult, RejectedRow

__all__ = [
    "IngestReport",
    "IngestResult",
    "RejectedRow",
    "group_sites",
    "read_cells",
    "read_measurements",
]
