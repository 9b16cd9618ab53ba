"""A large ingest refreshes PostgreSQL's planner statistics once it has committed, so
bbox queries on a just-loaded event use the spatial index alone."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from dcm import service
from dcm.store import Principal, Store
from dcm.store.repositories.measurements import ANALYZE_MIN_ROWS


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2021-04-09T00:00:00Z")
    return pd.DataFrame(
        {
            "timestamp": start + pd.to_timedelta(rng.integers(0, 48 * 3600, n), unit="s"),
            "lat": rng.uniform(13.1, 13.4, n).round(6),
            "lon": rng.uniform(-61.3, -61.1, n).round(6),
            "status": "ok",
            "network": "360-110",
        }
    )


def _ingest(store: Store, admin: Principal, frame: pd.DataFrame, name: str) -> int:
    return service.ingest_frame(
        store,
        "stats",
        frame,
        kind="measurements",
        source=name,
        checksum=hashlib.sha256(name.encode()).hexdigest(),
        counts={"rows_in": len(frame), "accepted": len(frame)},
        received=pd.Timestamp("2021-04-12T00:00:00Z"),
        principal=admin,
    ).added


def test_large_ingest_refreshes_statistics_small_one_does_not(
    store: Store, admin: Principal
) -> None:
    store.create_event("stats", start=pd.Timestamp("2021-04-09T00:00:00Z"), principal=admin)
    big = ANALYZE_MIN_ROWS + 2_000
    assert _ingest(store, admin, _frame(big, 1), "big.csv") == big
    if not store.db.is_pg:
        # SQLite has no planner statistics to refresh: nothing runs.
        assert store.refresh_measurement_statistics(big) is False
        return
    # The planner knows the rows the ingest just wrote (ANALYZE samples: within 10 %).
    assert abs(store.measurement_rows_estimate() - big) <= 0.1 * big
    # A small ingest (an hour of a live event) leaves them as they are.
    assert store.refresh_measurement_statistics(500) is False
    assert _ingest(store, admin, _frame(500, 2), "small.csv") == 500
    assert abs(store.measurement_rows_estimate() - big) <= 0.1 * big
    # A bbox page of the new rows reads through the spatial index, not the event's
    # whole (event, period, ts) index.
    plan = "\n".join(
        str(r[0])
        for r in store.db.query(
            "EXPLAIN SELECT count(*) FROM measurements m WHERE m.event_id = 1 AND "
            "m.geom && ST_MakeEnvelope(-61.25, 13.15, -61.2, 13.2, 4326)"
        )
    )
    assert "measurements_geom" in plan
    assert "measurements_event_ts" not in plan
