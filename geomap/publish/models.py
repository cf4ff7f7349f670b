"""Tables of incremental publishing: dirty floor cells and per-condition bookkeeping.

None of them is on the public read path. ``publish_dirty`` is filled by triggers
(migration ``0005_incremental_publish``) and by the bulk loader; the publish step empties it.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    Integer,
    SmallInteger,
    String,
    Text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from geomap.database import Base


class PublishDirty(Base):
    """A floor cell of a condition whose members changed since the last publish.

    ``delta`` is the net change of members on the condition's map in that cell;
    ``floor_cell`` 0 marks the whole condition dirty (after a TRUNCATE): it is recounted.
    """

    __tablename__ = "publish_dirty"

    condition_id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    floor_cell: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    delta: Mapped[int] = mapped_column(Integer)


class PublishFloorCount(Base):
    """Members on a condition's map in one floor cell, as of the last publish.

    The input of the roll-up, kept so that an incremental publish recounts only the
    dirty floor cells. Private (counts below k live here): never on the public path.
    """

    __tablename__ = "publish_floor_counts"

    condition_id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    floor_cell: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    members: Mapped[int] = mapped_column(Integer)


class PublishLeftover(Base):
    """Members gathered (1..k-1) in a cell coarser than the floor that no part holds.

    The roll-up's state between publishes (:func:`geomap.privacy.partition_leftovers`):
    with it an incremental publish re-rolls only the ancestors of the changed floor
    cells. Private (counts below k live here): never on the public path.
    """

    __tablename__ = "publish_leftovers"

    condition_id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    cell: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    members: Mapped[int] = mapped_column(Integer)


class PublishSnapshot(Base):
    """The parameters a condition's published rows were last computed with.

    An incremental publish recomputes a condition in full when k or the floor changed.
    """

    __tablename__ = "publish_snapshots"

    condition_id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    k: Mapped[int] = mapped_column(SmallInteger)
    floor: Mapped[int] = mapped_column(SmallInteger)
    version: Mapped[int] = mapped_column(Integer)


class SnapshotDirty(Base):
    """A member whose private snapshots (admin counts, nearby rows) may have changed.

    Filled by triggers (migration ``0013s_snapshots``) and by the bulk loader; emptied
    by :func:`geomap.publish.snapshots.refresh_snapshots`. Member 0 marks everything.
    """

    __tablename__ = "snapshot_dirty"

    member_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)


class AdminCounted(Base):
    """What the admin counts last counted one member under (private, admins' counts only).

    The place is the one their floor cell was given at that refresh ('' for none), so
    an incremental refresh subtracts exactly what was added.
    """

    __tablename__ = "admin_counted"

    member_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    country_code: Mapped[str] = mapped_column(String(2))
    region_code: Mapped[str] = mapped_column(String(24))
    role: Mapped[str] = mapped_column(String(16))
    month: Mapped[date] = mapped_column(Date)
    conditions: Mapped[list[int]] = mapped_column(ARRAY(SmallInteger))


class SnapshotState(Base):
    """The region polygons the admin counts' places were derived with (one row)."""

    __tablename__ = "snapshot_state"
    __table_args__ = (CheckConstraint("id", name="single_row"),)

    id: Mapped[bool] = mapped_column(Boolean, primary_key=True, default=True)
    places_key: Mapped[str] = mapped_column(Text)
