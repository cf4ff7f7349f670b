"""The COPY loader's bulk mode: indexes and constraints dropped, rebuilt, and enforced."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from geomap.geo.derive import KeyDeriver
from geomap.ingest import members_bulk
from geomap.ingest.members_bulk import MemberBatch, load_members

CATALOG = (
    "SELECT 'index', indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index "
    "WHERE indrelid = ANY(CAST(:t AS regclass[])) "
    "UNION ALL SELECT 'constraint', conname, pg_get_constraintdef(oid) FROM pg_constraint "
    "WHERE conrelid = ANY(CAST(:t AS regclass[])) "
    "UNION ALL SELECT 'trigger', tgname, tgenabled::text FROM pg_trigger "
    "WHERE tgrelid = ANY(CAST(:t AS regclass[])) AND NOT tgisinternal ORDER BY 1, 2"
)


def catalog(session: Session) -> list[tuple]:
    return session.execute(text(CATALOG), {"t": list(members_bulk.MEMBER_TABLES)}).all()


def batch_of(n: int, pseudonyms: list[str] | None = None) -> MemberBatch:
    return MemberBatch(
        pseudonyms=pseudonyms, roles=["patient"] * n, visibilities=["map"] * n,
        contactable=[True] * n, joined_at=[datetime(2026, 2, 1, tzinfo=UTC)] * n,
        lats=np.linspace(48.0, 49.0, n), lngs=np.linspace(2.0, 3.0, n),
        conditions=[[1, 2] if i % 4 == 0 else [1] for i in range(n)],
    )


@pytest.fixture
def bulk_mode_always(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every load big enough for the rebuild path."""
    monkeypatch.setattr(members_bulk, "BULK_REBUILD_MIN", 1)
    monkeypatch.setattr(members_bulk, "_rebuild_worthwhile", lambda session, n: True)


def test_bulk_mode_restores_every_index_constraint_and_trigger(
    rollback_session: Session, community_deriver: KeyDeriver, bulk_mode_always: None
) -> None:
    before = catalog(rollback_session)
    ids = load_members(rollback_session, batch_of(50), community_deriver)
    assert catalog(rollback_session) == before
    loaded = rollback_session.execute(
        text("SELECT count(*) FROM member_conditions WHERE member_id = ANY(:ids)"),
        {"ids": ids.tolist()},
    ).scalar_one()
    assert loaded == 50 + 13


def test_bulk_mode_still_enforces_unique_pseudonyms(
    rollback_session: Session, community_deriver: KeyDeriver, bulk_mode_always: None
) -> None:
    taken = rollback_session.execute(text("SELECT pseudonym FROM members LIMIT 1")).scalar_one()
    with pytest.raises(IntegrityError):
        load_members(rollback_session, batch_of(3, ["fresh-a", taken, "fresh-b"]),
                     community_deriver)


def test_a_big_load_marks_whole_conditions_dirty(
    rollback_session: Session, community_deriver: KeyDeriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(members_bulk, "WHOLE_CONDITION_CELLS", 3)
    rollback_session.execute(text("DELETE FROM publish_dirty"))
    load_members(rollback_session, batch_of(400), community_deriver)
    dirty = rollback_session.execute(
        text("SELECT condition_id, floor_cell FROM publish_dirty ORDER BY 1")
    ).all()
    assert dirty == [(1, 0), (2, 0)]
