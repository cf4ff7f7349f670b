"""Tables of incremental publishing: dirty floor cells and per-condition bookkeeping.

None of them is on the public read path. ``publish_dirty`` is filled by triggers
(``db/sql/publish_dirty.sql``) and by the bulk loader; the publish step empties it.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer, SmallInteger
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


class PublishSnapshot(Base):
    """The parameters a condition's published rows were last computed with.

    An incremental publish recomputes a condition in full when k or the floor changed.
    """

    __tablename__ = "publish_snapshots"

    condition_id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    k: Mapped[int] = mapped_column(SmallInteger)
    floor: Mapped[int] = mapped_column(SmallInteger)
    version: Mapped[int] = mapped_column(Integer)
