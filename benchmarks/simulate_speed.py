"""How fast the simulator generates measurements.

Runs ``dcm.simulate.simulate`` on a synthetic scenario scaled to about a million
measurements (baseline + event) and prints the time and the rate; optionally
also times writing the files. Usage::

    python benchmarks/simulate_speed.py [--scenario quake] [--rows 1000000] [--write DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from dcm.simulate import simulate, write_scenario
from dcm.simulate.scenarios import scenario_spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="quake")
    parser.add_argument(
        "--rows", type=int, default=1_000_000, help="measurements to generate (baseline + event)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", action="store_true", help="also time write_scenario")
    args = parser.parse_args()

    spec = scenario_spec(args.scenario)
    scale = args.rows / (spec.baseline_rows + spec.event_rows)
    t0 = time.perf_counter()
    scenario = simulate(args.scenario, seed=args.seed, scale=scale)
    elapsed = time.perf_counter() - t0
    rows = len(scenario.baseline) + len(scenario.event)
    print(
        f"simulate({args.scenario!r}, scale={scale:.2f}): {rows:,} measurements "
        f"({len(scenario.baseline):,} baseline + {len(scenario.event):,} event), "
        f"{len(scenario.cells):,} cells in {elapsed:.1f} s "
        f"= {rows / elapsed / 1e3:,.0f} k measurements/s"
    )
    if args.write:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            paths = write_scenario(scenario, Path(tmp) / "out")
            elapsed = time.perf_counter() - t0
            size = sum(p.stat().st_size for p in paths.values()) / 1e6
            print(f"write_scenario: {len(paths)} files, {size:.1f} MB in {elapsed:.1f} s")


if __name__ == "__main__":
    main()
