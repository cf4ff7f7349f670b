"""Tables of first-level region polygons and of published region counts."""

from __future__ import annotations

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import CheckConstraint, Index, Integer, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from geomap.database import Base

LEVELS = ("country", "admin1")


class Region(Base):
    """A first-level region an operator loaded (``geomap regions load``), with its name."""

    __tablename__ = "regions"

    level: Mapped[str] = mapped_column(String(8), primary_key=True)
    code: Mapped[str] = mapped_column(String(24), primary_key=True)
    country_code: Mapped[str | None] = mapped_column(String(2))
    name: Mapped[str] = mapped_column(String(200))


class RegionPart(Base):
    """A piece of a region's polygon, subdivided so containment tests stay fast."""

    __tablename__ = "region_parts"
    __table_args__ = (Index("ix_region_parts_geom", "geom", postgresql_using="gist"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    level: Mapped[str] = mapped_column(String(8))
    code: Mapped[str] = mapped_column(String(24))
    geom: Mapped[WKBElement] = mapped_column(
        Geometry("POLYGON", srid=4326, spatial_index=False)
    )


class PublishedRegion(Base):
    """A published count per condition and country or region (of floor-cell centres).

    ``count`` is NULL where it is suppressed: the table never holds a count below k.
    """

    __tablename__ = "published_regions"
    __table_args__ = (
        CheckConstraint(f"level IN {LEVELS!r}", name="level"),
        CheckConstraint("count IS NULL OR count > 0", name="count_positive"),
    )

    condition_id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    level: Mapped[str] = mapped_column(String(8), primary_key=True)
    code: Mapped[str] = mapped_column(String(24), primary_key=True)
    country_code: Mapped[str] = mapped_column(String(2))
    name: Mapped[str] = mapped_column(String(200))
    count: Mapped[int | None] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer)
