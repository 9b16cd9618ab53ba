"""Population rasters, admin areas, hazard footprints and Ookla tiles."""

from __future__ import annotations

import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from shapely.geometry import Point, Polygon, box

from dcm.errors import IngestError
from dcm.ingest import read_areas, read_hazard, read_ookla_tiles, read_population
from dcm.schema import POPULATION_COLUMNS, validate_frame


def write_raster(path: Path, values: np.ndarray, *, crs: str, transform, nodata=None) -> None:  # type: ignore[no-untyped-def]
    # rasterio 1.4 multiplies affine matrices with `*`, which affine 3 flags as pending
    # deprecation; that is rasterio's business, not this test's.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        with rasterio.open(
            path, "w", driver="GTiff", height=values.shape[0], width=values.shape[1], count=1,
            dtype="float32", crs=crs, transform=transform, nodata=nodata,
        ) as dst:  # fmt: skip
            dst.write(values.astype("float32"), 1)


def test_population_pixel_centres_and_nodata(tmp_path: Path) -> None:
    values = np.array([[0, 5, -99], [2.5, np.nan, 1]])
    path = tmp_path / "pop.tif"
    transform = Affine(0.01, 0, -61.3, 0, -0.01, 13.4)
    write_raster(path, values, crs="EPSG:4326", transform=transform, nodata=-99)
    frame = read_population(path)
    validate_frame(frame, POPULATION_COLUMNS, name="population")
    assert list(frame.columns) == list(POPULATION_COLUMNS)
    assert frame["population"].tolist() == [5, 2.5, 1]
    assert frame["lon"].iloc[0] == pytest.approx(-61.3 + 0.015)
    assert frame["lat"].iloc[0] == pytest.approx(13.4 - 0.005)


def test_population_in_a_projected_crs_keeps_the_total(tmp_path: Path) -> None:
    values = np.full((3, 4), 10.0)
    path = tmp_path / "pop_utm.tif"
    # UTM zone 20N around St Vincent; 100 m pixels.
    write_raster(path, values, crs="EPSG:32620", transform=Affine(100, 0, 690000, 0, -100, 1460000))
    frame = read_population(path)
    assert frame["population"].sum() == pytest.approx(120)
    assert frame["lon"].between(-61.5, -60.9).all() and frame["lat"].between(13.0, 13.3).all()


def test_population_errors(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="not found"):
        read_population(tmp_path / "none.tif")
    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"not a tiff at all")
    with pytest.raises(IngestError, match="raster"):
        read_population(junk)


def test_areas_pick_the_finest_admin_level(tmp_path: Path) -> None:
    gdf = gpd.GeoDataFrame(
        {
            "NAME_1": ["Charlotte", "Charlotte"],
            "NAME_2": ["Georgetown", "Colonarie"],
            "GID_1": ["VCT.1_1", "VCT.1_1"],
            "GID_2": ["VCT.1.1_1", "VCT.1.2_1"],
        },
        geometry=[box(-61.2, 13.2, -61.1, 13.3), box(-61.2, 13.1, -61.1, 13.2)],
        crs="EPSG:4326",
    ).to_crs("EPSG:32620")
    path = tmp_path / "gadm.gpkg"
    gdf.to_file(path, engine="pyogrio")
    areas = read_areas(path)
    assert list(areas.columns) == ["area_id", "name", "geometry"]
    assert areas["area_id"].tolist() == ["VCT.1.1_1", "VCT.1.2_1"]
    assert areas["name"].tolist() == ["Georgetown", "Colonarie"]
    assert areas.crs.to_epsg() == 4326
    assert areas.total_bounds == pytest.approx([-61.2, 13.1, -61.1, 13.3], abs=1e-6)


def test_areas_without_ids_and_with_explicit_columns(tmp_path: Path) -> None:
    gdf = gpd.GeoDataFrame(
        {"district": ["North", "South"], "pop": [1, 2]},
        geometry=[box(0, 0, 1, 1), box(0, 1, 1, 2)],
        crs="EPSG:4326",
    )
    path = tmp_path / "areas.geojson"
    gdf.to_file(path, engine="pyogrio")
    plain = read_areas(path)
    assert plain["area_id"].tolist() == ["1", "2"]
    named = read_areas(path, name_column="district")
    assert named["name"].tolist() == ["North", "South"]
    with pytest.raises(IngestError, match="no column"):
        read_areas(path, id_column="nope")


def test_areas_need_polygons(tmp_path: Path) -> None:
    path = tmp_path / "points.geojson"
    gpd.GeoDataFrame({"name": ["a"]}, geometry=[Point(0, 0)], crs="EPSG:4326").to_file(path)
    with pytest.raises(IngestError, match="polygon"):
        read_areas(path)


def test_nhc_wind_swath(shared_data: Path) -> None:
    hazard = read_hazard(shared_data / "hazard" / "nhc_ida_AL092021_windswath.geojson")
    assert len(hazard) == 5
    assert sorted(set(hazard["level"])) == ["34kt", "50kt", "64kt"]
    assert hazard.set_index("level")["rank"].to_dict() == {"34kt": 1, "50kt": 2, "64kt": 3}
    assert hazard["hazard_id"].is_unique and (hazard["storm_id"] == "AL092021").all()
    assert str(hazard["start"].dt.tz) == "UTC" and hazard.crs.to_epsg() == 4326


def test_gdacs_cyclone_keeps_only_wind_polygons(shared_data: Path) -> None:
    hazard = read_hazard(shared_data / "hazard" / "gdacs_tc_geometry.json")
    raw = gpd.read_file(shared_data / "hazard" / "gdacs_tc_geometry.json")
    wind = raw[raw["Class"].isin(["Poly_Green", "Poly_Orange", "Poly_Red"])]
    # Some wind buffers in the feed are degenerate (all vertices equal): not footprints.
    assert len(hazard) == (shapely.area(wind.geometry.to_numpy()) > 0).sum() > 20
    assert set(hazard["level"]) == {"green", "orange", "red"}
    assert hazard.geometry.geom_type.isin(["Polygon", "MultiPolygon"]).all()
    assert (hazard["eventid"] == 1001296).all() and hazard["hazard_id"].is_unique
    assert str(hazard["fromdate"].dt.tz) == "UTC"


def test_gdacs_earthquake_intensity(shared_data: Path) -> None:
    hazard = read_hazard(shared_data / "hazard" / "gdacs_eq_geometry_truncated.json")
    assert hazard["level"].tolist() == ["mmi3"] and hazard["rank"].tolist() == [3]


def test_generic_hazard_file(tmp_path: Path) -> None:
    gdf = gpd.GeoDataFrame(
        {"Level": ["High", "Low", "High"], "note": ["a", "b", "c"]},
        geometry=[box(0, 0, 1, 1), Polygon([(0, 0), (1, 1), (1, 0), (0, 1)]), Point(5, 5)],
        crs="EPSG:4326",
    )
    path = tmp_path / "lahar.gpkg"
    gdf.to_file(path, engine="pyogrio")
    hazard = read_hazard(path)
    assert hazard["level"].tolist() == ["high", "low"]  # the point is no footprint
    assert hazard["note"].tolist() == ["a", "b"]
    assert hazard.geometry.is_valid.all()  # the bow-tie was repaired


def test_ookla_tiles(shared_data: Path) -> None:
    tiles = read_ookla_tiles(shared_data / "ookla" / "mobile_guam_ookla_2023Q1.geojson")
    assert len(tiles) == 300
    assert tiles["quadkey"].str.len().eq(16).all()
    assert tiles["avg_d_kbps"].dtype == "float64" and tiles["tests"].min() >= 1
    assert tiles.total_bounds[0] > 144 and tiles.crs.to_epsg() == 4326


def test_ookla_parquet_and_wrong_files(tmp_path: Path) -> None:
    import pandas as pd

    table = pd.DataFrame(
        {
            "quadkey": ["1332033013031320"],
            "tile": [box(144.646, 13.459, 144.651, 13.464).wkt],
            "avg_d_kbps": [27181],
            "avg_u_kbps": [14360],
            "avg_lat_ms": [30],
            "tests": [3],
            "devices": [2],
        }
    )
    path = tmp_path / "tiles.parquet"
    table.to_parquet(path)
    assert read_ookla_tiles(path)["avg_u_kbps"].tolist() == [14360.0]
    other = tmp_path / "other.geojson"
    gpd.GeoDataFrame({"x": [1]}, geometry=[box(0, 0, 1, 1)], crs="EPSG:4326").to_file(other)
    with pytest.raises(IngestError, match="not Ookla"):
        read_ookla_tiles(other)
    junk = tmp_path / "junk.geojson"
    junk.write_text("{ nope")
    with pytest.raises(IngestError):
        read_ookla_tiles(junk)


def test_population_without_crs(tmp_path: Path) -> None:
    degrees = tmp_path / "nocrs_degrees.tif"
    write_raster(degrees, np.ones((2, 2)), crs=None, transform=Affine(0.1, 0, 10, 0, -0.1, 5))
    assert read_population(degrees)["population"].sum() == 4
    metres = tmp_path / "nocrs_metres.tif"
    write_raster(metres, np.ones((2, 2)), crs=None, transform=Affine(100, 0, 5e5, 0, -100, 1e6))
    with pytest.raises(IngestError, match="no CRS"):
        read_population(metres)
