"""Tables of first-level region polygons and of published region counts."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    SmallInteger,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from geomap.database import Base
from geomap.geo.spatial_types import Geometry, WKBElement

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


EVERY_CONDITION_ID = 0  # admin snapshots: every member once, whatever their conditions


class AdminRegionCount(Base):
    """Admins only: exact members per condition, country, region and role, at a refresh.

    ``condition_id`` 0 counts every member once; '' stands for no country or region.
    The public role has no grant on this table.
    """

    __tablename__ = "admin_region_counts"

    condition_id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    country_code: Mapped[str] = mapped_column(String(2), primary_key=True)
    region_code: Mapped[str] = mapped_column(String(24), primary_key=True)
    role: Mapped[str] = mapped_column(String(16), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    region_name: Mapped[str | None] = mapped_column(String(200))  # named at refresh


class AdminMonthlyJoin(Base):
    """Admins only: members who joined per condition, country and month, at a refresh."""

    __tablename__ = "admin_monthly_joins"

    condition_id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    country_code: Mapped[str] = mapped_column(String(2), primary_key=True)
    month: Mapped[date] = mapped_column(Date, primary_key=True)
    count: Mapped[int] = mapped_column(Integer)


class AdminCountsRefresh(Base):
    """When the admin count snapshots were last refreshed (one row)."""

    __tablename__ = "admin_counts_refresh"
    __table_args__ = (CheckConstraint("id", name="single_row"),)

    id: Mapped[bool] = mapped_column(Boolean, primary_key=True, default=True)
    refreshed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    seconds: Mapped[float] = mapped_column(Float)
