"""Disaster scenarios with ground truth, written in the formats real data comes in.

``simulate(name, seed=..., scale=..., conditions=...)`` builds a :class:`Scenario` (frames plus
:class:`ScenarioTruth`); ``write_scenario`` writes it to a folder; ``load_truth``
reads the truth back. See ``docs/architecture.md`` for the file list.
"""

from dcm.simulate.conditions import Conditions
from dcm.simulate.grid import truth_grid
from dcm.simulate.scenarios import SCENARIOS, Scenario, simulate
from dcm.simulate.truth import ScenarioTruth
from dcm.simulate.writer import load_truth, write_scenario

__all__ = [
    "SCENARIOS",
    "Conditions",
    "Scenario",
    "ScenarioTruth",
    "load_truth",
    "simulate",
    "truth_grid",
    "write_scenario",
]
