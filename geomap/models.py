"""Tables of geomap, as typed SQLAlchemy models.

Three tiers (see DESIGN.md): the private exact location (``member_locations``), the
public keys derived from it when it is written (floor cell, country, region), and the
published aggregates the public read path may reach (``published_*``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from geomap.database import Base
from geomap.geo.spatial_types import Geography, Geometry, WKBElement

ROLES = ("patient", "relative", "carer", "professional", "researcher", "organisation")
VISIBILITIES = ("map", "country", "hidden")
AGE_GROUPS = ("child", "teenager", "adult")
TREATMENT_PHASES = ("induction", "consolidation", "maintenance", "transplant", "survivorship")
INTRODUCTION_MAX = 500


class Condition(Base):
    """A condition with its own world map."""

    __tablename__ = "conditions"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    icd10: Mapped[str] = mapped_column(String(16))


class Member(Base):
    """A person on geomap, known publicly only by a pseudonym."""

    __tablename__ = "members"
    __table_args__ = (
        CheckConstraint(f"role IN {ROLES!r}", name="role"),
        CheckConstraint(f"visibility IN {VISIBILITIES!r}", name="visibility"),
        CheckConstraint(f"age_group IN {AGE_GROUPS!r}", name="age_group"),
        CheckConstraint(f"treatment_phase IN {TREATMENT_PHASES!r}", name="treatment_phase"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    # Byte-order collation (migration 0015b_import): the same order as the database's
    # C.UTF-8 for UTF-8 text, and cheaper unique-index builds for bulk imports.
    # Unique through its key (one pseudonym, one key; migration 0019p_pseudonym_key_only).
    pseudonym: Mapped[str] = mapped_column(String(64, collation="C"))
    # Case and look-alikes folded (geomap.members.pseudonyms): unique, so "Ada" and
    # "АDA" (Cyrillic А) cannot both exist.
    pseudonym_key: Mapped[str] = mapped_column(String(256, collation="C"), unique=True)
    role: Mapped[str] = mapped_column(String(16), default="patient")
    visibility: Mapped[str] = mapped_column(String(8), default="map")
    contactable: Mapped[bool] = mapped_column(Boolean, default=True)
    # The optional profile, shown only to signed-in members.
    introduction: Mapped[str] = mapped_column(String(INTRODUCTION_MAX), default="",
                                              server_default="")
    age_group: Mapped[str | None] = mapped_column(String(10))
    treatment_phase: Mapped[str | None] = mapped_column(String(16))
    # Moderation: a suspended member can sign in (to read, export, delete) but not
    # contact anyone and is listed nowhere; a warning shows until they acknowledge it.
    suspended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    warning: Mapped[str | None] = mapped_column(String(1000))
    joined_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class MemberCondition(Base):
    """A member's link to a condition they live with or care about."""

    __tablename__ = "member_conditions"
    __table_args__ = (Index("ix_member_conditions_member", "member_id"),)

    condition_id: Mapped[int] = mapped_column(
        SmallInteger, ForeignKey("conditions.id"), primary_key=True
    )
    member_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("members.id", ondelete="CASCADE"), primary_key=True
    )


class MemberLocation(Base):
    """A member's exact location (private) and the public keys derived from it."""

    __tablename__ = "member_locations"
    __table_args__ = (
        Index("ix_member_locations_floor_cell", "floor_cell"),
    )

    member_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("members.id", ondelete="CASCADE"), primary_key=True
    )
    location: Mapped[WKBElement] = mapped_column(
        Geography("POINT", srid=4326, spatial_index=False)
    )
    floor_cell: Mapped[int] = mapped_column(BigInteger)
    country_code: Mapped[str | None] = mapped_column(String(2, collation="C"))
    region_code: Mapped[str | None] = mapped_column(String(24, collation="C"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Place(Base):
    """A gazetteer place (GeoNames city) used for labels and region derivation."""

    __tablename__ = "places"
    __table_args__ = (
        Index("ix_places_point", "point", postgresql_using="gist"),
        Index("ix_places_country_name", "country_code", "name"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    ascii_name: Mapped[str] = mapped_column(String(200))
    country_code: Mapped[str] = mapped_column(String(2))
    admin1_code: Mapped[str] = mapped_column(String(20))
    population: Mapped[int] = mapped_column(Integer)
    point: Mapped[WKBElement] = mapped_column(Geometry("POINT", srid=4326, spatial_index=False))


class Admin1Name(Base):
    """The GeoNames first-level region name of a (country, admin1 code)."""

    __tablename__ = "admin1_names"

    country_code: Mapped[str] = mapped_column(String(2), primary_key=True)
    admin1_code: Mapped[str] = mapped_column(String(20), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))


class PlaceName(Base):
    """One folded name (name, ASCII or alternate) of a gazetteer place, for search."""

    __tablename__ = "place_names"

    folded: Mapped[str] = mapped_column(String(200), primary_key=True)
    place_id: Mapped[int] = mapped_column(Integer, primary_key=True)


class Country(Base):
    """A country outline (Natural Earth) with its ISO 3166-1 codes."""

    __tablename__ = "countries"
    __table_args__ = (Index("ix_countries_geom", "geom", postgresql_using="gist"),)

    code: Mapped[str] = mapped_column(String(2), primary_key=True)
    numeric: Mapped[str | None] = mapped_column(String(3))
    name: Mapped[str] = mapped_column(String(200))
    geom: Mapped[WKBElement] = mapped_column(
        Geometry("MULTIPOLYGON", srid=4326, spatial_index=False)
    )


class PublishRun(Base):
    """One publish: when it ran and what it published."""

    __tablename__ = "publish_runs"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(16))
    published_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    data_changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    members_on_map: Mapped[int] = mapped_column(Integer)
    seconds: Mapped[float] = mapped_column(Float)


class PublishedCell(Base):
    """A published, k-anonymous marker: a cell with its count, per map resolution."""

    __tablename__ = "published_cells"
    __table_args__ = (
        Index("ix_published_cells_box", "condition_id", "resolution", "lng", "lat"),
        CheckConstraint("count > 0", name="count_positive"),
    )

    condition_id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    resolution: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    cell: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    cell_resolution: Mapped[int] = mapped_column(SmallInteger)
    count: Mapped[int] = mapped_column(Integer)
    lat: Mapped[float] = mapped_column(Float)
    lng: Mapped[float] = mapped_column(Float)


class PublishedTotal(Base):
    """Per condition and map resolution: members on the map and how many are published.

    ``published`` is the partition's total, the same at every resolution. The
    difference is the remainder: members of base cells whose leftover never reached k
    (:func:`geomap.privacy.partition`). They are counted only in ``members_on_map``,
    which is for operators: no public route reads it (it is not a sum of parts).
    """

    __tablename__ = "published_totals"

    condition_id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    resolution: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    members_on_map: Mapped[int] = mapped_column(Integer)
    published: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer)
