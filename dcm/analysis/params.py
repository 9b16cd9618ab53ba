"""Detection parameters (one frozen dataclass, every default explained in docs/method.md)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import pandas as pd

from dcm.analysis.grid import DEFAULT_RESOLUTION, check_resolution
from dcm.errors import ParameterError


@dataclass(frozen=True, kw_only=True)
class DetectionParams:
    """All knobs of the method. Times are pandas offset strings ("1h", "12h")."""

    #: H3 resolution of the grid.
    resolution: int = DEFAULT_RESOLUTION
    #: Length of one time window.
    window: str = "1h"
    #: Trailing span over which evidence accumulates (reset by an ok report).
    span: str = "24h"
    #: Prior probability that a (grid cell, network) is down in a window.
    prior_down: float = 0.001
    #: Learn the event's failure rate from the evidence (empirical Bayes per window and
    #: hazard level); ``prior_down`` is then the calm-week rate it is shrunk towards.
    learn_prior: bool = True
    #: Weight (pseudo-sites) of ``prior_down`` in the learned overall rate.
    prior_strength: float = 200.0
    #: Weight (pseudo-sites) of the overall rate in each hazard level's rate.
    prior_group_strength: float = 20.0
    #: Sites within this distance (m) of a confirmed failure form their own group of
    #: the learned rate (0: no such grouping).
    prior_near_m: float = 3000.0
    #: The learned rate never exceeds this.
    prior_max: float = 0.5
    #: Bound the learned rate from below by the share of sites silent over this span
    #: beyond what working sites' silence explains ("" or "0": off; docs/method.md).
    prior_silence_span: str = "6h"
    #: ... less this many standard errors of that share (a calm week stays at 0).
    prior_silence_z: float = 2.5
    #: ... with working sites' chance of silence known only to within this share.
    prior_silence_error: float = 0.0
    #: ... counting only sites whose area kept at least this share of its usual activity
    #: over the span (other networks' reports there): an evacuated place is silent
    #: with its sites up.
    prior_silence_activity: float = 0.6
    #: Posterior probability at or above which an outage is shown as ``suspected``
    #: (below ``p_down``, where it is ``confirmed``).
    p_suspect: float = 0.5
    #: Posterior probability at or above which a grid cell is ``down``.
    p_down: float = 0.9
    #: Posterior probability at or below which a grid cell with evidence is ``up``.
    p_up: float = 0.2
    #: Below this expected count (and without any report) a grid cell is ``no_data``.
    min_expected: float = 1.0
    #: Shape k of the gamma prior on local activity (smaller = activity varies more).
    dispersion: float = 2.0
    #: Probability that an ok report is seen from a place whose network is down
    #: (mixed hexes at an outage edge, clock errors).
    ok_when_down: float = 0.02
    #: An ok report in a grid cell says it is served for this long.
    ok_memory: str = "3h"
    #: A site that carried at least this share of a grid cell's baseline sightings can
    #: serve it (the grid cell is down only when all such sites are down).
    server_min_share: float = 0.2
    #: Beta prior pseudo-count on each side of a site's share of a grid cell's sightings,
    #: when ok reports there name other sites (a share seen on few reports is uncertain).
    takeover_prior: float = 0.5
    #: Takeover evidence counts at most this many ok reports naming other sites per
    #: grid cell and window: reports of one place in one window mostly come from one
    #: phone, and one phone camped on a neighbour says little about the site.
    takeover_per_window: float = 1.0
    #: Takeover evidence from reports with a device id weighs each phone by its own
    #: baseline habit in the grid cell (see ``_device_takeover``). Off: it clears the
    #: calm weeks of the real Portoviejo cells but costs the St Vincent sample a sixth
    #: of its recall (docs/method.md, Tried).
    takeover_by_device: bool = False
    #: Judge each cell of a site with two or more cells heard in the baseline also on
    #: its own: silent against its own rate while other cells of its site are heard
    #: (a sector down on a mast that stands). Off: a cell shares its site's fate.
    sector_evidence: bool = True
    #: Weight (pseudo-sightings) of the site's share of a grid cell in a phone's habit.
    habit_prior: float = 1.0
    #: Upper bound of the gamma shape of hour-to-hour variation of site sightings (the
    #: baseline estimate is used when smaller): guards against Poisson overconfidence.
    site_dispersion_max: float = 5.0
    #: Share of a network's reports that are no_service/failed while it is down.
    fail_share_down: float = 0.5
    #: Floor and prior weight (pseudo-reports) of the baseline failure share.
    fail_share_floor: float = 0.01
    fail_share_weight: float = 10.0
    #: Shape of the negative binomial of failure reports while the network is up:
    #: they come in bursts from a few phones (inf: Poisson).
    fail_dispersion: float = 1.0
    #: At most this many failure reports count per span (one stuck phone is not ten).
    max_fail_reports: int = 8
    #: Weight of the mean neighbour log-likelihood ratio (spatial support).
    neighbour_weight: float = 0.5
    #: Neighbour log-likelihood ratios are clipped to +/- this before averaging.
    neighbour_clip: float = 6.0
    #: Span over which the event-period measurement volume is estimated.
    volume_span: str = "24h"
    #: Only places expecting at least this many reports in the volume span count.
    volume_min_expected: float = 5.0
    #: Cell status thresholds on the posterior (before the calibration below); 0.67 is
    #: where the reported p_offline reaches 0.5 with the default calibration.
    cell_offline_p: float = 0.67
    cell_online_p: float = 0.2
    #: Calibration of the reported cell p_offline (Platt scaling, fitted on tuning
    #: seeds only): logit p' = shift + slope × logit p. The posterior treats reports as
    #: independent and so is overconfident between 0.2 and 0.99; statuses are decided
    #: on the posterior, the reported p_offline is calibrated (docs/method.md).
    calibration_shift: float = -0.35
    calibration_slope: float = 0.5
    #: Clip of OpenCelliD ranges (m) for cells never heard in the baseline.
    cell_range_min_m: float = 500.0
    cell_range_max_m: float = 2500.0
    #: An outage missing for up to this long keeps its id when it comes back.
    track_gap: str = "3h"
    #: Outage components smaller than this many grid cells are dropped (grid-cell
    #: outages, drawn where no site coverage is known).
    min_outage_cells: int = 2
    #: Coverage outages: a site still counts as serving where it reaches while its
    #: p_offline is below this (undecided sites between this and ``p_down`` neither
    #: make nor block an outage).
    coverage_block_p: float = 0.05
    #: Coverage outages: sites of one network within this distance (m) may share a mast
    #: (cell positions of one mast's radios are estimated hundreds of metres apart).
    #: A site silent since such a neighbour was last heard does not block the
    #: neighbour's outage once that neighbour is down: nothing says the mast serves.
    sibling_m: float = 500.0
    #: ... or whose baseline footprints overlap at least this much (Bhattacharyya
    #: coefficient; above 1: position only). One mast's radios serve the same places.
    sibling_overlap: float = 0.5
    #: Coverage outages: a site counts as down when its p_offline reached ``p_down``
    #: in each of the last this many windows.
    coverage_confirm_windows: int = 1
    #: Coverage outages: parts smaller than this (km²) are dropped (slivers between
    #: reach discs).
    min_outage_km2: float = 0.05
    #: A sighting shows how far its site reaches only when its position is at least
    #: this precise (reported accuracy, m); fixes from cell or Wi-Fi positioning are not.
    reach_max_accuracy_m: float = 50.0
    #: Sightings farther than this from their site (m) are ignored for its reach.
    reach_max_m: float = 35_000.0
    #: Reach is rounded to this step (m): fewer distinct shapes to build.
    reach_step_m: float = 50.0

    def __post_init__(self) -> None:
        check_resolution(self.resolution)
        for name in (
            "prior_down",
            "prior_max",
            "p_suspect",
            "p_down",
            "p_up",
            "ok_when_down",
            "fail_share_down",
        ):
            value = getattr(self, name)
            if not 0.0 < value < 1.0:
                raise ParameterError(f"{name} must be between 0 and 1, got {value}")
        if self.p_up >= self.p_down:
            raise ParameterError("p_up must be below p_down")
        if self.p_suspect > self.p_down:
            raise ParameterError("p_suspect must not be above p_down")
        if not (self.prior_silence_z >= 0.0 and self.prior_silence_error >= 0.0):
            raise ParameterError(
                "prior_silence_z and prior_silence_error must not be negative, got "
                f"{self.prior_silence_z} and {self.prior_silence_error}"
            )
        if not 0.0 <= self.prior_silence_activity <= 1.0:
            raise ParameterError(
                f"prior_silence_activity must be between 0 and 1, got {self.prior_silence_activity}"
            )
        _ = self.prior_silence_windows  # a span that is not a duration fails here
        if self.span_windows < 1:
            raise ParameterError("span must be at least one window")
        if not self.takeover_per_window > 0.0:
            raise ParameterError(
                f"takeover_per_window must be above 0, got {self.takeover_per_window}"
            )
        if not self.fail_dispersion > 0.0:
            raise ParameterError(f"fail_dispersion must be above 0, got {self.fail_dispersion}")
        if not self.calibration_slope > 0.0:
            raise ParameterError(
                f"calibration_slope must be above 0 (p_offline must rise with the "
                f"posterior), got {self.calibration_slope}"
            )

    @property
    def window_td(self) -> pd.Timedelta:
        return parse_duration(self.window, name="window")

    @property
    def prior_silence_windows(self) -> int:
        """Windows of the silent-share span (0: the bound is off)."""
        if not self.learn_prior or str(self.prior_silence_span).strip() in ("", "0"):
            return 0
        span = parse_duration(self.prior_silence_span, name="prior_silence_span")
        return max(0, int(span // self.window_td))

    @property
    def span_windows(self) -> int:
        return max(1, int(parse_duration(self.span, name="span") // self.window_td))

    @property
    def ok_memory_windows(self) -> int:
        return max(1, int(parse_duration(self.ok_memory, name="ok_memory") // self.window_td))

    @property
    def volume_windows(self) -> int:
        return max(1, int(parse_duration(self.volume_span, name="volume_span") // self.window_td))

    def with_(self, **changes: Any) -> DetectionParams:
        """A copy with some parameters changed (None values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_duration(value: str | pd.Timedelta, *, name: str = "duration") -> pd.Timedelta:
    """A positive duration from "1h", "30min", "2h" or a Timedelta."""
    try:
        td = pd.Timedelta(value)
    except (ValueError, TypeError) as exc:
        raise ParameterError(f"{name}: cannot read {value!r} as a duration") from exc
    if td <= pd.Timedelta(0):
        raise ParameterError(f"{name} must be positive, got {value!r}")
    return td
