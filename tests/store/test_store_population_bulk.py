"""Population rasters (tens of thousands of points) go in by the bulk path and replace
the event's earlier points, on both backends."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dcm.store import Principal, Store

N_POINTS = 31_000  # a 1 km WorldPop-style raster over a small island state


def _points(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "lon": rng.uniform(-61.3, -61.1, N_POINTS),
            "lat": rng.uniform(13.1, 13.4, N_POINTS),
            "population": rng.uniform(0, 50, N_POINTS).round(3),
        }
    )


def _dataset(store: Store, admin: Principal, checksum: str) -> int:
    dataset = store.add_dataset(
        "pop",
        kind="population",
        source=f"{checksum}.tif",
        checksum=checksum,
        licence=None,
        visibility="public",
        counts={},
        principal=admin,
    )
    return dataset.id


@pytest.fixture
def pop_store(store: Store, admin: Principal) -> Store:
    store.create_event("pop", start=pd.Timestamp("2021-04-09T00:00:00Z"), principal=admin)
    return store


def test_population_round_trips_and_replaces(pop_store: Store, admin: Principal) -> None:
    first, second = _points(1), _points(2).iloc[: N_POINTS // 2]
    assert pop_store.insert_population("pop", _dataset(pop_store, admin, "a"), first) == N_POINTS
    added = pop_store.insert_population("pop", _dataset(pop_store, admin, "b"), second)
    assert added == len(second)
    stored = pop_store.population("pop")
    assert stored is not None
    key = ["lon", "lat"]
    got = stored.sort_values(key).reset_index(drop=True)[["lon", "lat", "population"]]
    want = second.sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want, check_dtype=False)


def test_population_uses_copy_on_postgresql(pop_store: Store, admin: Principal) -> None:
    if not pop_store.db.is_pg:
        pytest.skip("COPY is PostgreSQL's bulk path; SQLite inserts row-wise in C")
    pop_store.insert_population("pop", _dataset(pop_store, admin, "a"), _points(3))
    # The bulk path stages rows in a session temp table; row-wise inserts create none.
    staged = pop_store.db.scalar("SELECT to_regclass('pg_temp._bulk_population') IS NOT NULL")
    assert staged is True
    count = pop_store.db.scalar("SELECT count(*) FROM population WHERE geom IS NOT NULL")
    assert count == N_POINTS
