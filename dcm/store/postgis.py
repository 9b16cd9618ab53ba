"""The PostGIS geometry of the store described for SQLAlchemy with GeoAlchemy2.

On PostgreSQL every table with a place has a ``geom`` column generated from its stored
GeoJSON (or lon/lat) with a GiST index, created by migration 1
(:mod:`dcm.store.migrations`). :data:`metadata` describes those columns and indexes as
:class:`geoalchemy2.types.Geometry` (with the columns they are generated from and the
keys queries join on), and :func:`bbox_filter` builds the spatial filters of the API's
collections from them with :mod:`geoalchemy2.functions`, its values bound. SQLite has
no ``geom``: bbox columns and R*Trees do that job there (see :mod:`dcm.store._features`).

:func:`schema_differences` asks alembic's autogenerate comparison what differs between
:data:`metadata` and a PostgreSQL store; a store built by the migrations has none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from geoalchemy2 import Geometry
from geoalchemy2 import functions as gfn
from sqlalchemy.dialects import postgresql

if TYPE_CHECKING:
    from dcm.store._db import Database

#: EPSG code of WGS84 longitude/latitude, the CRS of every stored geometry.
WGS84 = 4326

metadata = sa.MetaData()

#: How ``geom`` is generated: from the lon/lat columns, or from the stored GeoJSON.
_FROM_LONLAT = f"ST_SetSRID(ST_MakePoint(lon, lat), {WGS84})"
_FROM_GEOJSON = f"ST_SetSRID(ST_GeomFromGeoJSON(geojson), {WGS84})"


def _geom(geometry_type: str, generated_from: str) -> sa.Column[Any]:
    # spatial_index=False: the GiST index is named and created by the migration (and
    # described below as an Index), not by GeoAlchemy2's create-table hooks.
    return sa.Column(
        "geom",
        Geometry(geometry_type, srid=WGS84, spatial_index=False),
        sa.Computed(generated_from, persisted=True),
    )


def _id() -> sa.Column[Any]:
    return sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True)


def _event() -> sa.Column[Any]:
    return sa.Column("event_id", sa.BigInteger, nullable=False)


def _lonlat(*, nullable: bool = False) -> tuple[sa.Column[Any], sa.Column[Any]]:
    return (
        sa.Column("lon", sa.Double, nullable=nullable),
        sa.Column("lat", sa.Double, nullable=nullable),
    )


def _point_table(name: str, *keys: sa.Column[Any], nullable: bool = False) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        *keys,
        *_lonlat(nullable=nullable),
        _geom("POINT", _FROM_LONLAT),
        sa.Index(f"{name}_geom", "geom", postgresql_using="gist"),
    )


def _shape_table(name: str, *keys: sa.Column[Any], index: bool = True) -> sa.Table:
    items: list[Any] = [
        *keys,
        sa.Column("geojson", sa.Text, nullable=False),
        _geom("GEOMETRY", _FROM_GEOJSON),
    ]
    if index:
        items.append(sa.Index(f"{name}_geom", "geom", postgresql_using="gist"))
    return sa.Table(name, metadata, *items)


measurements = _point_table("measurements", _id(), _event())
cells = _point_table("cells", _id(), _event())
cell_status = _point_table("cell_status", _id(), _event(), nullable=True)
population = _point_table("population", _event())
areas = _shape_table("areas", _id(), _event())
hazard = _shape_table("hazard", _id(), _event())
outages = _shape_table("outages", _id(), _event())
alerts = _shape_table(
    "alerts", sa.Column("identifier", sa.Text, primary_key=True), _event(), index=False
)
hexes = sa.Table(
    "hexes",
    metadata,
    sa.Column("h3", sa.Text, primary_key=True),
    sa.Column("geojson", sa.Text, nullable=False),
    _geom("POLYGON", _FROM_GEOJSON),
    sa.Index("hexes_geom", "geom", postgresql_using="gist"),
)

#: Renders expressions as the store's SQL text does: ``:name`` parameters.
_DIALECT = postgresql.psycopg.dialect(paramstyle="named")


def envelope(bbox: tuple[float, float, float, float], bind: Any) -> Any:
    """``ST_MakeEnvelope`` of ``bbox`` (minlon, minlat, maxlon, maxlat, WGS84); ``bind``
    turns each corner into a bound parameter."""
    corners = (bind(float(v)) for v in bbox)
    return gfn.ST_MakeEnvelope(*corners, sa.literal_column(str(WGS84)))


def bbox_filter(table: str, alias: str, bbox: tuple[float, float, float, float], bind: Any) -> Any:
    """Rows of ``table`` (queried as ``alias``) whose ``geom`` bounding box meets
    ``bbox``: the ``&&`` operator, answered by the GiST index."""
    geom = metadata.tables[table].alias(alias).c.geom
    return geom.intersects(envelope(bbox, bind))


def sql(expression: Any) -> str:
    """SQL text of ``expression`` for PostgreSQL, its bound parameters as ``:name``."""
    return str(expression.compile(dialect=_DIALECT))


def include_object(obj: Any, name: str | None, kind: str, reflected: bool, compare_to: Any) -> bool:
    """Alembic's ``include_object`` hook: compare only what :data:`metadata` describes.

    Tables it does not name, and columns, indexes and constraints found in the database
    only, are left out: the migrations hold the whole schema.
    """
    if kind == "table":
        return name in metadata.tables
    return not (reflected and compare_to is None)


def schema_differences(db: Database, target: sa.MetaData = metadata) -> list[Any]:
    """What alembic's autogenerate would change to make the PostgreSQL store match
    ``target`` (:data:`metadata` by default); empty when they agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    def include(obj: Any, name: str | None, kind: str, reflected: bool, compare_to: Any) -> bool:
        if kind == "table":
            return name in target.tables
        return include_object(obj, name, kind, reflected, compare_to)

    context = MigrationContext.configure(
        connection=db.connection, opts={"include_object": include, "compare_type": True}
    )
    return list(compare_metadata(context, target))
