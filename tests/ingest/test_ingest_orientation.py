"""The built-in orientation data: GSHHG land and borders, GeoNames places, offline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import shapely

from dcm.analysis.coverage import area_km2
from dcm.analysis.land import COAST_MARGIN_M
from dcm.errors import IngestError
from dcm.ingest.orientation import read_borders, read_land, read_places

ST_VINCENT = (-61.5, 13.1, -61.0, 13.45)  # the main island, not the Grenadines
OPEN_SEA = (-20.5, -30.5, -19.5, -29.5)  # the simulator's synthetic island sits here
GENEVA = (6.0, 46.0, 7.0, 47.0)  # France, Switzerland and Lake Geneva


def test_land_of_st_vincent_has_the_island_size_and_its_towns(sample_data) -> None:
    land = read_land(ST_VINCENT)
    assert land is not None and land.is_valid
    # St Vincent is about 345 km² (the Grenadines lie south of the box).
    assert 330 < area_km2(np.array([land]))[0] < 370
    # Every named place lies within the margin outages are clipped with.
    places = read_places(ST_VINCENT)
    metres = shapely.distance(land, shapely.points(places["lon"], places["lat"])) * 111_000
    assert metres.max() < COAST_MARGIN_M
    kingstown = places.set_index("name").loc["Kingstown"]
    assert shapely.contains_xy(land, kingstown["lon"], kingstown["lat"])
    # Nine in ten simulated measurements fall on the island (its outline is traced to ~1 km).
    event = pd.read_csv(sample_data / "stvincent" / "event.csv.gz", on_bad_lines="skip", dtype=str)
    lon = pd.to_numeric(event["lon"], errors="coerce").dropna()
    lat = pd.to_numeric(event["lat"], errors="coerce").loc[lon.index]
    assert shapely.contains_xy(land, lon, lat).mean() > 0.9


def test_lakes_are_cut_out_and_borders_come_as_lines() -> None:
    land = read_land(GENEVA)
    assert land is not None
    # Lake Geneva (~580 km²) and the south of Lake Neuchâtel are not land; the rest is.
    box_km2 = area_km2(np.array([shapely.box(*GENEVA)]))[0]
    water_km2 = box_km2 - area_km2(np.array([land]))[0]
    assert 580 < water_km2 < 900
    assert not shapely.contains_xy(land, 6.5, 46.45)  # the middle of the lake
    assert shapely.contains_xy(land, 6.63, 46.52)  # Lausanne
    borders = read_borders(GENEVA)
    assert len(borders) >= 1
    assert set(shapely.get_type_id(borders.geometry.to_numpy())) <= {1, 5}
    west, south, east, north = shapely.total_bounds(borders.geometry.to_numpy())
    assert west >= GENEVA[0] and east <= GENEVA[2] and south >= GENEVA[1] and north <= GENEVA[3]
    assert read_borders(ST_VINCENT).empty  # an island has no land border


def test_open_sea_has_no_land() -> None:
    assert read_land(OPEN_SEA) is None
    assert read_borders(OPEN_SEA).empty
    assert read_places(OPEN_SEA).empty


def test_places_are_inside_the_box_largest_first() -> None:
    places = read_places(ST_VINCENT)
    assert {"Kingstown", "Georgetown", "Barrouallie", "Chateaubelair"} <= set(places["name"])
    assert places["population"].is_monotonic_decreasing
    assert places["lon"].between(ST_VINCENT[0], ST_VINCENT[2]).all()
    assert places["lat"].between(ST_VINCENT[1], ST_VINCENT[3]).all()
    assert (places["country"] == "VC").all()
    top = read_places(ST_VINCENT, limit=3)
    assert list(top["name"]) == list(places["name"][:3])
    assert top["name"][0] in {"Kingstown", "Calliaqua"}


def test_a_box_upside_down_is_refused() -> None:
    with pytest.raises(IngestError, match="minimum above maximum"):
        read_land((-61.0, 13.1, -61.5, 13.45))
