"""dcm.analysis: the outage detection method (pure functions, frames in, frames out).

``build_baseline`` once per event, then ``detect`` on any set of windows;
``track_outages`` keeps outage ids across windows. See docs/method.md.
"""

from __future__ import annotations

from dcm.analysis.baseline import Baseline, build_baseline
from dcm.analysis.detect import Detection, detect, event_windows
from dcm.analysis.grid import DEFAULT_RESOLUTION
from dcm.analysis.outages import track_outages
from dcm.analysis.params import DetectionParams

__all__ = [
    "DEFAULT_RESOLUTION",
    "Baseline",
    "Detection",
    "DetectionParams",
    "build_baseline",
    "detect",
    "event_windows",
    "track_outages",
]
