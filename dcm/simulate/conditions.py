"""Conditions of a simulated disaster that real events show, as parameters.

A named scenario fixes the region, the hazard and its timing. :class:`Conditions`
changes how the disaster plays out on top of it: how many reports there are
(``density``), when the hazard strikes in the local day (``onset_hour``), how long
outages last, how late power fails, whether failures take down whole sites or
single sectors, how much they cluster where the hazard is strongest, and, with
``cells_from`` + ``bbox``, the real cell geometry of an OpenCelliD export. Every
field left at its default keeps the scenario exactly as it was.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from dcm.errors import ParameterError

#: Reachable baseline density (mean reports per site and hour).
DENSITY_RANGE = (0.03, 5.0)
#: Shortest outage (hours) and longest power delay (hours) accepted.
MIN_OUTAGE_H = 0.25
MAX_DELAY_H = 24.0 * 14
#: Largest clustering exponent accepted.
MAX_CLUSTERING = 10.0


def _pair(value: Any, name: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} must be two numbers (min, max), got {value!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ParameterError(f"{name} must be finite, got ({lo}, {hi})")
    if lo > hi:
        raise ParameterError(f"{name}: min {lo} is greater than max {hi}")
    return lo, hi


@dataclass(frozen=True, kw_only=True)
class Conditions:
    """How a scenario's disaster plays out; defaults keep the named scenario as it is.

    - ``density``: mean measurements per site-hour in the baseline (0.03-5); the
      event volume scales in proportion. ``None``: the scenario's own volume.
    - ``onset_hour``: local hour of day (0-24) at which the hazard strikes.
    - ``outage_hours``: (min, max) duration of outages in hours, log-uniform; a max
      at or beyond the event length leaves some sites down to the end.
    - ``power_delay_h``: (min, max) hours after the hazard arrives at which power
      failures start (batteries draining).
    - ``sector_share``: share of failures that take down one sector (its cells) of
      a site, not the whole site.
    - ``clustering``: > 1 concentrates failures where the hazard is strongest
      (failure chance ~ harm ** clustering, same expected number of failures).
    - ``cells_from``: path of an OpenCelliD export (csv or csv.gz); the cells inside
      ``bbox`` (lon_min, lat_min, lon_max, lat_max) become the scenario's network.
    """

    density: float | None = None
    onset_hour: float | None = None
    outage_hours: tuple[float, float] | None = None
    power_delay_h: tuple[float, float] | None = None
    sector_share: float = 0.0
    clustering: float = 1.0
    cells_from: str | None = None
    bbox: tuple[float, float, float, float] | None = None

    def __post_init__(self) -> None:
        lo, hi = DENSITY_RANGE
        if self.density is not None and not (lo <= float(self.density) <= hi):
            raise ParameterError(
                f"density must be between {lo} and {hi} reports per site-hour, got {self.density}"
            )
        if self.onset_hour is not None and not (0.0 <= float(self.onset_hour) <= 24.0):
            raise ParameterError(f"onset_hour must be between 0 and 24, got {self.onset_hour}")
        if self.outage_hours is not None:
            a, b = _pair(self.outage_hours, "outage_hours")
            if a < MIN_OUTAGE_H:
                raise ParameterError(f"outage_hours: min must be >= {MIN_OUTAGE_H} h, got {a}")
            object.__setattr__(self, "outage_hours", (a, b))
        if self.power_delay_h is not None:
            a, b = _pair(self.power_delay_h, "power_delay_h")
            if a < 0 or b > MAX_DELAY_H:
                raise ParameterError(
                    f"power_delay_h must be within 0..{MAX_DELAY_H:g} h, got ({a}, {b})"
                )
            object.__setattr__(self, "power_delay_h", (a, b))
        if not (0.0 <= float(self.sector_share) <= 1.0):
            raise ParameterError(f"sector_share must be between 0 and 1, got {self.sector_share}")
        if not (1.0 <= float(self.clustering) <= MAX_CLUSTERING):
            raise ParameterError(
                f"clustering must be between 1 and {MAX_CLUSTERING:g}, got {self.clustering}"
            )
        if self.bbox is not None:
            try:
                box = tuple(float(v) for v in self.bbox)
            except (TypeError, ValueError):
                raise ParameterError(f"bbox must be 4 numbers, got {self.bbox!r}") from None
            if len(box) != 4 or not all(math.isfinite(v) for v in box):
                raise ParameterError(f"bbox must be 4 finite numbers, got {self.bbox!r}")
            w, s, e, n = box
            if not (-180 <= w < e <= 180 and -90 <= s < n <= 90):
                raise ParameterError(
                    f"bbox must be lon_min,lat_min,lon_max,lat_max with min < max, got {box}"
                )
            object.__setattr__(self, "bbox", box)
        if (self.cells_from is None) != (self.bbox is None):
            raise ParameterError("cells_from and bbox go together: give both or neither")
        if self.cells_from is not None:
            object.__setattr__(self, "cells_from", str(self.cells_from))

    @property
    def is_default(self) -> bool:
        """True when every field is at its default (the named scenario unchanged)."""
        return self == Conditions()

    def as_dict(self) -> dict[str, Any]:
        """JSON-able fields (tuples as lists), for ``scenario.json``."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


__all__ = ["DENSITY_RANGE", "Conditions"]
