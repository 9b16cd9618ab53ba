"""A small live store with hand-made results, for figures checked by hand.

Two areas side by side, West (x 0-0.02°) and East (x 0.02-0.04°), on the equator off
St Vincent's longitude; people at six points; outages of network 360-100 and of every
network saved window by window as :func:`dcm.live.update` would. Tests import it
(``from .. import gapstore``) and compare the gap report, the cells layer and the HTML
report with the figures below.

Windows (1 h, from T0 = 2021-04-09 20:00 UTC):

* W0 = T0: outage ``A`` of 360-100 over the West area (onset T0). Cell 1 (site s1,
  360-100, in West) offline.
* W1 = T0 + 1 h: ``A`` goes on (onset T0); outage ``B`` of 360-100 begins over the East
  area (onset W1); outage ``N`` where no network serves, in the East (onset W1). Cell 1
  still offline (since T0); cell 2 (site s2, 360-100, in East) offline since W1.

Cells and their service areas (no baseline model is stored: discs of the OpenCelliD
range around each one-cell site, at latitude Y0 + 0.012): cell 1 at x 0.010 with 2,000 m
(±0.0184° of longitude) reaches x 0.028, so it serves West and East; cell 2 at x 0.030
with 500 m (±0.0046°) serves East only. Offline cells serving each area at W1: West 1
(cell 1), East 2 (cells 1 and 2), of network 360-100 (and so of every network).

People: West 100 + 100 + 100 (all inside ``A``), East 50 + 50 inside ``B`` (one of them
also inside ``N``) and 400 outside every outage. The gap report at W1, by people:
West/360-100 300 since T0 (1 cell offline); East/360-100 100 since W1 (2 cells);
East/all 50 since W1 (2 cells).
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd
import shapely

from dcm.schema import CRS
from dcm.settings import Settings
from dcm.store import Principal, Store, open_store

T0 = pd.Timestamp("2021-04-09T20:00:00Z")
W1 = T0 + pd.Timedelta(hours=1)
X0, Y0 = -61.30, 13.10
EVENT = "isle"


def _box(x1: float, y1: float, x2: float, y2: float) -> shapely.Polygon:
    return shapely.box(X0 + x1, Y0 + y1, X0 + x2, Y0 + y2)


AREAS = gpd.GeoDataFrame(
    {"area_id": ["W", "E"], "name": ["West", "East"]},
    geometry=[_box(0, 0, 0.02, 0.02), _box(0.02, 0, 0.04, 0.02)],
    crs=CRS,
)
POPULATION = pd.DataFrame(
    {
        "lon": [X0 + v for v in (0.004, 0.010, 0.016, 0.026, 0.034, 0.038)],
        "lat": [Y0 + 0.010] * 6,
        "population": [100.0, 100.0, 100.0, 50.0, 50.0, 400.0],
    }
)
OUTAGE_A = _box(0.001, 0.001, 0.019, 0.019)
OUTAGE_B = _box(0.022, 0.005, 0.036, 0.015)
OUTAGE_N = _box(0.031, 0.006, 0.036, 0.014)


def _cells() -> pd.DataFrame:
    ts = pd.Timestamp("2020-01-01T00:00:00Z")
    return pd.DataFrame(
        {
            "radio": pd.array(["LTE", "LTE"], dtype="string"),
            "mcc": [360, 360],
            "net": [100, 100],
            "area": [1, 1],
            "cell": [1, 2],
            "unit": pd.array([0, 0], dtype="Int64"),
            "lon": [X0 + 0.010, X0 + 0.030],
            "lat": [Y0 + 0.012, Y0 + 0.012],
            "range": [2000.0, 500.0],
            "samples": pd.array([10, 10], dtype="Int64"),
            "changeable": pd.array([1, 1], dtype="Int64"),
            "created": [ts, ts],
            "updated": [ts, ts],
            "averageSignal": [-90.0, -90.0],
            "network": pd.array(["360-100", "360-100"], dtype="string"),
            "site_id": pd.array(["s1", "s2"], dtype="string"),
        }
    )


def _outages(
    window: pd.Timestamp, rows: list[tuple[str, str, str, shapely.Geometry, pd.Timestamp, float]]
) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "outage_id": [r[0] for r in rows],
            "window_start": [window] * len(rows),
            "window_end": [window + pd.Timedelta(hours=1)] * len(rows),
            "network": [r[1] for r in rows],
            "severity": [r[2] for r in rows],
            "tier": ["confirmed"] * len(rows),
            "certainty": ["observed"] * len(rows),
            "confidence": [0.95] * len(rows),
            "area_km2": [round(float(shapely.area(r[3])) * 12_300, 3) for r in rows],
            "population": [r[5] for r in rows],
            "cells_offline": [1] * len(rows),
            "onset": [r[4] for r in rows],
        },
        geometry=[r[3] for r in rows],
        crs=CRS,
    )


def _cell_status(window: pd.Timestamp, offline: list[int]) -> pd.DataFrame:
    cells = _cells()
    return pd.DataFrame(
        {
            "radio": cells["radio"],
            "mcc": cells["mcc"],
            "net": cells["net"],
            "area": cells["area"],
            "cell": cells["cell"],
            "site_id": cells["site_id"],
            "status": ["offline" if c in offline else "online" for c in cells["cell"]],
            "start": [window] * 2,
            "end": [window + pd.Timedelta(hours=1)] * 2,
            "p_offline": [0.99 if c in offline else 0.01 for c in cells["cell"]],
            "silence_h_needed": [2.0, 2.0],
        }
    )


def build(data_dir: Path, *, url: str | None = None) -> Store:
    """The store described above (SQLite in ``data_dir`` unless ``url``); open it."""
    settings = Settings(data_dir=data_dir, secret="test-secret")
    store = open_store(settings, url=url)
    admin = Principal.system()
    ev = store.create_event(EVENT, start=T0 - pd.Timedelta(days=1), principal=admin)
    for kind, insert, frame in (
        ("cells", store.insert_cells, _cells()),
        ("population", store.insert_population, POPULATION),
        ("areas", store.insert_areas, AREAS),
    ):
        dataset = store.add_dataset(
            ev.id,
            kind=kind,
            source=f"{kind}.hand",
            checksum=kind,
            licence=None,
            visibility="public",
            counts={"rows_in": len(frame), "accepted": len(frame), "added": len(frame)},
            principal=admin,
        )
        insert(ev.id, dataset.id, frame)
    empty_grid = pd.DataFrame(
        columns=["h3", "network", "window_start", "window_end", "state", "devices"]
    )
    a, b, n = "360-100", "all", "outage"
    for window, outages, offline in (
        (T0, [("A", a, n, OUTAGE_A, T0, 300.0)], [1]),
        (
            W1,
            [
                ("A", a, n, OUTAGE_A, T0, 300.0),
                ("B", a, n, OUTAGE_B, W1, 100.0),
                ("N", b, n, OUTAGE_N, W1, 50.0),
            ],
            [1, 2],
        ),
    ):
        run = store.start_run(ev.id)
        store.save_results(
            ev.id,
            run.id,
            windows=pd.DatetimeIndex([window]),
            outages=_outages(window, outages),
            cells=_cell_status(window, offline),
            grid=empty_grid,
        )
        store.finish_run(run.id, windows=1)
    return store
