"""What a reader returns: the normalised frame plus a report of what it kept and why not."""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

#: Characters of a rejected row's raw text kept in reports: enough to find the row, and
#: a huge row (one 300 MB line) is not echoed back whole.
RAW_ECHO_CHARS = 200


@dataclass
class RejectedRow:
    """One input row that was not accepted.

    ``line`` is the 1-based physical line in the file where the row starts (the header is
    line 1); for Parquet it is the 1-based row number and for GeoJSON the 1-based feature
    number. ``field`` names the first field that failed (``"row"`` for structural problems).
    ``raw`` is the row's text, cut to :data:`RAW_ECHO_CHARS` characters plus "…".
    """

    line: int
    field: str
    reason: str
    raw: str

    def __post_init__(self) -> None:
        if len(self.raw) > RAW_ECHO_CHARS:
            self.raw = self.raw[:RAW_ECHO_CHARS] + "…"


@dataclass
class IngestReport:
    """Counts of one read: ``rows_in == accepted + len(rejected) + duplicates``, always."""

    path: str
    kind: str
    rows_in: int
    accepted: int
    duplicates: int
    rejected: list[RejectedRow] = field(default_factory=list)
    #: Cell exports only: number of sites, and the site with the most cells (its cell
    #: count and diameter in metres, the greatest distance between two of its cells).
    sites: int | None = None
    largest_site_cells: int | None = None
    largest_site_diameter_m: float | None = None

    def __post_init__(self) -> None:
        balance = self.accepted + len(self.rejected) + self.duplicates
        if balance != self.rows_in:  # a bug in a reader, never a user error
            raise AssertionError(
                f"{self.path}: rows in {self.rows_in} != accepted {self.accepted} + "
                f"rejected {len(self.rejected)} + duplicates {self.duplicates}"
            )

    @property
    def rejected_count(self) -> int:
        return len(self.rejected)

    def reasons(self) -> dict[str, int]:
        """Rejected rows counted per ``field: reason`` (most frequent first)."""
        counts: dict[str, int] = {}
        for row in self.rejected:
            key = f"{row.field}: {row.reason}"
            counts[key] = counts.get(key, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: -kv[1]))

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dict, including every rejected row."""
        out: dict[str, object] = {
            "path": self.path,
            "kind": self.kind,
            "rows_in": self.rows_in,
            "accepted": self.accepted,
            "rejected": len(self.rejected),
            "duplicates": self.duplicates,
            "balanced": self.rows_in == self.accepted + len(self.rejected) + self.duplicates,
        }
        if self.sites is not None:
            out["sites"] = self.sites
            out["largest_site_cells"] = self.largest_site_cells
            out["largest_site_diameter_m"] = self.largest_site_diameter_m
        out["rejected_rows"] = [asdict(r) for r in self.rejected]
        return out

    def sites_line(self) -> str | None:
        """``"N sites; largest: K cells, D m across"`` for cell exports, else None."""
        if self.sites is None:
            return None
        if not self.sites:
            return "0 sites"
        return (
            f"{self.sites:,} sites; largest: {self.largest_site_cells:,} cells, "
            f"{self.largest_site_diameter_m:,.0f} m across"
        )

    def summary(self) -> str:
        """Human text: counts, the balance equation, and the most common reasons."""
        lines = [
            f"{self.path} ({self.kind})",
            f"rows in = accepted + rejected + duplicates: "
            f"{self.rows_in} = {self.accepted} + {len(self.rejected)} + {self.duplicates}",
        ]
        if (sites := self.sites_line()) is not None:
            lines.append(sites)
        for key, n in list(self.reasons().items())[:10]:
            lines.append(f"  {n} rejected: {key}")
        return "\n".join(lines)

    def write_rejected(self, path: str | Path) -> None:
        """Write the rejected rows as CSV with columns ``line,field,reason,raw``."""
        with Path(path).open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["line", "field", "reason", "raw"])
            writer.writerows((r.line, r.field, r.reason, r.raw) for r in self.rejected)


@dataclass
class IngestResult:
    """A normalised frame (schema contract of the reader) and its ingest report."""

    frame: pd.DataFrame
    report: IngestReport
