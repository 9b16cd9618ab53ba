"""The PostGIS geometry described with GeoAlchemy2, and bbox pages built from it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import sqlalchemy as sa
from geoalchemy2 import Geometry

from dcm.store import Principal, Store, _features, open_store, postgis

from .conftest import make_settings
from .test_store_features import fill_vincent

if TYPE_CHECKING:
    from .conftest import Scenario


def _boxes(n: int, seed: int) -> list[tuple[float, float, float, float]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        x, y = rng.uniform(-61.26, -61.21), rng.uniform(13.20, 13.25)
        w, h = rng.uniform(0.002, 0.03, 2)
        out.append((float(x), float(y), float(x + w), float(y + h)))
    return out


def test_bbox_filter_binds_the_corners() -> None:
    params: dict[str, float] = {}

    def bind(value: float) -> sa.BindParameter[float]:
        name = f"c{len(params)}"
        params[name] = value
        return sa.bindparam(name, value)

    text = postgis.sql(postgis.bbox_filter("hexes", "h", (-61.3, 13.1, -61.1, 13.4), bind))
    assert text == "h.geom && ST_MakeEnvelope(:c0, :c1, :c2, :c3, 4326)"
    assert params == {"c0": -61.3, "c1": 13.1, "c2": -61.1, "c3": 13.4}
    geom = postgis.metadata.tables["measurements"].c.geom
    assert isinstance(geom.type, Geometry)
    assert (geom.type.geometry_type, geom.type.srid) == ("POINT", 4326)


def test_metadata_matches_the_migrated_store(store: Store) -> None:
    if not store.db.is_pg:
        pytest.skip("PostGIS geometry exists on PostgreSQL only")
    assert postgis.schema_differences(store.db) == []
    # The comparison sees what differs: a wrong geometry type, a missing index.
    changed = sa.MetaData()
    for table in postgis.metadata.tables.values():
        table.to_metadata(changed)
    changed.tables["hexes"].c.geom.type = Geometry("POINT", srid=postgis.WGS84)
    changed.tables["outages"].append_column(sa.Column("centre", Geometry("POINT", srid=4326)))
    ops = [
        op
        for diff in postgis.schema_differences(store.db, changed)
        for op in (diff if isinstance(diff, list) else [diff])
    ]
    found = {(op[0], op[1].table.name if op[0] == "add_index" else op[2]) for op in ops}
    assert found == {("modify_type", "hexes"), ("add_column", "outages"), ("add_index", "outages")}


@pytest.mark.postgres
def test_bbox_pages_agree_on_both_backends(
    both_backends: tuple[str, str], tmp_path: Path, scenario: Scenario
) -> None:
    admin, anyone = Principal.system(), Principal.anonymous()
    pages: list[list[list[tuple[str, float, float]]]] = []
    for i, url in enumerate(both_backends):
        with open_store(make_settings(tmp_path / f"data{i}"), url=url) as store:
            fill_vincent(store, scenario, admin)
            seen = []
            for box in _boxes(12, seed=5):
                full = store.features(
                    "measurements", "vincent", bbox=box, limit=100_000, principal=anyone
                )
                first = store.features(
                    "measurements", "vincent", bbox=box, limit=7, offset=3, principal=anyone
                )
                assert full.number_matched == len(full.features) == first.number_matched
                assert [f["id"] for f in first.features] == [f["id"] for f in full.features[3:10]]
                seen.append(
                    [
                        (f["properties"]["timestamp"], *f["geometry"]["coordinates"])
                        for f in full.features
                    ]
                )
            pages.append(seen)
    lite, pg = pages
    assert sum(len(p) for p in pg) > 100
    for a, b in zip(lite, pg, strict=True):
        # SQLite's R*Tree bounds are 32-bit floats rounded outwards: a point within
        # ~1e-5 degrees outside the box may be added there.
        assert set(b) <= set(a) and len(a) - len(b) <= 2


def test_bbox_pages_beyond_the_sort_cap(
    store: Store, scenario: Scenario, admin: Principal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More matches than SORT_MATCHES_MAX: PostgreSQL counts, then walks the key."""
    fill_vincent(store, scenario, admin)
    anyone = Principal.anonymous()
    box = (-61.26, 13.20, -61.20, 13.26)
    whole = store.features("measurements", "vincent", bbox=box, limit=100_000, principal=anyone)
    ids = [f["id"] for f in whole.features]
    assert len(ids) > 200 and ids == sorted(ids, key=int)
    for cap in (_features.SORT_MATCHES_MAX, 50):
        monkeypatch.setattr(_features, "SORT_MATCHES_MAX", cap)
        for offset in (0, 45, len(ids) - 3, len(ids) + 10):
            page = store.features(
                "measurements", "vincent", bbox=box, limit=10, offset=offset, principal=anyone
            )
            assert [f["id"] for f in page.features] == ids[offset : offset + 10]
            assert page.number_matched == len(ids)
        uncounted = store.features(
            "measurements", "vincent", bbox=box, limit=10, principal=anyone, count=False
        )
        assert uncounted.number_matched == -1
        assert [f["id"] for f in uncounted.features] == ids[:10]
